"""Bounded decompressors for page- and frame-sized chunks.

Every decoder is told the exact size the chunk must decode to and never produces more (a
decompression bomb is a :class:`FormatError`, not a memory blow-up).

Choice of libraries: zlib is in the standard library. Snappy and zstd come from ``cramjam`` (one
maintained package with manylinux wheels, Rust implementations, raw and framed snappy, and
decode-into-buffer calls that bound the output). LZO comes from ``python-lzo`` (the maintained binding
of liblzo2; cramjam has no LZO). Both are optional: a dump that needs a missing one raises a
:class:`FormatError` saying which package to install.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError
from ...mem.view import U8Array

_INSTALL = {
    "lzo": "python-lzo (pip install python-lzo; building it needs liblzo2-dev)",
    "snappy": "cramjam (pip install cramjam)",
    "zstd": "cramjam (pip install cramjam)",
}


def _module(codec: str) -> Any:
    try:
        if codec == "lzo":
            import lzo

            return lzo
        import cramjam

        return cramjam
    except ImportError:
        return None


def available(codec: str) -> bool:
    return codec == "zlib" or _module(codec) is not None


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
            lzo = require("lzo", path, offset, field)
            out = lzo.decompress(data, False, size)
            if len(out) != size:
                raise ValueError(f"lzo data decodes to {len(out)} bytes, expected {size}")
            return np.frombuffer(out, dtype=np.uint8)
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
        return lambda b: bytes(mod.compress(b, 1, False))
    if codec == "snappy":
        return lambda b: bytes(mod.snappy.compress_raw(b))
    return lambda b: bytes(mod.zstd.compress(b))
