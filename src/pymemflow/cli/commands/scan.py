"""``pymemflow scan``: search memory for byte patterns, strings and YARA rules (pymemflow.scan).

Targets: ``-p PID|NAME`` (one process), ``--all-processes`` (every process's user space; the default
with an OS layer), ``--kernel`` (the kernel's mapped pages) or ``--phys`` (the connector's real
physical ranges; the default without an OS layer). Hits stream as they are found.
"""

from __future__ import annotations

import logging
from typing import Any

from ...errors import ArgumentError
from ...plugins.api import parse_int, parse_size
from ..context import CommandContext

log = logging.getLogger("pymemflow.scan")

SCAN_COLUMNS = ["target", "pid", "process", "rule", "address", "phys", "where", "context"]
"""Table columns (--json/--jsonl/--csv carry every field of a hit, docs/cli.md)."""
WIDTHS = {"target": 7, "pid": 5, "process": 15, "rule": 20, "address": 18, "phys": 12, "where": 24}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scan", help="search memory for byte patterns, strings or YARA rules",
        description="Search one process (-p), every process (--all-processes, the default with an OS layer), "
        "the kernel (--kernel) or physical memory (--phys, the default without an OS layer) for hex patterns "
        "with ?? wildcards, strings (UTF-8/ASCII and UTF-16LE) and YARA rules. Each hit gives the process, "
        "module+offset, virtual and physical address, the rule and the bytes around it; hits print as found.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-p", "--process", help="one process: pid or name")
    where.add_argument("--all-processes", action="store_true", help="every process's user space")
    where.add_argument("--kernel", action="store_true", help="the kernel's mapped pages")
    where.add_argument("--phys", action="store_true", help="physical memory (the connector's real ranges)")
    p.add_argument("--pattern", action="append", default=[], metavar="HEX",
                   help="hex bytes, ?? (or nibble 4?) wildcards: '48 8B ?? ?? 89' (repeatable)")
    p.add_argument("--string", action="append", default=[], metavar="TEXT", help="text (repeatable)")
    p.add_argument("--encoding", choices=["both", "ascii", "utf16"], default="both",
                   help="--string as UTF-8/ASCII, UTF-16LE or both (default)")
    p.add_argument("-i", "--ignore-case", action="store_true", help="--string folds ASCII letters")
    p.add_argument("--yara", metavar="RULES_FILE", help="YARA rules file (needs pymemflow[yara])")
    p.add_argument("--max-hits", type=parse_int, help="stop after N hits")
    p.add_argument("--chunk", type=parse_size, default=16 << 20, help="bytes searched per batch (default 16m)")
    p.add_argument("--context", type=parse_int, default=16, help="bytes of context around a hit (default 16)")
    p.set_defaults(handler=run_scan)


def _matchers(ctx: CommandContext) -> list[Any]:
    from ...scan import pattern_matcher, string_matchers, yara_matcher  # lazy: NumPy not at CLI start-up

    a = ctx.args
    out = [pattern_matcher(t) for t in a.pattern]
    for text in a.string:
        out += string_matchers(text, ascii=a.encoding != "utf16", utf16=a.encoding != "ascii",
                               ignore_case=a.ignore_case)
    if a.yara:
        out.append(yara_matcher(a.yara))
    if not out:
        raise ArgumentError("scan: give what to look for: --pattern HEX, --string TEXT or --yara RULES_FILE")
    return out


def _targets(ctx: CommandContext) -> Any:
    from ...scan import all_process_targets, kernel_target, phys_target, process_target  # lazy: as above

    a = ctx.args
    has_os = any(lk.kind == "os" for lk in ctx.links)
    if a.phys or not (has_os or a.process or a.kernel or a.all_processes):
        return [phys_target(ctx.connector())]
    if a.process:
        return [process_target(ctx.os().process(a.process))]
    if a.kernel:
        return [kernel_target(ctx.os())]
    return all_process_targets(ctx.os(), log.warning)


def run_scan(ctx: CommandContext) -> int:
    from ...scan import Scanner  # lazy: as above

    a = ctx.args
    if a.max_hits is not None and a.max_hits < 1:
        raise ArgumentError("scan: --max-hits must be at least 1")
    matchers = _matchers(ctx)
    bars = ctx.progress_bars()
    try:
        scanner = Scanner(matchers, chunk=a.chunk, context=a.context, max_hits=a.max_hits, progress=bars)
    except ValueError as e:
        raise ArgumentError(str(e)) from e


    def rows() -> Any:
        for h in scanner.scan(_targets(ctx)):
            if bars.enabled:  # a terminal: the row replaces the bar's line, the bar redraws under it
                ctx.err.write("\r\x1b[K")
            yield h.as_dict()

    try:
        ctx.emit_stream(rows(), SCAN_COLUMNS, WIDTHS)
    finally:
        bars.finish()
    log.info("scan: %d hits in %d bytes", scanner.hits, scanner.bytes_scanned)
    return 0
