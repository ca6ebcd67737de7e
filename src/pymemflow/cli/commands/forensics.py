"""The analyst's next questions, written once against the OS layer: ``threads``, ``handles``,
``psscan``, ``netscan``, ``timeline``, ``malfind`` (records in :mod:`pymemflow.os.forensics`)."""

from __future__ import annotations

from typing import Any

from ...os.base import Process
from ...os.forensics import (
    HANDLE_COLUMNS,
    MALFIND_COLUMNS,
    PSSCAN_COLUMNS,
    SOCKET_COLUMNS,
    THREAD_COLUMNS,
    TIMELINE_COLUMNS,
)
from ..context import CommandContext
from ..readout import hexdump_lines


def register(sub: Any) -> None:
    p = sub.add_parser("threads", help="threads of a process (-p) or of every process",
                       description="Threads: tid, pid, start address and the module it falls in, state, "
                       "create/exit time (UTC), TEB (Windows) or task (Linux).")
    _optional_process(p)
    p.set_defaults(handler=run_threads)

    p = sub.add_parser("handles", help="open handles (Windows) / file descriptors (Linux)",
                       description="Handles of a process (-p) or every process: type, granted access (Windows) "
                       "or file flags (Linux), object address and name (file path, key, section ...).")
    _optional_process(p)
    p.add_argument("--type", dest="type_name", help="only this object type (File, Key, Process, socket ...)")
    p.set_defaults(handler=run_handles)

    p = sub.add_parser("psscan", help="processes carved from memory (finds unlinked / hidden ones)",
                       description="Processes found by scanning memory for process objects, not by walking "
                       "the process list; each flagged listed, unlinked (hidden: DKOM) or exited.")
    p.set_defaults(handler=run_psscan)

    p = sub.add_parser("netscan", help="network endpoints and listeners (TCP/UDP)")
    p.set_defaults(handler=run_netscan)

    p = sub.add_parser("timeline", help="every timestamp the OS layer knows, sorted (UTC)")
    p.set_defaults(handler=run_timeline)

    p = sub.add_parser("malfind", help="private executable memory not backed by an image (injected code)",
                       description="Private, executable, not image-backed memory of a process (-p) or every "
                       "process, with its first bytes (hexdump) and, where capstone is installed, disassembly.")
    _optional_process(p)
    p.set_defaults(handler=run_malfind)


def _optional_process(p: Any) -> None:
    p.add_argument("-p", "--process", help="pid or name (default: every process)")


def _process(ctx: CommandContext) -> Process | None:
    if not ctx.args.process:
        return None
    proc: Process = ctx.os().process(ctx.args.process)
    return proc


def run_threads(ctx: CommandContext) -> int:
    ctx.emit([t.as_dict() for t in ctx.os().threads(_process(ctx))], THREAD_COLUMNS)
    return 0


def run_handles(ctx: CommandContext) -> int:
    rows = ctx.os().handles(_process(ctx), ctx.args.type_name)
    ctx.emit([h.as_dict() for h in rows], HANDLE_COLUMNS)
    return 0


def run_psscan(ctx: CommandContext) -> int:
    ctx.emit([p.as_dict() for p in ctx.os().psscan()], PSSCAN_COLUMNS)
    return 0


def run_netscan(ctx: CommandContext) -> int:
    ctx.emit([s.as_dict() for s in ctx.os().netscan()], SOCKET_COLUMNS)
    return 0


def run_timeline(ctx: CommandContext) -> int:
    ctx.emit([e.as_dict() for e in ctx.os().timeline()], TIMELINE_COLUMNS)
    return 0


def run_malfind(ctx: CommandContext) -> int:
    hits = ctx.os().malfind(_process(ctx))
    if ctx.output.machine:
        ctx.emit([h.as_dict() for h in hits], MALFIND_COLUMNS)
        return 0
    if not hits:
        ctx.emit([], MALFIND_COLUMNS)
    for h in hits:  # people: each hit with its bytes and disassembly under it, as volatility's malfind
        ctx.emit([h.as_dict()], MALFIND_COLUMNS)
        ctx.out.write(hexdump_lines(h.first_bytes, bytearray(len(h.first_bytes)), h.start, 12))
        ctx.out.write("".join(f"  {line}\n" for line in h.disassembly) + "\n")
    return 0
