"""``pymemflow serve``: the daemon (docs/serve.md). aiohttp is imported only when it runs."""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError, PluginError
from ..context import CommandContext


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="daemon: keep chains open and serve them over HTTP/JSON (docs/serve.md)")
    p.add_argument("--socket", metavar="PATH", help="Unix socket (mode 0600; the default, "
                   "/run/pymemflow.sock as root, else /tmp/pymemflow-UID.sock)")
    p.add_argument("--listen", metavar="[HOST:]PORT", help="also listen on TCP (loopback unless HOST says "
                   "otherwise; needs --token-file, and TLS off loopback)")
    p.add_argument("--token-file", metavar="FILE", help="bearer token every request must send")
    p.add_argument("--tls-cert", metavar="PEM", help="TLS certificate for --listen")
    p.add_argument("--tls-key", metavar="PEM", help="TLS private key for --listen")
    p.add_argument("--open", metavar="NAME=CHAIN", action="append", default=[],
                   help="open a connection at start, e.g. --open 'vm1=-c qemu:vm1 -o win32' (repeatable)")
    p.add_argument("--writable", metavar="NAME", action="append", default=[],
                   help="open connection NAME writable (writes still need an authorised request)")
    p.add_argument("--config", metavar="FILE", help="TOML: socket, listen, token_file, tls_*, [limits], "
                   "[connections.NAME] chain=..., writable=...")
    p.set_defaults(handler=run_serve)


def run_serve(ctx: CommandContext) -> int:
    import logging

    try:
        from ...serve.daemon import OpenSpec, ServeConfig, run  # lazy: aiohttp only for the daemon
    except ImportError as e:
        raise PluginError(f"serve needs aiohttp ({e}): pip install 'pymemflow[serve]'") from None

    a = ctx.args
    if ctx.links:
        raise ArgumentError("serve: give chains with --open NAME=CHAIN (or --config), not -c/-o")
    cfg = ServeConfig.from_toml(a.config) if a.config else ServeConfig()
    for key in ("socket", "listen", "token_file", "tls_cert", "tls_key"):
        if getattr(a, key):
            setattr(cfg, key, getattr(a, key))
    for item in a.open:
        name, sep, chain = item.partition("=")
        if not sep or not name.strip() or not chain.strip():
            raise ArgumentError(f"--open {item!r}: expected NAME=CHAIN, e.g. 'vm1=-c qemu:vm1 -o win32'")
        cfg.opens.append(OpenSpec(name.strip(), chain.strip()))
    names = {o.name for o in cfg.opens}
    for w in a.writable:
        if w not in names:
            raise ArgumentError(f"--writable {w}: no --open {w}=... given")
    for o in cfg.opens:
        o.writable = o.writable or o.name in a.writable
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pymemflow.serve").setLevel(logging.INFO if ctx.verbose < 3 else logging.DEBUG)
    return run(cfg)
