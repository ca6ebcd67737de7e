"""``pymemflow fleet [TARGETS...] [--targets-file F] [-o OS] COMMAND [ARGS] [--scheduler ADDR] [--workers N]``.

The words after ``fleet`` are targets up to the first one that names a CLI command; the rest are
that command's arguments, except fleet options (so ``--workers 2`` or ``--jsonl`` may come last;
``-c``/``-o`` after the command are the command's own if it has them). A target file called like a command is written ``./ps``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..cli.context import CommandContext
from ..errors import ArgumentError
from ..plugins.api import parse_duration
from .cluster import FleetOptions, run_fleet
from .output import make_writer
from .progress import ProgressLine, Tally
from .runner import command_names
from .targets import resolve_targets

DESCRIPTION = """\
Run one listing command (ps, modules -p NAME, kmods, ...) over many targets on Dask and print one
table with a `target` column first. Targets: dump files, globs ('dumps/*.lime'), connector specs
(raw:/x.img, qemu:vm3) and whole chains in quotes ('-c qemu:vm3 -o win32'). Without --scheduler a
local cluster of worker processes (one per CPU) runs them. A target that fails is a row with an
`error` field; the exit code is 1 if any target failed."""

EXAMPLES = """\
examples:
  pymemflow fleet dumps/*.dmp -o win32 ps
  pymemflow fleet 'raw:/vm/a.img' '-c qemu:vm3 -o win32' -o win32 modules -p explorer.exe --csv
  pymemflow fleet --targets-file hosts.txt -o linux kmods --scheduler tcp://10.0.0.5:8786 --jsonl"""


YIELDING = frozenset({"-c", "--connector", "-o", "--os"})
"""Fleet options that mean the command's own option when the command has one of that name; the
others (output format, cluster, retries) are always the fleet's, wherever they stand."""


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--targets-file", metavar="FILE", help="more targets, one per line ('-' = stdin, # comments)")
    p.add_argument("-o", "--os", dest="fleet_os", metavar="OS[:ARGS]",
                   help="OS layer for targets whose chain has none (e.g. win32, linux)")
    p.add_argument("-c", "--connector", dest="fleet_chain", action="append", default=[], metavar="CONNECTOR[:ARGS]",
                   help="one more target: a connector spec (same as giving it as a target word)")
    p.add_argument("--scheduler", metavar="ADDR", help="an existing Dask scheduler (tcp://host:8786) instead of "
                   "a local cluster; its workers need pymemflow and must see the targets")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes of the local cluster "
                   "(default: one per usable CPU)")
    p.add_argument("--retries", type=int, default=0, metavar="N", help="run a failed target up to N more times")
    p.add_argument("--timeout", type=parse_duration, metavar="SECONDS",
                   help="give up on a target after this long per attempt (30, 2m)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="fleet_format", action="store_const", const="json", help="a JSON list on stdout")
    fmt.add_argument("--jsonl", dest="fleet_format", action="store_const", const="jsonl",
                     help="one JSON record per line, as targets finish")
    fmt.add_argument("--csv", dest="fleet_format", action="store_const", const="csv", help="CSV on stdout")
    p.add_argument("--parquet", metavar="FILE", help="write all rows to a Parquet file (pyarrow) instead of stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress line on stderr (default: when stderr is a terminal)")


def register(sub: Any) -> None:
    p = sub.add_parser("fleet", help="run a listing command over many targets (Dask)", description=DESCRIPTION,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_options(p)
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="TARGETS... COMMAND [ARGS]")
    p.set_defaults(handler=run_fleet_command)


def _option_arity(p: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> dict[str, bool]:
    """Option string -> whether it takes a value (options whose dest is in ``skip`` left out)."""
    return {s: a.nargs != 0 for a in p._actions if a.dest not in skip for s in a.option_strings}


GLOBAL_AFTER = frozenset({"after_c", "after_o"})
"""The CLI's -c/-o accepted after any command (the chain): in a fleet they are the fleet's."""


def split_words(words: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Words after ``fleet`` -> (target words, command argv, fleet option tokens)."""
    fleet_opts = argparse.ArgumentParser(add_help=False)
    _add_options(fleet_opts)
    takes_value = _option_arity(fleet_opts)
    commands = command_names()
    targets: list[str] = []
    command: list[str] = []
    options: list[str] = []
    own: dict[str, bool] = {}
    i = 0
    while i < len(words):
        w = words[i]
        opt = w.split("=", 1)[0] if w.startswith("--") else w
        if opt in takes_value and not (command and opt in own and opt in YIELDING):
            n = 2 if takes_value[opt] and "=" not in w else 1
            if i + n > len(words):
                raise ArgumentError(f"fleet: {opt} needs a value")
            options += words[i : i + n]
            i += n
            continue
        if not command and w in commands:
            command = [w]
            own = _option_arity(commands[w], GLOBAL_AFTER)
        elif command:
            command.append(w)
        else:
            targets.append(w)
        i += 1
    if not command:
        raise ArgumentError("fleet: no command given after the targets (e.g. ps, modules -p NAME, kmods)")
    return targets, command, options


def run_fleet_command(ctx: CommandContext) -> int:
    args = ctx.args
    targets_words, command, option_tokens = split_words(list(args.words))
    later = argparse.ArgumentParser(prog="pymemflow fleet", add_help=False)
    _add_options(later)
    for a in later._actions:  # only what is given after the targets overrides what came before them
        a.default = argparse.SUPPRESS
    later.parse_args(option_tokens, namespace=args)
    os_spec = args.fleet_os
    for flag, text in args.chain:  # `pymemflow -o win32 fleet ...` works like `fleet -o win32`
        if flag == "-c":
            raise ArgumentError("fleet: give targets after `fleet` (-c before the command name is one target)")
        os_spec = os_spec or text
    words = targets_words + [f"-c {c}" if not c.startswith("-") else c for c in args.fleet_chain]
    targets = resolve_targets(words, os_spec, args.targets_file)
    if not targets:
        raise ArgumentError("fleet: no targets (give dump paths, globs, connector specs or --targets-file)")
    opts = FleetOptions(scheduler=args.scheduler, workers=args.workers, retries=args.retries, timeout=args.timeout)
    top = getattr(args, "format", None)  # `pymemflow --jsonl fleet ...`
    fmt = args.fleet_format or (top if top and top != "table" else None)
    writers = []
    if args.parquet:
        writers.append(make_writer("parquet", ctx.out, args.parquet))
    if fmt or not args.parquet:
        writers.append(make_writer(fmt or "table", ctx.out, labels=[t.label for t in targets]))
    tally = Tally(len(targets))
    show = args.progress if args.progress is not None else (hasattr(ctx.err, "isatty") and ctx.err.isatty())
    bar = ProgressLine(tally, ctx.err, bool(show))

    def started(cluster: Any) -> None:
        bar.slots = cluster.slots
        bar.start()

    try:
        for res in run_fleet(targets, command, opts, on_start=started):
            tally.add(res)
            for w in writers:
                w.add(res)
            bar.draw()
        for w in writers:
            w.close()
    finally:
        bar.close()
    if args.parquet:
        ctx.err.write(f"fleet: wrote {tally.rows + tally.failed} rows to {args.parquet}\n")
    ctx.err.write(tally.summary() + "\n")
    ctx.err.flush()
    return 1 if tally.failed else 0

