"""The assembly point: the plugin inventory (``registry.py``), memflow's argument syntax (``args.py``)
and chains of connectors and OS layers (``chain.py``); ``api.py`` is the plugin authors' import
path. See docs/plugins.md and docs/architecture.md.
"""
