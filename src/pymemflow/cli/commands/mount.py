"""``pymemflow [CHAIN] mount MOUNTPOINT``: the chain as a FUSE file system (see docs/mount.md)."""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError
from ...fs.fuse import mount
from ...fs.tree import MemoryFs, looks_live
from ..context import CommandContext


def register(sub: Any) -> None:
    p = sub.add_parser("mount", help="mount the chain as a file system (FUSE; read-only unless --writable)")
    p.add_argument("mountpoint", help="an existing empty directory")
    p.add_argument("--writable", action="store_true",
                   help="allow writes to phys.raw and memory.vmem (the chain must be writable too)")
    p.add_argument("--ttl", type=float, default=None,
                   help="seconds listings and produced files stay valid (default: 1 on live targets, "
                        "forever on dumps)")
    p.add_argument("--fuse-debug", action="store_true", help="libfuse's debug output on stderr")
    p.set_defaults(handler=run_mount)


def run_mount(ctx: CommandContext) -> int:
    a = ctx.args
    chain = ctx.chain
    phys, os_layer = chain.connector, chain.os
    if a.writable:
        target = phys if phys is not None else None
        if target is None or not getattr(target, "writable", False):
            raise ArgumentError("mount --writable: the chain is read-only (open the connector writable, "
                                "e.g. -c demo:writable=true)")
    live = looks_live(phys, os_layer)
    ttl = a.ttl if a.ttl is not None else (1.0 if live else None)
    fs = MemoryFs(phys, os_layer, writable=bool(a.writable), ttl=ttl)
    ctx.err.write(f"pymemflow: mounting {chain.describe()} at {a.mountpoint} "
                  f"({'read-write' if a.writable else 'read-only'}); umount or Ctrl-C to stop\n")
    ctx.err.flush()
    mount(fs, a.mountpoint, live=live, debug=bool(a.fuse_debug))
    return 0
