"""``pymemflow serve``: a daemon that keeps chains open and serves them over HTTP/1.1 + JSON (``/v1``).

:mod:`.app` holds the API (one route table -> router and OpenAPI), :mod:`.connections` the named
chains, :mod:`.daemon` sockets/TLS/config. Clients: :mod:`pymemflow.remote` (Python, the ``remote``
connector and OS layer), curl, or any language from ``/v1/openapi.json``. See docs/serve.md.
"""
