"""Pluggable CLI command modules.

Each module listed in :data:`COMMAND_MODULES` (``pymemflow.cli.commands.<name>``, or a full dotted name for a
front end that sits above the CLI and is loaded by name only) defines
``register(sub)`` -- ``sub`` is the argparse subparsers action -- and adds its parsers with
``p.set_defaults(handler=run_x)``; a handler takes a
:class:`~pymemflow.cli.context.CommandContext` and returns the exit code::

    from pymemflow.cli.context import CommandContext
    from pymemflow.plugins.api import parse_int

    def register(sub) -> None:
        p = sub.add_parser("translate", help="virtual -> physical")
        p.add_argument("va", type=parse_int)
        p.set_defaults(handler=run_translate)

    def run_translate(ctx: CommandContext) -> int:
        ctx.emit_obj({"va": ctx.args.va, ...})
        return 0

A listed module that fails to import (or to register) is skipped with a warning shown at ``-v``,
so one broken command never takes the CLI down. Every sub-command automatically accepts the output
formats ``--json``/``--jsonl``/``--csv``, ``-v`` and ``-c``/``-o`` (also accepted before the command);
print records with ``ctx.emit(rows, columns)`` / ``ctx.emit_obj(obj)`` so every format works
(tests/cli/test_formats.py runs each command in each format: list a new command there).
"""

COMMAND_MODULES: list[str] = [
    "core",  # plugins, targets, info, phys-read
    "osinfo",  # ps, modules, kmods, exports, imports, sections, maps, read, dump-module
    "translate",  # virtual -> physical (translation helper)
    "dump",  # dump-phys (snapshot helper)
    "win32",  # Windows-specific commands
    "linux",  # Linux-specific commands (dmesg)
    "bench",  # benchmarks from the CLI
    "pymemflow.fleet.command",  # one listing command over many targets on Dask (fleet runs the CLI's commands, so
    # it sits above the CLI: its command module lives in the fleet package and is loaded by name only)
    "serve",  # the HTTP/JSON daemon (pymemflow.serve)
    "mount",  # FUSE file system over the chain (pymemflow.fs)
    "gdbserver",  # GDB remote-serial-protocol server (pymemflow.gdb)
    "scan",  # search memory for patterns, strings, YARA rules (pymemflow.scan)
    "forensics",  # threads, handles, psscan, netscan, timeline, malfind (pymemflow.os.forensics)
]

COMMAND_OWNERS: dict[str, str] = {
    **dict.fromkeys(["plugins", "targets", "info", "phys-read"], "core"),
    **dict.fromkeys(["ps", "modules", "kmods", "exports", "imports", "sections", "maps", "read", "dump-module"],
                    "osinfo"),
    "translate": "translate",
    "dump-phys": "dump",
    "keys": "win32",
    "dmesg": "linux",
    "bench": "bench",
    "fleet": "pymemflow.fleet.command",
    "serve": "serve",
    "mount": "mount",
    "gdbserver": "gdbserver",
    "scan": "scan",
    **dict.fromkeys(["threads", "handles", "psscan", "netscan", "timeline", "malfind"], "forensics"),
}
"""Which module registers each command, so a run imports only the module of the command it runs
(``pymemflow -o remote:... ps`` must start in milliseconds, without the NumPy that ``translate`` or
``bench`` bring). ``--help``, no command or an unknown one still load them all. tests/cli check that
this table matches what the modules register."""
