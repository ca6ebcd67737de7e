"""``translate``: virtual -> physical through a page-table root, with the walk shown on request.

    pymemflow -c raw:/dev/shm/guest.ram translate 0xffffffff81000000 --dtb 0x2704000
    pymemflow -c qemu:vm translate 0xffffffff81000000 0xffff888000000000 --json
    pymemflow -c demo -o win32 translate -p explorer.exe 0x7ff800000000 --walk

The root is, in this order: ``--dtb``; with an OS layer in the chain, the page tables of process
``-p PID|NAME`` or else of the kernel (as the layer found them); the connector's ``dtb`` hint (dump
headers, a live QEMU's CR3). The architecture: ``--arch``, the OS layer's, the connector's ``arch``
hint, else x64.
"""

from __future__ import annotations

from typing import Any

from ...arch import VirtualMemory, flags_str, get_arch
from ...arch.spec import F_HOOK, R_OK, REASONS
from ...arch.walk_scalar import walk_trace
from ...errors import ArgumentError
from ...plugins.api import parse_int
from ..context import CommandContext

ARCH_NAMES = ["x64", "x64la57", "x86", "x86pae", "aarch64"]


def register(sub: Any) -> None:
    p = sub.add_parser("translate", help="translate virtual addresses to physical (page-table walk)",
                       description=__doc__)
    p.add_argument("va", nargs="+", type=parse_int, help="virtual address(es), 0x hex")
    p.add_argument("-p", "--process", help="with an OS layer: walk this process's page tables (pid or name)")
    p.add_argument("--dtb", type=parse_int, help="page-table root (CR3 / TTBR0); default: the OS layer's kernel "
                   "root, else the connector's dtb hint")
    p.add_argument("--ttbr1", type=parse_int, help="AArch64: root of the upper half (TTBR1)")
    p.add_argument("--arch", help=f"MMU: {', '.join(ARCH_NAMES)} (default: the OS layer's or the connector's, else x64)")
    p.add_argument("--walk", action="store_true", help="also show every page-table entry the walk read")
    p.set_defaults(handler=run_translate)


def _layer_memory(ctx: CommandContext) -> VirtualMemory | None:
    """The page tables the OS layer uses: process ``-p`` or the kernel's (None without an OS layer)."""
    if not any(lk.kind == "os" for lk in ctx.links):
        if ctx.args.process:
            raise ArgumentError("translate: -p PROCESS needs an OS layer: give -o OS (e.g. -o win32) before the command")
        return None
    os_layer = ctx.os()
    if ctx.args.process:
        mem = os_layer.process(ctx.args.process).memory
        what = f"process {ctx.args.process}"
    else:
        mem = getattr(os_layer, "kmem", None)
        what = "the kernel"
    if not isinstance(mem, VirtualMemory):
        raise ArgumentError(f"translate: the {getattr(os_layer, 'name', '?')} OS layer does not read {what} through "
                            "page tables it can show (give -c CONNECTOR and --dtb ADDRESS)")
    return mem


def _memory(ctx: CommandContext) -> VirtualMemory:
    """The VirtualMemory to translate with: the OS layer's (keeps its PTE rules, e.g. Windows' transition
    and prototype PTEs) unless --dtb/--arch ask for another root, else one built from the connector."""
    a = ctx.args
    if a.dtb is not None and a.process:
        raise ArgumentError("translate: give either -p PROCESS (its page tables) or --dtb ADDRESS, not both")
    if a.dtb is None:
        layer_mem = _layer_memory(ctx)
        if layer_mem is not None:
            if a.arch is None or get_arch(a.arch).name == layer_mem.arch.name:
                if a.ttbr1 is None:
                    return layer_mem
            return VirtualMemory(layer_mem.phys, a.arch or layer_mem.arch, layer_mem.dtb, ttbr1=a.ttbr1)
    phys = ctx.connector()
    hints = getattr(phys, "hints", {}) or {}
    arch = a.arch or hints.get("arch") or "x64"
    dtb = a.dtb if a.dtb is not None else hints.get("dtb")
    if dtb is None:
        raise ArgumentError("translate: give --dtb ADDRESS, or -o OS to use its page tables (-p PID for a "
                            "process's); the connector has no 'dtb' hint")
    return VirtualMemory(phys, get_arch(str(arch)), int(dtb), ttbr1=a.ttbr1)


def _os_meaning(vm: VirtualMemory, describe: Any, va: int, resolved: bool) -> dict[str, Any]:
    """What the OS layer's page-table hook says of the leaf entry the MMU would not use (Windows: a
    transition page, a page-file slot, a prototype or demand-zero PTE), as row fields."""
    trace = walk_trace(vm.phys, vm.arch, vm.dtb, va, vm.ttbr1)
    if not trace or trace[-1][2] is None:
        return {}
    level, _, pte = trace[-1]
    sw = describe(pte, level)
    if sw is None:
        return {}
    out: dict[str, Any] = {"status": sw.status(), "pte": pte}
    if sw.kind == "transition" and not resolved:
        out["status"] = "transition (not used for reads: the layer was opened with transition=false)"
    if sw.kind == "pagefile":
        out.update(pagefile=sw.pagefile, pagefile_offset=(sw.pagefile_offset or 0) << 12)
    return out


def run_translate(ctx: CommandContext) -> int:
    vm = _memory(ctx)
    arch, dtb = vm.arch, vm.dtb
    vas = list(ctx.args.va)
    res = vm.translate_batch(vas)
    rows: list[dict[str, Any]] = []
    describe = getattr(vm.pte_hook, "describe", None)
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
        if describe is not None and (not ok or int(res.flags[i]) & F_HOOK):
            row.update(_os_meaning(vm, describe, va, ok))
        if ctx.args.walk:
            row["walk"] = [{"level": lv, "entry_pa": ea, "value": v} for lv, ea, v in
                           walk_trace(vm.phys, arch, dtb, va, vm.ttbr1)]
        rows.append(row)
    if len(rows) == 1 and (ctx.machine or ctx.args.walk):
        row = rows[0]
        if ctx.machine:
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
