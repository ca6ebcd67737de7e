"""``pymemflow [-v...] [-c CONNECTOR[:ARGS]]... [-o OS[:ARGS]]... COMMAND [--json|--jsonl|--csv]``.

``-c``, ``-o``, ``-v`` and the output formats are accepted after the command too. A typo of a command,
an option or a plugin gets "did you mean". Exit codes: 0 success, 2 usage errors (bad options, bad
plugin arguments: ``ArgumentError``), 1 failures (any other pymemflow error, ``OSError``, unsupported
operation). Errors are one line on stderr; ``-vvv`` adds the traceback. ``-v`` levels: warnings (``-v``), info (``-vv``), debug (``-vvv``).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from ..errors import ArgumentError, PymemflowError
from ..plugins.chain import LinkSpec
from ..plugins.chain import parse_chain_args as _parse_links
from ..types import did_you_mean
from .commands import COMMAND_MODULES, COMMAND_OWNERS
from .context import CommandContext
from .output import FORMATS

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
    """argparse with one-line ``pymemflow: error: ...`` messages, "did you mean" for wrong choices and
    the messages of our value parsers (``'zz' is not a number ...``) instead of ``invalid parse_int value``."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(f"pymemflow: error: {command}{message}")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is None or value in action.choices:
            return
        names = [str(c) for c in action.choices]
        hint = did_you_mean(str(value), names)
        if isinstance(action, argparse._SubParsersAction):
            raise argparse.ArgumentError(None, f"unknown command {value!r}{hint} (commands: {', '.join(names)})")
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}{hint} (choose from {', '.join(names)})")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse builds a formatter for every add_argument; left to itself each one imports shutil
        # (and with it bz2, lzma, zlib) for the terminal width: 13 ms of a thin client's start
        return self.formatter_class(prog=self.prog, width=terminal_width() - 2)  # type: ignore[call-arg]

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        type_func = self._registry_get("type", action.type, action.type)
        if callable(type_func) and type_func not in (int, float):
            try:
                return type_func(arg_string)
            except (ValueError, TypeError, ArgumentError) as e:
                if str(e):
                    raise argparse.ArgumentError(action, str(e)) from None
        return super()._get_value(action, arg_string)


def terminal_width() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil: ``COLUMNS``, else stdout's
    terminal, else 80."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class ChainAction(argparse.Action):
    """``-c``/``-o`` append to one ordered list, so chains keep command-line order. After the command
    they go to ``chain_after`` (argparse gives a sub-command its own namespace and copies every value
    back, which would replace the links given before the command)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        attr = "chain" if self.dest in ("chain_c", "chain_o") else "chain_after"
        links = list(getattr(namespace, attr, None) or [])
        links.append(("-c" if self.dest.endswith("_c") else "-o", values))
        setattr(namespace, attr, links)


def _add_format_flags(p: argparse.ArgumentParser, default: Any) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", dest="format", action="store_const", const="json", default=default,
                   help="every field as one JSON document on stdout")
    g.add_argument("--jsonl", dest="format", action="store_const", const="jsonl", default=default,
                   help="one JSON object a line (a listing's records; otherwise the one object)")
    g.add_argument("--csv", dest="format", action="store_const", const="csv", default=default,
                   help="CSV with a header line; nested fields flattened to outer.inner columns")


class _VersionAction(argparse.Action):
    """``--version``: the version and which read path runs (compiled or pure Python, and why); the read
    path module is imported only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_a: Any, **_k: Any) -> None:
        from ..mem.fast import READ_PATH  # lazy: only --version needs the read path

        print(f"pymemflow {__version__}\nread path: {READ_PATH}")
        parser.exit()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, only the module of its command is loaded (see
    :data:`~pymemflow.cli.commands.COMMAND_OWNERS`), else every command module."""
    p = Parser(prog="pymemflow", description="Physical-memory introspection: connectors, OS layers, commands.",
               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v warnings, "
                   "-vv info, -vvv debug and tracebacks)")
    p.add_argument("-c", "--connector", dest="chain_c", action=ChainAction, metavar="CONNECTOR[:ARGS]",
                   help="add a connector to the chain (NAME:target,key=value:middleware; a bare path means auto:PATH)")
    p.add_argument("-o", "--os", dest="chain_o", action=ChainAction, metavar="OS[:ARGS]",
                   help="add an OS layer to the chain")
    _add_format_flags(p, "table")
    p.add_argument("--version", action=_VersionAction, help="show the version and the read path in use, and exit")
    p.set_defaults(chain=[])
    word = _command_word(p, argv) if argv is not None else None
    owner = COMMAND_OWNERS.get(word or "")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in [owner] if owner else COMMAND_MODULES:
        modname = name if "." in name else f"{__package__}.commands.{name}"
        try:
            mod = importlib.import_module(modname)
            mod.register(_OnlyCommand(sub, word) if owner else sub)
        except Exception as e:  # one broken command module must not take the CLI down
            log.warning("command module %s skipped: %s: %s", modname, type(e).__name__, e)
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, sp in sub.choices.items():
        _add_common(sp)
        sp.description = plain_text(sp.description or helps.get(name) or "")
    return p


class _OnlyCommand:
    """The sub-parsers action as a command module's ``register(sub)`` sees it when the command line
    names one of its commands: only that command's parser is built (the module's others, with their
    options and help texts, would be thrown away unused). Anything else goes to the real action."""

    def __init__(self, sub: Any, command: str | None) -> None:
        self._sub = sub
        self._command = command

    def add_parser(self, name: str, **kw: Any) -> Any:
        if name == self._command or self._command in kw.get("aliases", ()):
            return self._sub.add_parser(name, **kw)
        return _Unused()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sub, name)


class _Unused:
    """A parser not built: every call on it (``add_argument``, ``set_defaults``, groups ...) is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return self._ignore

    def _ignore(self, *_a: Any, **_k: Any) -> _Unused:
        return self


def _command_word(p: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The first word of ``argv`` that is neither an option nor an option's value (``-c X``)."""
    valued = {s for a in p._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}
    words = iter(argv)
    for w in words:
        if w in ("-h", "--help"):
            return None
        if w in valued:
            next(words, None)
        elif not w.startswith("-"):
            return w
    return None


def plain_text(doc: str) -> str:
    """A docstring as ``--help`` text: reStructuredText roles and literals (``:class:`X```, ````x````)
    become the plain words, ``::`` before an example becomes ``:``."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"::$", ":", text.strip(), flags=re.M)


def _add_common(sp: argparse.ArgumentParser) -> None:
    """The global options after the command too: ``-c``/``-o`` (unless the command has its own ``-c``,
    as ``targets -c NAME``), ``-v`` and the output formats (SUPPRESS keeps the top-level value otherwise)."""
    opts = {s for a in sp._actions for s in a.option_strings}
    if not opts & {"--json", "--jsonl", "--csv"}:
        _add_format_flags(sp, argparse.SUPPRESS)
    if not opts & {"-v", "--verbose"}:
        sp.add_argument("-v", "--verbose", dest="verbose_sub", action="count", default=argparse.SUPPRESS,
                        help="more log output")
    if "-c" not in opts:
        sp.add_argument("-c", "--connector", dest="after_c", action=ChainAction, metavar="CONNECTOR[:ARGS]",
                        default=argparse.SUPPRESS, help="add a connector (same as before the command)")
    if "-o" not in opts:
        sp.add_argument("-o", "--os", dest="after_o", action=ChainAction, metavar="OS[:ARGS]",
                        default=argparse.SUPPRESS, help="add an OS layer (same as before the command)")


def _unrecognized(parser: argparse.ArgumentParser, command: str | None, extra: list[str]) -> str:
    """``unrecognized arguments: --jsn (did you mean --json?)``, options of the command included; an
    option only ``pymemflow`` itself takes (``--version``) is told to move before the command."""
    top = {s for a in parser._actions for s in a.option_strings}
    sub = _subparser(parser, command)
    options = top | ({s for a in sub._actions for s in a.option_strings} if sub is not None else set())
    hints = []
    for x in extra:
        name = x.split("=", 1)[0]
        if not x.startswith("-"):
            continue
        if name in top and command:
            hints.append(f" ({name} is an option of pymemflow itself: put it before the command)")
        else:
            hints.append(did_you_mean(name, sorted(options), quote=False))
    where = f"{command}: " if command else ""
    return f"pymemflow: error: {where}unrecognized arguments: {' '.join(extra)}{''.join(dict.fromkeys(hints))}"


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction) and command in a.choices:
            sp: argparse.ArgumentParser = a.choices[command]
            return sp
    return None


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
    if argv is None:  # the program itself (console script, python -m pymemflow): the process ends after this
        atexit.register(_skip_final_collection)
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = _pre_verbosity(argv)
    _setup_logging(verbose)
    shown = warnings.showwarning
    if verbose < 3:  # -vvv keeps Python's own format (file and line)
        warnings.showwarning = _show_warning
    ctx: CommandContext | None = None
    command = "this command"
    try:
        parser = build_parser(argv)
        args, extra = parser.parse_known_args(argv)
        if extra:
            raise UsageError(_unrecognized(parser, getattr(args, "command", None), extra))
        if args.format not in FORMATS:
            raise UsageError(f"pymemflow: error: unknown output format {args.format!r}")
        verbose = int(args.verbose or 0) + int(getattr(args, "verbose_sub", 0) or 0)
        args.verbose = verbose
        _setup_logging(verbose)
        if not getattr(args, "handler", None):
            parser.print_usage(sys.stderr)
            print("pymemflow: error: no command given (see pymemflow --help)", file=sys.stderr)
            return 2
        command = str(args.command)
        links: list[LinkSpec] = []
        for flag, text in list(args.chain) + list(getattr(args, "chain_after", [])):
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


def _skip_final_collection() -> None:
    """At exit, before the interpreter's last garbage collections: exempt every object left from them.
    They walk every object the imports made (~7 ms of a 60 ms ``pymemflow -o remote:... ps``) to free
    memory the operating system takes back anyway. Atexit handlers still run, stdout and stderr are
    still flushed, and objects still referenced (files, the chain) are finalized as before: only garbage
    in reference cycles is left to the operating system (Python never promised ``__del__`` at exit).
    Callers of :func:`main` with ``argv`` (tests, front ends in a process that goes on) are left alone."""
    gc.freeze()


def _report(e: BaseException, verbose: int, text: str | None = None) -> None:
    if verbose >= 3:
        import traceback

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
