"""``translate``: virtual -> physical through a page-table root, with the walk shown on request.

    pymemflow -c raw:/dev/shm/guest.ram translate 0xffffffff81000000 --dtb 0x2704000
    pymemflow -c qemu:vm translate 0xffffffff81000000 0xffff888000000000 --json

The root defaults to the connector's ``dtb`` hint (dump headers, a live QEMU's CR3) and the
architecture to its ``arch`` hint, else x64.
"""

from __future__ import annotations

from typing import Any

from ...arch import VirtualMemory, flags_str, get_arch
from ...arch.spec import R_OK, REASONS
from ...arch.walk_scalar import walk_trace
from ...errors import ArgumentError
from ...plugins.api import parse_int
from ..context import CommandContext

ARCH_NAMES = ["x64", "x64la57", "x86", "x86pae", "aarch64"]


def register(sub: Any) -> None:
    p = sub.add_parser("translate", help="translate virtual addresses to physical (page-table walk)")
    p.add_argument("va", nargs="+", type=parse_int, help="virtual address(es), 0x hex")
    p.add_argument("--dtb", type=parse_int, help="page-table root (CR3 / TTBR0); default: the connector's dtb hint")
    p.add_argument("--ttbr1", type=parse_int, help="AArch64: root of the upper half (TTBR1)")
    p.add_argument("--arch", help=f"MMU: {', '.join(ARCH_NAMES)} (default: the connector's arch hint, else x64)")
    p.add_argument("--walk", action="store_true", help="also show every page-table entry the walk read")
    p.set_defaults(handler=run_translate)


def _root(ctx: CommandContext) -> tuple[Any, str, int]:
    phys = ctx.connector()
    hints = getattr(phys, "hints", {}) or {}
    arch = ctx.args.arch or hints.get("arch") or "x64"
    dtb = ctx.args.dtb if ctx.args.dtb is not None else hints.get("dtb")
    if dtb is None:
        raise ArgumentError("translate: give --dtb ADDRESS (the connector has no 'dtb' hint)")
    get_arch(arch)  # a clear error for an unknown name
    return phys, str(arch), int(dtb)


def run_translate(ctx: CommandContext) -> int:
    phys, arch_name, dtb = _root(ctx)
    arch = get_arch(arch_name)
    vm = VirtualMemory(phys, arch, dtb, ttbr1=ctx.args.ttbr1)
    vas = list(ctx.args.va)
    res = vm.translate_batch(vas)
    rows: list[dict[str, Any]] = []
    for i, va in enumerate(vas):
        ok = int(res.reason[i]) == R_OK
        row: dict[str, Any] = {
            "va": va,
            "pa": int(res.pa[i]) if ok else None,
            "page_size": int(res.page_size[i]) if ok else None,
            "flags": flags_str(int(res.flags[i])) if ok else "",
            "status": REASONS.get(int(res.reason[i]), "?"),
            "arch": arch.name,
            "dtb": dtb,
        }
        if ctx.args.walk:
            row["walk"] = [{"level": lv, "entry_pa": ea, "value": v} for lv, ea, v in
                           walk_trace(phys, arch, dtb, va, ctx.args.ttbr1)]
        rows.append(row)
    if len(rows) == 1 and (ctx.json or ctx.args.walk):
        row = rows[0]
        if ctx.json:
            ctx.emit_obj(row)
        else:
            walk = row.pop("walk", [])
            ctx.emit_obj(row)
            ctx.emit([{"level": w["level"], "entry_pa": w["entry_pa"],
                       "value": "unreadable" if w["value"] is None else f"{w['value']:#018x}"} for w in walk],
                     ["level", "entry_pa", "value"], title="walk:")
    else:
        ctx.emit(rows, ["va", "pa", "page_size", "flags", "status"] + (["walk"] if ctx.args.walk else []))
    return 0 if bool(res.ok.all()) else 1
