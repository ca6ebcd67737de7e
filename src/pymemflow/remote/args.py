"""The plugin arguments the ``remote`` connector and OS layer share, and the client they open."""

from __future__ import annotations

from typing import Any

from ..errors import ArgumentError
from ..types import ArgSpec, parse_duration
from .client import DEFAULT_TIMEOUT, Client
from .protocol import check_name

REMOTE_ARGS = [
    ArgSpec("target", "daemon address: unix:/run/pymemflow.sock, http://HOST:PORT or https://HOST:PORT",
            required=True),
    ArgSpec("conn", "the daemon's connection name (`curl --unix-socket S http://x/v1/connections` lists them)",
            required=True),
    ArgSpec("token_file", "file holding the daemon's bearer token (needed for --listen daemons)"),
    ArgSpec("cafile", "CA/certificate file to trust for https:// (a self-signed daemon certificate)"),
    ArgSpec("timeout", "seconds to wait for the daemon (e.g. 30, 500ms)", default=DEFAULT_TIMEOUT,
            parse=parse_duration),
]


def client_from_args(args: dict[str, Any]) -> tuple[Client, str]:
    target = args.get("target")
    if not target:
        raise ArgumentError("remote: give the daemon address, e.g. remote:unix:/run/pymemflow.sock,conn=vm1")
    conn = check_name(str(args.get("conn") or ""), "connection name (conn=)")
    client = Client(str(target), token_file=args.get("token_file"), cafile=args.get("cafile"),
                    timeout=float(args.get("timeout") or DEFAULT_TIMEOUT))
    return client, conn
