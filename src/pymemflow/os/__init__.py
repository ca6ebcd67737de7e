"""OS layers: ``base.py`` (the ``OsLayer`` interface and its records), shared walkers (``walk.py``,
``caps.py``) and the sibling layers ``win32``, ``linux``, ``native``, which never import each
other. See docs/architecture.md.
"""
