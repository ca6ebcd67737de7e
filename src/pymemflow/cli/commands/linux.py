"""Linux-only commands: ``dmesg`` -- the kernel log: from the printk ring buffer in memory (``-o linux``)
or from the running kernel (``-o native``: /dev/kmsg, else klogctl)."""

from __future__ import annotations

from typing import Any

from ..context import CommandContext


def register(sub: Any) -> None:
    p = sub.add_parser("dmesg", help="kernel log (Linux: printk ring buffer in memory, or this host's)",
                       description="The kernel log of a Linux OS layer: -o linux reads the printk ring buffer from "
                       "memory, -o native the running kernel's (/dev/kmsg). Fields: seq, timestamp (seconds since "
                       "boot), level (0 emerg .. 7 debug), facility, text.")
    p.add_argument("-n", "--tail", type=int, default=0, help="only the last N records")
    p.set_defaults(handler=run_dmesg)


def run_dmesg(ctx: CommandContext) -> int:
    os_layer = ctx.os()
    fn = getattr(os_layer, "dmesg", None)
    if fn is None:
        raise NotImplementedError(f"the {getattr(os_layer, 'name', '?')} OS layer has no kernel log; "
                                  "dmesg reads Linux: -o linux or -o native")
    recs = fn()
    tail = int(getattr(ctx.args, "tail", 0) or 0)
    if tail > 0:
        recs = recs[-tail:]
    if ctx.json:
        ctx.emit([r.as_dict() for r in recs])
        return 0
    for r in recs:
        ctx.out.write(f"[{r.timestamp:12.6f}] {r.text}\n")
    return 0
