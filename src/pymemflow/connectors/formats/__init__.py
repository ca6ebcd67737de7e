"""Shared machinery of the snapshot (dump-file) connectors.

``source`` opens a file safely (bounded reads that name the field on failure), ``runs`` maps
physical ranges to file offsets with vectorised look-ups, ``chunked`` serves compressed formats
page by page (or chunk by chunk) through a small decompression cache.
"""
