"""What a command handler gets: the parsed arguments, the chain (opened on first use) and output
helpers that print a table/hexdump for people or plain JSON with ``--json``.

Output is plain text on purpose (no rendering library): it pipes, greps and diffs well, and
``--json`` must be nothing but JSON on stdout. Progress goes to stderr and only when it is a tty.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import IO, Any

from ..errors import ArgumentError, PartialReadError
from ..plugins.chain import LinkSpec, OpenedChain, open_links
from ..plugins.registry import Inventory, default_inventory

HEX_FIELDS = frozenset({
    "address", "base", "dtb", "user_dtb", "start", "end", "va", "pa", "virt", "phys", "addr",
    "max_address", "kernel_base", "real_base", "entry", "offset", "cr3", "pte", "pde",
})
"""Integer fields shown in hex in tables (JSON always has plain numbers)."""


MAX_READ = 1 << 32
"""Largest single read a command does into memory (4 GiB)."""


def _is_hex_field(name: str) -> bool:
    return name in HEX_FIELDS or name.endswith(("_address", "_addr", "_base", "_va", "_pa"))


def jsonable(obj: Any) -> Any:
    """JSON-friendly form: bytes as hex, enums by name, dataclasses/records via ``as_dict``."""
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, Enum):
        return obj.name
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "as_dict"):
        return jsonable(obj.as_dict())
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


def _cell(key: str, value: Any, width: int = 80) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:#x}" if _is_hex_field(key) and value >= 0 else str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).hex()
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(jsonable(value))
    text = str(value).replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def _flatten(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


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
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

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
            self._chain = open_links(self.links, self.inventory)
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
    def write_json(self, obj: Any) -> None:
        json.dump(jsonable(obj), self.out, indent=2)
        self.out.write("\n")

    def emit(self, rows: list[dict[str, Any]], columns: list[str] | None = None, title: str | None = None) -> None:
        """A table (``columns`` chosen and ordered; default: the keys of the first row) or, with
        ``--json``, a JSON list of the rows with all their fields."""
        if self.json:
            self.write_json(rows)
            return
        cols = list(columns) if columns else (list(rows[0].keys()) if rows else [])
        if title:
            self.out.write(f"{title}\n")
        if not rows:
            self.out.write("(none)\n")
            return
        cells = [[_cell(c, r.get(c)) for c in cols] for r in rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        right = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                     for r in rows if r.get(c) is not None) for c in cols]

        def line(values: list[str]) -> str:
            parts = [v.rjust(w) if rj else v.ljust(w) for v, w, rj in zip(values, widths, right, strict=True)]
            return "  ".join(parts).rstrip() + "\n"

        self.out.write(line([c.upper() for c in cols]))
        for row in cells:
            self.out.write(line(row))

    def emit_obj(self, obj: dict[str, Any], title: str | None = None) -> None:
        """One object: ``key  value`` lines (nested dicts flattened with dots) or a JSON object."""
        if self.json:
            self.write_json(obj)
            return
        if title:
            self.out.write(f"{title}\n")
        items = _flatten(obj)
        width = max((len(k) for k, _ in items), default=0)
        for k, v in items:
            self.out.write(f"{k.ljust(width)}  {_cell(k.rsplit('.', 1)[-1], v, 100)}\n")

    def hexdump(self, data: bytes, base: int) -> None:
        """Classic 16-bytes-a-line hexdump, or ``{"address", "length", "hex"}`` with ``--json``."""
        if self.json:
            self.write_json({"address": base, "length": len(data), "hex": bytes(data).hex()})
            return
        self.out.write(hexdump_text(data, base))

    def read_reporting(self, mem: Any, addr: int, n: int) -> tuple[bytes, int]:
        """Read ``n`` bytes at ``addr`` from ``mem`` (a MemoryView). Unreadable parts come back zeroed
        and are reported in one line on stderr; returns (data, unreadable byte count)."""
        if n < 0 or n > MAX_READ:
            raise ArgumentError(f"length {n:#x} out of range (0 .. {MAX_READ:#x})")
        try:
            return mem.read(addr, n), 0
        except PartialReadError as e:
            bad = sum(f.length for f in e.failures)
            shown = "; ".join(f"{f.length:#x} at {f.address:#x}: {f.reason}" for f in e.failures[:3])
            more = f" (+{len(e.failures) - 3} more)" if len(e.failures) > 3 else ""
            self.err.write(f"pymemflow: error: {bad} of {n} bytes unreadable (zero-filled): {shown}{more}\n")
            return e.data, bad

    def output_bytes(self, data: bytes, addr: int, out: str | None) -> None:
        """``--out FILE`` (raw bytes; ``-`` is stdout), else a hexdump (or JSON)."""
        if out == "-":
            self.out.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        elif out:
            Path(out).write_bytes(data)
            if not self.json:
                self.err.write(f"wrote {len(data)} bytes to {out}\n")
        else:
            self.hexdump(data, addr)

    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[Progress]:
        """``with ctx.progress(n, "dumping") as bar: bar.advance(k)`` -- quiet with --json or no tty."""
        enabled = not self.json and hasattr(self.err, "isatty") and self.err.isatty()
        bar = Progress(total, description, self.err, enabled)
        try:
            yield bar
        finally:
            bar.finish()


def hexdump_text(data: bytes, base: int) -> str:
    lines = []
    width = 16 if base + len(data) > 0xFFFFFFFF else 8
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        hx = " ".join(f"{b:02x}" for b in chunk[:8]) + "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        txt = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{base + off:0{width}x}  {hx:<49} |{txt}|\n")
    return "".join(lines)
