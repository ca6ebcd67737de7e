"""``phys-read`` and ``read``: memory to a hexdump, a file or stdout, in bounded memory.

Whatever the length asked, memory is read in chunks of :data:`CHUNK` bytes (``MemoryView.iter_read``)
and each chunk is written before the next is read, so ``phys-read 0 4g --out F`` on a 1 MiB target
costs a few MiB, not 4 GiB. A hexdump shows at most :data:`HEXDUMP_CAP` bytes and says so on stderr.
Unreadable bytes are never shown as data: ``??`` in the hexdump (and the JSON ``hex``); in a file
they are zero (holes in a sparse file), reported on stderr with the exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from ..errors import ArgumentError, RangeError, ReadFailure
from ..types import ArgSpec, parse_int

CHUNK = 1 << 20
HEXDUMP_CAP = 64 << 10
"""4096 lines: more is not read by a person; ``--out`` takes any length."""

ADDRESS = ArgSpec("addr", "address (0x hex, size suffixes)", parse=parse_int, minimum=0, maximum=(1 << 64) - 1)
LENGTH = ArgSpec("length", "bytes to read (0x100, 4k, 4g)", parse=parse_int, minimum=0, maximum=1 << 64)


def arg_type(spec: ArgSpec) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses and range-checks like a plugin argument."""

    def convert(text: str) -> Any:
        try:
            return spec.check(spec.parse(text))
        except ValueError as e:
            raise RangeError(str(e)) from None

    convert.__name__ = spec.name
    return convert


def add_read_arguments(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("addr", type=arg_type(ADDRESS), help=f"{what} address (0x hex, size suffixes)")
    p.add_argument("length", type=arg_type(LENGTH),
                   help=f"bytes to read (0x100, 4k); a hexdump shows at most {HEXDUMP_CAP:#x} of them")
    p.add_argument("--out", metavar="FILE", help="write the raw bytes to FILE ('-' for stdout), streamed")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


class Unreadable:
    """The failed ranges of a streamed read, merged across chunks; one line on stderr at the end."""

    def __init__(self) -> None:
        self.ranges: list[list[Any]] = []  # [address, length, reason]
        self.bytes = 0

    def add(self, failures: list[ReadFailure]) -> None:
        for f in failures:
            self.bytes += f.length
            last = self.ranges[-1] if self.ranges else None
            if last is not None and last[0] + last[1] == f.address and last[2] == f.reason:
                last[1] += f.length
            else:
                self.ranges.append([f.address, f.length, f.reason])

    def report(self, err: IO[str], total: int, how: str) -> None:
        if not self.bytes:
            return
        shown = "; ".join(f"{n:#x} at {a:#x}: {r}" for a, n, r in self.ranges[:3])
        more = f" (+{len(self.ranges) - 3} more)" if len(self.ranges) > 3 else ""
        err.write(f"pymemflow: error: {self.bytes} of {total} bytes unreadable ({how}): {shown}{more}\n")


def _mask(addr: int, n: int, failures: list[ReadFailure]) -> bytearray:
    """One byte per byte read: 1 where it could not be read."""
    bad = bytearray(n)
    for f in failures:
        lo = max(0, f.address - addr)
        hi = min(n, f.address - addr + f.length)
        bad[lo:hi] = b"\x01" * max(0, hi - lo)
    return bad


def hexdump_lines(data: bytes, bad: bytearray, base: int, width: int) -> str:
    """16 bytes a line; unreadable bytes are ``??`` (and a blank in the text column), never data."""
    lines = []
    for off in range(0, len(data), 16):
        cells = [("??" if bad[off + i] else f"{b:02x}") for i, b in enumerate(data[off : off + 16])]
        hx = " ".join(cells[:8]) + "  " + " ".join(cells[8:])
        txt = "".join(" " if bad[off + i] else (chr(b) if 32 <= b < 127 else ".")
                      for i, b in enumerate(data[off : off + 16]))
        lines.append(f"{base + off:0{width}x}  {hx:<49} |{txt}|\n")
    return "".join(lines)


def _open_out(out: str, force: bool) -> tuple[IO[bytes], bool]:
    """The output stream and whether holes may be left by seeking (a regular file)."""
    if out == "-":
        return sys.stdout.buffer, False
    if os.path.exists(out) and not force and os.path.isfile(out):
        raise ArgumentError(f"{out} exists; pass --force to overwrite it")
    f = open(out, "wb")
    return f, os.path.isfile(out)


def read_out(ctx: Any, mem: Any, addr: int, length: int, out: str | None, force: bool = False) -> int:
    """The whole of ``read``/``phys-read`` after the view is chosen; returns the exit code."""
    if out:
        return _to_stream(ctx, mem, addr, length, out, force)
    return _hexdump(ctx, mem, addr, length)


def _to_stream(ctx: Any, mem: Any, addr: int, length: int, out: str, force: bool) -> int:
    bad = Unreadable()
    f, sparse = _open_out(out, force)
    written = 0
    try:
        if out == "-":
            ctx.out.flush()
        with ctx.progress(length, "read") as bar:
            for _, data, failures in mem.iter_read(addr, length, CHUNK):
                bad.add(failures)
                if sparse and failures and sum(x.length for x in failures) == len(data):
                    f.seek(len(data), os.SEEK_CUR)  # all unreadable: a hole, not written zeros
                else:
                    f.write(data)
                written += len(data)
                bar.advance(len(data))
        if sparse:
            f.truncate(written)
    finally:
        if f is not sys.stdout.buffer:
            f.close()
        else:
            f.flush()
    if out != "-" and not ctx.machine:
        ctx.err.write(f"wrote {written} bytes to {out}\n")
    bad.report(ctx.err, length, f"zero-filled in {out}" if out != "-" else "zero-filled on stdout")
    return 1 if bad.bytes else 0


def _hexdump(ctx: Any, mem: Any, addr: int, length: int) -> int:
    shown = min(length, HEXDUMP_CAP, (1 << 64) - addr)
    bad = Unreadable()
    width = 16 if addr + shown > 0xFFFFFFFF else 8
    chunks: list[tuple[bytes, bytearray]] = []
    for a, data, failures in mem.iter_read(addr, shown, CHUNK):
        bad.add(failures)
        mask = _mask(a, len(data), failures)
        if ctx.machine:
            chunks.append((data, mask))
        else:
            ctx.out.write(hexdump_lines(data, mask, a, width))
    if ctx.machine:
        whole = b"".join(d for d, _ in chunks)
        marks = b"".join(m for _, m in chunks)
        hx = "".join("??" if m else f"{b:02x}" for b, m in zip(whole, marks, strict=True))
        ctx.emit_obj({"address": addr, "length": len(whole), "hex": hx, "requested": length,
                      "unreadable": [{"address": a, "length": n, "reason": r} for a, n, r in bad.ranges]})
    if shown < length:
        ctx.err.write(f"pymemflow: note: hexdump capped at {shown:#x} of {length:#x} bytes; "
                      "use --out FILE (or --out - for stdout) to get all of it\n")
    bad.report(ctx.err, shown, "shown as ??")
    return 1 if bad.bytes else 0
