"""Talking to a ``pymemflow serve`` daemon: the wire format and the HTTP client.

This package sits at the bottom of the import graph beside :mod:`pymemflow.errors` (standard
library only; NumPy only inside the batch calls), so both the ``remote`` connector and the ``remote``
OS layer can use it, and so can any front end. The server side lives in :mod:`pymemflow.serve`.
"""
