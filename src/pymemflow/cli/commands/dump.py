"""``dump-phys OUT --format raw|elf|lime [--force]``: turn any connector (a live VM too) into a snapshot.

Copies the connector's memory map (or 0..max_address) with a progress bar. The copy goes to
``OUT.part`` with a progress journal, so a rerun after a failure resumes where it stopped; the
finished file is renamed to ``OUT``. An existing ``OUT`` is never replaced without ``--force``.
A journal left by another source, format or output is not resumed from (a warning says why).
The summary's ``status`` is ``complete`` only when every byte was read; otherwise the exit code is 1.
A source with no memory is an error (exit 1 or 2, no file written), a triage dump included: it holds
only saved blocks of virtual memory.
"""

from __future__ import annotations

import argparse
from typing import Any

from ...errors import PymemflowError
from ...writers import DUMP_FORMATS, layout_for
from ...writers.base import check_output, memory_ranges, write_layout


def register(sub: Any) -> None:
    p = sub.add_parser("dump-phys", help="write physical memory to a raw, ELF or LiME file (resumable)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output file")
    p.add_argument("--format", dest="dump_format", choices=DUMP_FORMATS, default="raw",
                   help="raw (file offset = physical address), elf (QEMU-style core) or lime")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(handler=run)


def run(ctx: Any) -> int:
    args = ctx.args
    from pathlib import Path

    out = Path(args.out)
    check_output(out, bool(args.force))
    mem = ctx.connector()
    if getattr(mem, "triage", None) is not None and callable(getattr(mem, "no_physical_memory", None)):
        raise PymemflowError(f"{mem.no_physical_memory()}; dump-phys cannot work: nothing written to {out}")
    ranges = memory_ranges(mem)
    layout = layout_for(args.dump_format, mem, ranges)
    with ctx.progress(layout.data_bytes, f"dump-phys {args.dump_format}") as bar:
        res = write_layout(mem, out, layout, force=bool(args.force), progress=bar.advance)
    if res.restarted:
        ctx.err.write(f"pymemflow: warning: did not resume: {res.restarted}; copied everything again\n")
    ctx.emit_obj({
        "file": str(res.path), "format": args.dump_format, "status": "complete" if res.complete else "incomplete",
        "bytes": res.bytes_written, "data_bytes": res.data_bytes, "ranges": [[s, e] for s, e in ranges],
        "resumed_from": res.resumed_from, "unreadable_bytes": res.unreadable_bytes,
    })
    if not res.complete:
        ctx.err.write(f"pymemflow: error: {res.path} is incomplete: {res.unreadable_bytes} of {res.data_bytes} "
                      "bytes could not be read (zero in the file)\n")
        return 1
    return 0
