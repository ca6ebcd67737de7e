"""One target, one command, on whatever process runs it (a Dask worker, or this one).

The command is the CLI's own: its argv is parsed by the CLI's parser and its handler runs on a
:class:`RecordingContext`, a :class:`~pymemflow.cli.context.CommandContext` whose output calls
(``emit``, ``emit_obj``, ``write_json``, ``hexdump``) collect records instead of printing them. So
every listing command -- including ones added later -- works in a fleet unchanged, and its records
are exactly what ``pymemflow ... COMMAND --json`` prints for that target alone.

Failures are data: whatever the command raises becomes the result's ``error`` (with the records it
produced before failing); a per-target timeout interrupts the command's thread.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..cli.context import CommandContext
from ..cli.main import UsageError, _one_line, build_parser
from ..cli.output import jsonable
from ..errors import ArgumentError, PymemflowError
from .targets import Target

NOT_FLEET_COMMANDS = frozenset({"fleet", "dump-module", "dump-phys", "bench", "serve"})
"""Commands that write files, run a daemon, loop or measure this machine: not something to fan out.
Any other command given an output file (an ``out`` argument, as ``read --out``) is refused too."""


class TargetTimeout(Exception):
    """Raised inside a command's thread when its target's time is up."""


@dataclass
class TargetResult:
    """What one target gave: its records (``target`` not included), the command's table columns,
    the error that ended it (``None``: success), and where and how long it ran."""

    target: str
    index: int
    records: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] | None = None
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    worker: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def rows(self) -> list[dict[str, Any]]:
        """Output rows: ``target`` first, then the record's fields; a failure adds one row with
        ``target`` and ``error`` after the partial records."""
        out = [{"target": self.target, **r} for r in self.records]
        if self.error is not None:
            out.append({"target": self.target, "error": self.error})
        return out


@lru_cache(maxsize=1)
def cli_parser() -> argparse.ArgumentParser:
    """The CLI's parser, built once per process (it imports every command module)."""
    return build_parser()


def command_names() -> dict[str, argparse.ArgumentParser]:
    """The CLI's sub-commands by name."""
    for action in cli_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parse_command(argv: Sequence[str]) -> argparse.Namespace:
    """``["modules", "-p", "explorer.exe"]`` -> the CLI's namespace, set up for machine output.
    Raises :class:`ArgumentError` for anything the CLI would reject with exit code 2."""
    argv = list(argv)
    if not argv:
        raise ArgumentError("fleet: no command given (e.g. ps, modules -p NAME, kmods)")
    name = argv[0]
    commands = command_names()
    if name not in commands:
        raise ArgumentError(f"fleet: unknown command {name!r} (one of {', '.join(sorted(commands))})")
    if name in NOT_FLEET_COMMANDS:
        raise ArgumentError(f"fleet: {name} is not a listing command; it cannot run over a fleet")
    try:
        args = cli_parser().parse_args(argv)
    except UsageError as e:
        raise ArgumentError(str(e)) from None
    except SystemExit:  # --help
        raise ArgumentError(f"fleet: {name} --help is not a command to run over a fleet") from None
    if getattr(args, "out", None):
        raise ArgumentError(f"fleet: {name} --out writes a file; a fleet collects records (drop --out)")
    args.json = True  # machine output: commands that print text for people emit records instead
    args.format = "json"
    args.verbose = 0
    return args


class RecordingContext(CommandContext):
    """A command context whose output is records, kept in ``self.records`` as plain JSON values."""

    def __init__(self, args: argparse.Namespace, target: Target) -> None:
        super().__init__(args, target.links, out=io.StringIO(), err=io.StringIO())
        self.records: list[dict[str, Any]] = []
        self.columns: list[str] | None = None

    def _add(self, rows: Iterable[Any]) -> None:
        for r in rows:  # one at a time: a generator that fails mid-way keeps what it gave
            value = jsonable(r)
            self.records.append(value if isinstance(value, dict) else {"value": value})

    def emit(self, rows: Iterable[dict[str, Any]], columns: list[str] | None = None,
             title: str | None = None, **_: Any) -> None:
        if columns and self.columns is None:
            self.columns = list(columns)
        self._add(rows)

    def emit_stream(self, rows: Iterable[dict[str, Any]], columns: list[str], widths: Any = None) -> int:
        before = len(self.records)
        self.emit(rows, columns)
        return len(self.records) - before

    def emit_obj(self, obj: dict[str, Any], title: str | None = None, **_: Any) -> None:
        self._add([obj])

    def write_json(self, obj: Any) -> None:
        self._add(obj if isinstance(obj, list) else [obj])

    def hexdump(self, data: bytes, base: int) -> None:
        self._add([{"address": base, "length": len(data), "hex": bytes(data).hex()}])

    def text_records(self) -> list[dict[str, Any]]:
        """Lines a command printed itself (not through ``emit``), as ``{"line": ...}`` records."""
        text = self.out.getvalue() if isinstance(self.out, io.StringIO) else ""
        return [{"line": line} for line in text.splitlines()]


def describe_error(e: BaseException, command: str = "this command") -> str:
    """One line, worded as the CLI words the same failure (see ``pymemflow.cli.main.main``)."""
    if isinstance(e, NotImplementedError):
        why = f" ({_one_line(e)})" if str(e) else ""
        return f"{command}: not supported by this chain's OS layer or connector{why}"
    if isinstance(e, (PymemflowError, OSError, TargetTimeout)):
        return _one_line(e)
    return f"internal error: {type(e).__name__}: {_one_line(e)}"


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc) if exc is not None else None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TargetTimeout` in this thread after ``seconds`` (at the next Python bytecode:
    a C call already running finishes first). ``None``: no limit."""
    if not seconds or seconds <= 0:
        yield
        return
    tid = threading.get_ident()
    lock = threading.Lock()
    state = {"armed": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["armed"]:
                state["fired"] = True
                _async_raise(tid, TargetTimeout)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["armed"] = False
            if state["fired"]:
                _async_raise(tid, None)  # clear it if it has not been delivered yet


def _warning_lines(caught: list[warnings.WarningMessage] | None) -> list[str]:
    """What the OS layer warned about (cut-short lists, capped sizes), once each, in order."""
    seen: dict[str, None] = {}
    for w in caught or []:
        seen[f"{w.category.__name__}: {w.message}"] = None
    return list(seen)


def _where() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


STUCK_GRACE = 10.0
"""Seconds past its timeout a command may take to stop after being interrupted (it may be inside one
long C call) before its result is given up for it."""


def run_target(target: Target, command: Sequence[str], timeout: float | None = None,
               index: int = 0) -> TargetResult:
    """Run ``command`` (CLI argv, e.g. ``["ps"]``) on ``target``; never raises for the target's sake.

    With a ``timeout`` the command runs in a thread of its own: interrupted when its time is up, and if
    it does not stop (blocked in C code, a hung device) the target still ends, as timed out, after
    :data:`STUCK_GRACE` more seconds -- the stuck thread is left behind, the worker goes on."""
    where = _where()
    if not timeout or timeout <= 0:
        return _run(target, command, None, index, where)
    box: list[TargetResult] = []
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: box.append(_run(target, command, timeout, index, where)),
                          name=f"pymemflow-fleet-{index}", daemon=True)
    th.start()
    th.join(timeout + STUCK_GRACE)
    if box:
        return box[0]
    return TargetResult(target.label, index, worker=where, seconds=time.monotonic() - t0,
                        error=f"timed out after {timeout:g} s (the command did not stop; its thread was left behind)")


def _run(target: Target, command: Sequence[str], timeout: float | None, index: int, where: str) -> TargetResult:
    t0 = time.monotonic()
    res = TargetResult(target.label, index, worker=where)
    ctx: RecordingContext | None = None
    caught: list[warnings.WarningMessage] = []
    try:
        with deadline(timeout), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            args = parse_command(command)
            ctx = RecordingContext(args, target)
            code = int(args.handler(ctx) or 0)
            if not ctx.records:
                ctx.records = ctx.text_records()
            if code != 0:
                detail = ctx.err.getvalue().strip().replace("\n", " | ") if isinstance(ctx.err, io.StringIO) else ""
                res.error = f"{command[0]} exited with status {code}" + (f": {detail}" if detail else "")
    except TargetTimeout:
        res.error = f"timed out after {timeout:g} s"
    except Exception as e:
        res.error = describe_error(e, command[0] if command else "this command")
    finally:
        res.warnings += _warning_lines(caught)
        if ctx is not None:
            res.records, res.columns = ctx.records, ctx.columns
            try:
                ctx.close()
            except Exception as e:  # the records are read; a failing close is only worth a warning
                res.warnings.append(f"closing the chain failed: {describe_error(e)}")
            if isinstance(ctx.err, io.StringIO) and ctx.err.getvalue().strip() and res.error is None:
                res.warnings += ctx.err.getvalue().strip().splitlines()
        res.seconds = time.monotonic() - t0
    return res
