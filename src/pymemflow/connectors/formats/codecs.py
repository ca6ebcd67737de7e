"""Bounded decompressors for page- and frame-sized chunks.

Every decoder is told the exact size the chunk must decode to and never produces more (a
decompression bomb is a :class:`FormatError`, not a memory blow-up).

Choice of libraries: zlib is in the standard library. Snappy and zstd come from ``cramjam`` (one
maintained package with manylinux wheels, Rust implementations, raw and framed snappy, and
decode-into-buffer calls that bound the output); it is optional: a dump that needs it raises a
:class:`FormatError` saying which package to install. LZO is decoded by our own :mod:`.lzo` (the
liblzo2 binding has no wheels; the decoder is small), so LZO dumps need nothing extra. Writers that
make LZO data (tests' kdump files) use ``lzokay`` (abi3 wheels).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError
from ...mem.view import U8Array
from . import lzo

_INSTALL = {
    "lzo": "lzokay (pip install lzokay; only writing LZO needs it, reading is built in)",
    "snappy": "cramjam (pip install cramjam)",
    "zstd": "cramjam (pip install cramjam)",
}


def _module(codec: str) -> Any:
    try:
        if codec == "lzo":
            import lzokay

            return lzokay
        import cramjam

        return cramjam
    except ImportError:
        return None


def available(codec: str) -> bool:
    """Can data in ``codec`` be decoded here? (zlib and lzo always can.)"""
    return codec in ("zlib", "lzo") or _module(codec) is not None


def require(codec: str, path: str | Path, offset: int | None, field: str) -> Any:
    mod = _module(codec)
    if mod is None:
        raise FormatError(path, offset, field, f"{codec}-compressed data needs the optional package "
                          f"{_INSTALL[codec]}")
    return mod


def snappy_raw_length(data: bytes) -> int:
    """The uncompressed length a raw snappy block declares (its leading varint); -1 if malformed."""
    n = shift = 0
    for i, b in enumerate(data[:5]):
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n
        shift += 7
        if i == 4:
            break
    return -1


def decode(codec: str, data: bytes, size: int, path: str | Path, offset: int, field: str) -> U8Array:
    """Decompress ``data`` that must decode to exactly ``size`` bytes."""
    try:
        if codec == "zlib":
            d = zlib.decompressobj()
            out = d.decompress(data, size + 1)
            if len(out) != size:
                raise ValueError(f"zlib data decodes to {len(out)} bytes (at least), expected {size}")
            return np.frombuffer(out, dtype=np.uint8)
        if codec == "lzo":
            return np.frombuffer(lzo.decompress(data, size), dtype=np.uint8)
        if codec == "snappy":
            cj = require("snappy", path, offset, field)
            n = snappy_raw_length(data)
            if n != size:
                raise ValueError(f"snappy block declares {n} bytes, expected {size}")
            buf = bytearray(size)
            got = cj.snappy.decompress_raw_into(data, buf)
            if got != size:
                raise ValueError(f"snappy data decodes to {got} bytes, expected {size}")
            return np.frombuffer(bytes(buf), dtype=np.uint8)
        if codec == "zstd":
            cj = require("zstd", path, offset, field)
            buf = bytearray(size)
            got = cj.zstd.decompress_into(data, buf)
            if got != size:
                raise ValueError(f"zstd data decodes to {got} bytes, expected {size}")
            return np.frombuffer(bytes(buf), dtype=np.uint8)
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - every codec library has its own error type
        raise FormatError(path, offset, field, f"corrupt {codec} data: {e}") from e
    raise FormatError(path, offset, field, f"unknown compression {codec!r}")


def compressor(codec: str) -> Callable[[bytes], bytes]:
    """A compressor for writers (tests make lzo/snappy/zstd kdump files QEMU here cannot)."""
    if codec == "zlib":
        return lambda b: zlib.compress(b, 1)
    mod = _module(codec)
    if mod is None:
        raise FormatError("-", None, "compression", f"{codec} needs the optional package {_INSTALL[codec]}")
    if codec == "lzo":
        return lambda b: bytes(mod.compress(b))
    if codec == "snappy":
        return lambda b: bytes(mod.snappy.compress_raw(b))
    return lambda b: bytes(mod.zstd.compress(b))
