"""``pymemflow [CHAIN] gdbserver [-p PID|NAME | --kernel] --listen HOST:PORT`` (see docs/gdbserver.md)."""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError
from ...gdb.server import GdbServer
from ...gdb.target import build_target
from ...types import is_loopback, parse_listen
from ..context import CommandContext


def register(sub: Any) -> None:
    p = sub.add_parser("gdbserver", help="serve a process's (or the kernel's) memory to gdb (remote protocol)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-p", "--process", help="pid or name of the process to serve")
    g.add_argument("--kernel", action="store_true", help="serve the kernel's address space (the default)")
    p.add_argument("--listen", default="127.0.0.1:1234", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:1234; port 0 picks a free one)")
    p.add_argument("--writable", action="store_true", help="allow gdb's memory writes (M/X packets); the "
                   "chain must be writable")
    p.add_argument("--sessions", type=int, default=None, help="stop after this many client sessions")
    p.set_defaults(handler=run_gdbserver)


def run_gdbserver(ctx: CommandContext) -> int:
    a = ctx.args
    host, port = parse_listen(a.listen)
    chain = ctx.chain
    if a.writable and not getattr(chain.connector, "writable", False):
        raise ArgumentError("gdbserver --writable: the chain is read-only (open the connector writable)")
    target = build_target(chain.connector, chain.os, a.process, bool(a.kernel), bool(a.writable))
    server = GdbServer(target, host, port, err=ctx.err)
    if not is_loopback(host):
        server.say(f"warning: listening on {host}, reachable from other machines; anyone who connects can "
                   "read this target's memory")
    h, pt = server.address
    server.say(f"serving {target.description} ({target.gdb_arch}, "
               f"{'writable' if target.writable else 'read-only'}) on {h}:{pt}; "
               f"in gdb: target remote {h}:{pt}")
    server.serve(a.sessions)
    return 0
