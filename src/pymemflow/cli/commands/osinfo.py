"""OS-generic commands, written once against :class:`pymemflow.os.base.OsLayer`: ``ps``,
``modules``, ``kmods``, ``exports``, ``imports``, ``sections``, ``maps``, ``read``, ``dump-module``.

Every OS layer (win32, linux, native) gets them for free; an operation the layer does not support
(``NotImplementedError``) is reported as "not supported" with exit code 1.
"""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError, NotFoundError
from ...os.base import ModuleInfo, Process
from ...os.modpick import arch_matches, matching_modules
from ...plugins.api import parse_int
from ...records import (
    EXPORT_COLUMNS,
    IMPORT_COLUMNS,
    MAP_COLUMNS,
    MODULE_COLUMNS,
    PS_COLUMNS,
    SECTION_COLUMNS,
)
from ..context import CommandContext
from ..readout import add_read_arguments, read_out

# Table columns live in pymemflow/records.py (the mount's tables use them too); --json/--jsonl/--csv
# carry every field of the records (docs/cli.md lists them).


def register(sub: Any) -> None:
    p = sub.add_parser("ps", help="list processes", description="List the processes of the chain's OS layer. "
                       "The table shows pid, ppid, name, state, arch, dtb, wow64 and command line; --json, --jsonl "
                       "and --csv carry every field (path, user_dtb, address, exit_code, create_time and the OS's "
                       "extra facts such as uid, gid, threads).")
    p.set_defaults(handler=run_ps)

    p = sub.add_parser("modules", help="modules (DLLs, shared objects) of a process")
    _proc_arg(p)
    p.add_argument("--arch", choices=MODULE_ARCHS, help="only modules of this architecture (a WoW64 process "
                   "lists its 64-bit and its 32-bit modules)")
    p.set_defaults(handler=run_modules)

    p = sub.add_parser("kmods", help="kernel modules / drivers")
    p.set_defaults(handler=run_kmods)

    for name, helptext, handler in (("exports", "exports of a module", run_exports),
                                    ("imports", "imports of a module", run_imports),
                                    ("sections", "sections of a module", run_sections)):
        p = sub.add_parser(name, help=helptext, description=f"{helptext.capitalize()}. Kernel modules (ntoskrnl.exe, "
                           f"drivers; what kmods lists) are reached through the kernel pseudo-process: "
                           f"{name} -p kernel -m ntoskrnl.exe")
        p.add_argument("-p", "--process", required=True, help="pid or name; 'kernel' for kernel modules")
        _module_args(p)
        p.set_defaults(handler=handler)

    p = sub.add_parser("maps", help="memory map of a process (-p), or of a page-table root (--dtb)")
    p.add_argument("-p", "--process", help="pid or name")
    p.add_argument("--vad", action="store_true", help="from the OS's own records (VADs) instead of page tables")
    p.add_argument("--dtb", type=parse_int, help="walk this page-table root on the connector instead of a process")
    p.add_argument("--arch", default="x64", help="architecture for --dtb (x64, x64la57, x86, x86pae, aarch64)")
    p.set_defaults(handler=run_maps)

    p = sub.add_parser("read", help="read process memory (hexdump, or raw bytes with --out)")
    _proc_arg(p)
    add_read_arguments(p, "virtual")
    p.set_defaults(handler=run_read)

    p = sub.add_parser("dump-module", help="write a module's memory image to a file (unreadable pages zeroed)")
    _proc_arg(p)
    _module_args(p)
    p.add_argument("out", help="output file")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(handler=run_dump_module)


def _proc_arg(p: Any) -> None:
    p.add_argument("-p", "--process", required=True, help="pid or name")


MODULE_ARCHS = ["x86", "x64"]


def _module_args(p: Any) -> None:
    p.add_argument("-m", "--module", required=True, help="module name (case-insensitive) or path: a WoW64 process "
                   "has two ntdll.dll; pick one with --arch or a path (SysWOW64\\ntdll.dll, C:\\Windows\\System32\\"
                   "ntdll.dll)")
    p.add_argument("--arch", choices=MODULE_ARCHS, help="the module of this architecture when a name has two "
                   "candidates (a WoW64 process's 64-bit and 32-bit ntdll.dll)")


def _process(ctx: CommandContext) -> Process:
    proc: Process = ctx.os().process(ctx.args.process)
    return proc


def _module(ctx: CommandContext, proc: Process) -> ModuleInfo:
    try:
        return proc.module_by_name(ctx.args.module, ctx.args.arch)
    except NotFoundError as e:
        if proc.info.extra.get("kernel"):
            raise
        try:  # a kernel module asked of a process (e.g. -p 4): say where it is
            kmods = ctx.os().kernel_modules()
        except (NotImplementedError, NotFoundError):
            raise e from None
        if matching_modules(kmods, ctx.args.module):
            raise NotFoundError(f"{e}; {ctx.args.module} is a kernel module: use -p kernel") from None
        raise


def run_ps(ctx: CommandContext) -> int:
    ctx.emit([i.as_dict() for i in ctx.os().process_info_list()], PS_COLUMNS)
    return 0


def run_modules(ctx: CommandContext) -> int:
    proc = _process(ctx)
    mods = [m for m in proc.module_list() if arch_matches(m.arch, ctx.args.arch)]
    ctx.emit([m.as_dict() for m in mods], MODULE_COLUMNS)
    return 0


def run_kmods(ctx: CommandContext) -> int:
    ctx.emit([m.as_dict() for m in ctx.os().kernel_modules()], MODULE_COLUMNS)
    return 0


def run_exports(ctx: CommandContext) -> int:
    proc = _process(ctx)
    rows = [e.as_dict() for e in proc.exports(_module(ctx, proc))]
    ctx.emit(rows, EXPORT_COLUMNS)
    return 0


def run_imports(ctx: CommandContext) -> int:
    proc = _process(ctx)
    ctx.emit([i.as_dict() for i in proc.imports(_module(ctx, proc))], IMPORT_COLUMNS)
    return 0


def run_sections(ctx: CommandContext) -> int:
    proc = _process(ctx)
    ctx.emit([s.as_dict() for s in proc.sections(_module(ctx, proc))], SECTION_COLUMNS)
    return 0


def run_maps(ctx: CommandContext) -> int:
    cols = MAP_COLUMNS
    if ctx.args.dtb is not None:
        if ctx.args.process:
            raise ArgumentError("maps: give either -p PROCESS or --dtb ADDRESS, not both")
        ctx.emit(_page_map_rows(ctx, ctx.args.dtb, ctx.args.arch), cols)
        return 0
    if not ctx.args.process:
        raise ArgumentError("maps: give -p PROCESS (or --dtb ADDRESS for a raw page-table walk)")
    proc = _process(ctx)
    regions = proc.maps(vad=True) if ctx.args.vad else proc.maps()
    ctx.emit([r.as_dict() for r in regions], cols)
    return 0


def _page_map_rows(ctx: CommandContext, dtb: int, arch: str) -> list[dict[str, Any]]:
    """Mappings of a page-table root, from the translation layer's ``VirtualMemory.page_map()``."""
    from ...arch import VirtualMemory  # lazy: no NumPy at CLI start-up (the daemon's thin clients)

    vm = VirtualMemory(ctx.connector(), arch, dtb)
    return [r.as_dict() for r in vm.page_map()]


def run_read(ctx: CommandContext) -> int:
    a = ctx.args
    return read_out(ctx, _process(ctx).memory, a.addr, a.length, a.out, a.force)


def run_dump_module(ctx: CommandContext) -> int:
    from pathlib import Path

    from ...os.image import module_image  # lazy: `ps` through a daemon starts without it
    from ...writers.base import check_output  # lazy: NumPy not at start-up (-o remote:... ps stays light)

    out = Path(ctx.args.out)
    check_output(out, bool(ctx.args.force))  # before any work: an existing file is never lost
    proc = _process(ctx)
    mod = _module(ctx, proc)
    with ctx.progress(mod.size, f"dump {mod.name}") as bar:
        img = module_image(proc, mod, bar.advance)
    part = out.with_name(out.name + ".part")
    part.write_bytes(img.data)
    part.replace(out)
    ctx.emit_obj({"module": mod.name, "base": mod.base, "size": mod.size, "file": ctx.args.out,
                  "unreadable_bytes": img.unreadable, "rebuilt": img.rebuilt})
    return 0
