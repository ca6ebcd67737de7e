"""The ``pymemflow`` command line: one module per command group in ``commands/``, output and
progress bars in ``context.py``. A front end: it reads the chain, never memory formats or OS
structures itself. See docs/architecture.md and docs/cli.md.
"""
