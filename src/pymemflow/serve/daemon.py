"""``pymemflow serve``: sockets, TLS, the TOML config, start-up connections and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import ArgumentError
from ..remote.client import read_token
from ..types import is_loopback, parse_listen
from .app import make_app
from .connections import Connections
from .limits import Limits
from .sockets import GuardedRunner, watch_writes

log = logging.getLogger("pymemflow.serve")

DEFAULT_SOCKET = "/run/pymemflow.sock" if os.geteuid() == 0 else f"/tmp/pymemflow-{os.getuid()}.sock"
DEFAULT_PORT = 8750


@dataclass
class OpenSpec:
    name: str
    chain: str | list[str]
    writable: bool = False


@dataclass
class ServeConfig:
    socket: str | None = None
    listen: str | None = None
    token_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    opens: list[OpenSpec] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_toml(cls, path: str | Path) -> ServeConfig:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ArgumentError(f"--config {path}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ArgumentError(f"--config {path}: {e}") from None
        known = {"socket", "listen", "token_file", "tls_cert", "tls_key", "limits", "connections"}
        unknown = set(data) - known
        if unknown:
            raise ArgumentError(f"--config {path}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(known))})")
        cfg = cls()
        for k in ("socket", "listen", "token_file", "tls_cert", "tls_key"):
            if data.get(k) is not None:
                setattr(cfg, k, str(data[k]))
        cfg.limits = Limits.from_mapping(dict(data.get("limits", {})), f"{path}: [limits]")
        conns = data.get("connections", {})
        if not isinstance(conns, dict):
            raise ArgumentError(f"--config {path}: [connections] must be a table of NAME = {{chain = ...}}")
        for name, c in conns.items():
            if not isinstance(c, dict) or "chain" not in c or set(c) - {"chain", "writable"}:
                raise ArgumentError(f"--config {path}: connections.{name}: expected {{chain = \"-c ... -o ...\", "
                                    "writable = false}")
            cfg.opens.append(OpenSpec(name, c["chain"], bool(c.get("writable", False))))
        return cfg


def unix_listener(path: str) -> socket.socket:
    """A listening Unix socket created with mode 0600 (umask around bind: no window where others
    could connect). A stale socket file (nobody listening) is replaced; a live one is an error."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not stat.S_ISSOCK(p.lstat().st_mode):
            raise ArgumentError(f"--socket {path}: exists and is not a socket (refusing to replace it)")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            p.unlink()
        else:
            raise ArgumentError(f"--socket {path}: a daemon is already listening there")
        finally:
            probe.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    s.listen(128)
    s.setblocking(False)
    return s


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ArgumentError(f"--tls-cert {cert} / --tls-key {key}: {e}") from None
    return ctx


def check_config(cfg: ServeConfig) -> None:
    """Refuse unsafe combinations before anything is opened."""
    if cfg.listen:
        host, _ = parse_listen(cfg.listen)
        if not cfg.token_file:
            raise ArgumentError("--listen needs --token-file FILE: a TCP port is reachable by every local user")
        if bool(cfg.tls_cert) != bool(cfg.tls_key):
            raise ArgumentError("--tls-cert and --tls-key go together")
        if not is_loopback(host) and not cfg.tls_cert:
            raise ArgumentError(f"--listen {cfg.listen}: a non-loopback address needs TLS (--tls-cert/--tls-key)")
    elif cfg.tls_cert or cfg.tls_key:
        raise ArgumentError("--tls-cert/--tls-key apply to --listen only")


def _open_one(conns: Connections, o: OpenSpec) -> None:
    conns.open(o.name, o.chain, writable=o.writable, opened_by="--open/--config")


async def serve(cfg: ServeConfig, ready: Any = None) -> None:
    """Run until SIGINT/SIGTERM. ``ready(addresses)`` is called once listening."""
    check_config(cfg)
    token = read_token(cfg.token_file) if cfg.token_file else None
    conns = Connections(cfg.limits.max_connections, cfg.limits.process_ttl)
    loop = asyncio.get_running_loop()
    for o in cfg.opens:
        try:
            await loop.run_in_executor(None, _open_one, conns, o)
        except Exception as e:  # the daemon still serves the others; the failed one stays listed
            log.error("connection %s (%s) could not be opened: %s", o.name, o.chain, e)
            conns.add_failed(o.name, o.chain, o.writable, "--open/--config", f"open failed: {e}")
    app = make_app(conns, cfg.limits, token)
    runner = GuardedRunner(app, max_clients=cfg.limits.max_clients, client_timeout=cfg.limits.client_timeout,
                           access_log=None, handle_signals=False)
    await runner.setup()
    assert runner.server is not None
    watchdog = asyncio.create_task(watch_writes(runner.server, cfg.limits.write_timeout))
    addresses: list[str] = []
    sock_path = cfg.socket or (None if cfg.listen else DEFAULT_SOCKET)
    try:
        if sock_path:
            await web.SockSite(runner, unix_listener(sock_path)).start()
            addresses.append(f"unix:{sock_path}")
        if cfg.listen:
            host, port = parse_listen(cfg.listen)
            sslctx = tls_context(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None
            site = web.TCPSite(runner, host, port, ssl_context=sslctx, reuse_address=True)
            await site.start()
            server: Any = site._server
            bound = server.sockets[0].getsockname() if server is not None and server.sockets else (host, port)
            addresses.append(f"{'https' if sslctx else 'http'}://{host}:{bound[1]}")
        log.warning("pymemflow serve: listening on %s (%d connections)", ", ".join(addresses), len(conns.list()))
        if ready is not None:
            ready(addresses)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.warning("pymemflow serve: shutting down")
    finally:
        watchdog.cancel()
        await runner.cleanup()
        await loop.run_in_executor(None, conns.close_all)
        if sock_path:
            with contextlib.suppress(OSError):
                os.unlink(sock_path)


def run(cfg: ServeConfig) -> int:
    def ready(addresses: list[str]) -> None:
        print("listening on " + " ".join(addresses), file=sys.stderr, flush=True)

    asyncio.run(serve(cfg, ready))
    return 0
