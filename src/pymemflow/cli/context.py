"""What a command handler gets: the parsed arguments, the chain (opened on first use) and output
helpers that print a table/hexdump for people or ``--json``/``--jsonl``/``--csv`` for programs
(:mod:`pymemflow.cli.output`).

Output is plain text on purpose (no rendering library): it pipes, greps and diffs well, and the
machine formats must be nothing but data on stdout. Progress goes to stderr and only when it is a tty.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from ..errors import ArgumentError
from ..plugins.chain import LinkSpec, OpenedChain, open_links
from ..plugins.registry import Inventory, default_inventory
from .output import Output, jsonable

__all__ = ["CommandContext", "Progress", "jsonable"]


class Progress:
    """A one-line progress bar on stderr; silent when ``enabled`` is False."""

    def __init__(self, total: int, description: str, stream: IO[str], enabled: bool) -> None:
        self.total = max(int(total), 0)
        self.done = 0
        self.description = description
        self.stream = stream
        self.enabled = enabled
        self._last = 0.0
        self._start = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += int(n)
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0) if self.total else 0.0
        bar = "#" * int(frac * 30)
        rate = self.done / max(now - self._start, 1e-9)
        self.stream.write(f"\r{self.description} [{bar:<30}] {frac * 100:5.1f}% {_human(rate)}/s ")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


class ProgressBars:
    """The CLI's :class:`~pymemflow.types.ProgressReporter`: the OS layers' long work (scans) as one
    bar per task on stderr. Layers only report; drawing is the CLI's job."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._bar: Progress | None = None

    def __call__(self, task: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None or self._bar.description != task:
            self.finish()
            self._bar = Progress(total, task, self.stream, True)
        self._bar.total = max(int(total), 0)
        self._bar.advance(int(done) - self._bar.done)
        if done >= total:
            self.finish()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.finish()
            self._bar = None


def _human(n: float) -> str:
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}B"
        n /= 1024
    return f"{n:.1f} PiB"


class CommandContext:
    """Everything a command handler needs (see ``pymemflow.cli.commands``)."""

    def __init__(self, args: argparse.Namespace, links: Sequence[LinkSpec] = (),
                 inventory: Inventory | None = None, out: IO[str] | None = None,
                 err: IO[str] | None = None) -> None:
        self.args = args
        self.links = list(links)
        self._inventory = inventory
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._chain: OpenedChain | None = None

    # --- the chain ---
    @property
    def verbose(self) -> int:
        return int(getattr(self.args, "verbose", 0) or 0)

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = default_inventory()
        return self._inventory

    @property
    def chain(self) -> OpenedChain:
        """The chain from ``-c``/``-o``, opened on first use."""
        if self._chain is None:
            if not self.links:
                raise ArgumentError("this command needs a target: give -c CONNECTOR[:ARGS] and/or -o OS[:ARGS] "
                                    "before the command (see `pymemflow plugins`)")
            bars = ProgressBars(self.err, self._bars())
            try:
                self._chain = open_links(self.links, self._inventory, progress=bars)  # None: only the plugins named
            finally:
                bars.finish()  # a scan that found what it looked for stops before 100%
        return self._chain

    def connector(self) -> Any:
        """The chain's last connector (a ``PhysicalMemory``)."""
        if not any(lk.kind == "connector" for lk in self.links):
            raise ArgumentError("this command needs a connector: give -c CONNECTOR[:ARGS] before the command")
        return self.chain.connector

    def os(self) -> Any:
        """The chain's last OS layer."""
        if not any(lk.kind == "os" for lk in self.links):
            raise ArgumentError("this command needs an OS layer: give -o OS[:ARGS] (after -c CONNECTOR) "
                                "before the command")
        return self.chain.os

    def close(self) -> None:
        if self._chain is not None:
            self._chain.close()
            self._chain = None

    # --- output ---
    @property
    def format(self) -> str:
        """``table``, ``json``, ``jsonl`` or ``csv`` (the ``--json``/``--jsonl``/``--csv`` flags)."""
        return str(getattr(self.args, "format", None) or ("json" if getattr(self.args, "json", False) else "table"))

    @property
    def machine(self) -> bool:
        """Machine output asked for (any of --json, --jsonl, --csv): nothing but data on stdout."""
        return self.format != "table"

    json = machine
    """Older name of :attr:`machine` (command modules written before --jsonl/--csv use it)."""

    @property
    def output(self) -> Output:
        return Output(self.format, self.out)

    def write_json(self, obj: Any) -> None:
        self.output.json(obj)

    def emit(self, rows: list[dict[str, Any]], columns: list[str] | None = None, title: str | None = None) -> None:
        """A listing: a table of ``columns`` (chosen and ordered; default: the keys of the first row),
        or every field of every row as JSON / JSON lines / CSV."""
        self.output.rows(rows, columns, title)

    def emit_stream(self, rows: Iterable[dict[str, Any]], columns: list[str],
                    widths: dict[str, int] | None = None) -> int:
        """A listing printed as ``rows`` yields its records (long scans): see :meth:`Output.stream`."""
        return self.output.stream(rows, columns, widths)

    def progress_bars(self) -> ProgressBars:
        """A :class:`~pymemflow.types.ProgressReporter` drawing the layers' long work on stderr
        (quiet with machine output or no tty); call ``finish()`` when done."""
        return ProgressBars(self.err, self._bars())

    def emit_obj(self, obj: dict[str, Any], title: str | None = None) -> None:
        """One object: ``key  value`` lines (nested dicts flattened with dots), or the machine format."""
        self.output.obj(obj, title)

    def _bars(self) -> bool:
        """Progress bars only for a human: stderr is a terminal and the output is not machine-readable."""
        return not self.machine and hasattr(self.err, "isatty") and self.err.isatty()

    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[Progress]:
        """``with ctx.progress(n, "dumping") as bar: bar.advance(k)`` -- quiet with --json or no tty."""
        bar = Progress(total, description, self.err, self._bars())
        try:
            yield bar
        finally:
            bar.finish()
