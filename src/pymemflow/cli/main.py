"""``pymemflow [-v...] [-c CONNECTOR[:ARGS]]... [-o OS[:ARGS]]... COMMAND [--json]``.

Exit codes: 0 success, 2 usage errors (bad options, bad plugin arguments: ``ArgumentError``),
1 failures (any other pymemflow error, ``OSError``, unsupported operation). Errors are one line on
stderr; ``-vvv`` adds the traceback. ``-v`` levels: warnings (``-v``), info (``-vv``), debug (``-vvv``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from ..errors import ArgumentError, PymemflowError
from ..plugins.chain import LinkSpec
from ..plugins.chain import parse_chain_args as _parse_links
from .commands import COMMAND_MODULES
from .context import CommandContext

log = logging.getLogger("pymemflow.cli")

LOG_LEVELS = [logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG]

EPILOG = """\
chain examples:
  pymemflow -c dummy:size=64m info
  pymemflow -c raw:/x.img,memmap=m.toml:cache=true,cache_size=2m -o win32 ps
  pymemflow -o native -c qemu:vm -o win32 ps
`pymemflow plugins` lists connectors, OS layers and their arguments."""


class UsageError(Exception):
    """argparse's complaint, turned into exit code 2 with a one-line message."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


class ChainAction(argparse.Action):
    """``-c``/``-o`` append to one ordered list, so chains keep command-line order."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        links = list(getattr(namespace, "chain", None) or [])
        links.append(("-c" if self.dest == "chain_c" else "-o", values))
        namespace.chain = links


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="pymemflow", description="Physical-memory introspection: connectors, OS layers, commands.",
               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v warnings, "
                   "-vv info, -vvv debug and tracebacks)")
    p.add_argument("-c", "--connector", dest="chain_c", action=ChainAction, metavar="CONNECTOR[:ARGS]",
                   help="add a connector to the chain (NAME:target,key=value:middleware)")
    p.add_argument("-o", "--os", dest="chain_o", action=ChainAction, metavar="OS[:ARGS]",
                   help="add an OS layer to the chain")
    p.add_argument("--json", action="store_true", default=False, help="plain JSON on stdout")
    p.add_argument("--version", action="version", version=f"pymemflow {__version__}")
    p.set_defaults(chain=[])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        modname = f"{__package__}.commands.{name}"
        try:
            mod = importlib.import_module(modname)
            mod.register(sub)
        except Exception as e:  # one broken command module must not take the CLI down
            log.warning("command module %s skipped: %s: %s", modname, type(e).__name__, e)
    for sp in sub.choices.values():
        _add_common(sp)
    return p


def _add_common(sp: argparse.ArgumentParser) -> None:
    """``--json`` and ``-v`` after the command too (SUPPRESS keeps the top-level value otherwise)."""
    opts = {s for a in sp._actions for s in a.option_strings}
    if "--json" not in opts:
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="plain JSON on stdout")
    if "-v" not in opts:
        sp.add_argument("-v", dest="verbose_sub", action="count", default=argparse.SUPPRESS,
                        help="more log output")


def _pre_verbosity(argv: Sequence[str]) -> int:
    """Count -v before parsing, so warnings while building the parser are shown."""
    n = 0
    for a in argv:
        if a == "--verbose":
            n += 1
        elif a.startswith("-") and not a.startswith("--") and set(a[1:]) == {"v"}:
            n += len(a) - 1
    return n


def _setup_logging(verbose: int) -> None:
    level = LOG_LEVELS[min(verbose, len(LOG_LEVELS) - 1)]
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_pymemflow", False):
            root.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    h._pymemflow = True  # type: ignore[attr-defined]
    root.addHandler(h)
    root.setLevel(level)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Python warnings (cut-short walks, capped sizes, damaged symbols) as one stderr line each."""
    print(f"pymemflow: warning: {message}", file=sys.stderr)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().replace("\n", " | ") or type(e).__name__
    return text


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = _pre_verbosity(argv)
    _setup_logging(verbose)
    shown = warnings.showwarning
    if verbose < 3:  # -vvv keeps Python's own format (file and line)
        warnings.showwarning = _show_warning
    ctx: CommandContext | None = None
    command = "this command"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = int(args.verbose or 0) + int(getattr(args, "verbose_sub", 0) or 0)
        args.verbose = verbose
        _setup_logging(verbose)
        if not getattr(args, "handler", None):
            parser.print_usage(sys.stderr)
            print("pymemflow: error: no command given (see pymemflow --help)", file=sys.stderr)
            return 2
        command = str(args.command)
        links: list[LinkSpec] = []
        for flag, text in args.chain:
            links += _parse_links([flag, text])
        ctx = CommandContext(args, links)
        return int(args.handler(ctx) or 0)
    except UsageError as e:
        print(f"{e}", file=sys.stderr)
        return 2
    except ArgumentError as e:
        _report(e, verbose)
        return 2
    except NotImplementedError as e:
        why = f" ({_one_line(e)})" if str(e) else ""
        _report(e, verbose, f"{command}: not supported by this chain's OS layer or connector{why}")
        return 1
    except (PymemflowError, OSError) as e:
        if isinstance(e, BrokenPipeError):
            _silence_stdout()
            return 0
        _report(e, verbose)
        return 1
    except KeyboardInterrupt:
        print("pymemflow: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error still gets one line (traceback with -vvv)
        _report(e, verbose, f"internal error: {type(e).__name__}: {_one_line(e)}")
        return 1
    finally:
        warnings.showwarning = shown
        if ctx is not None:
            try:
                ctx.close()
            except Exception as e:
                log.warning("closing the chain failed: %s", e)


def _report(e: BaseException, verbose: int, text: str | None = None) -> None:
    if verbose >= 3:
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    print(f"pymemflow: error: {text or _one_line(e)}", file=sys.stderr)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
