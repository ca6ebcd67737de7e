"""Copy many (source offset, destination offset, length) pieces between byte arrays at once.

Small pieces are copied with one NumPy fancy-index gather (Python loops cost ~1 us per piece);
large pieces with one slice copy each (a memcpy). Connectors and map wrappers share this.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..errors import ReadFailure

U8 = npt.NDArray[np.uint8]

_LOOP_MAX_PIECES = 8
"""Up to this many pieces a Python loop of slice copies beats building index arrays."""
_GATHER_MAX_AVG = 256
"""Pieces averaging more bytes than this are copied one slice at a time."""


def copy_pieces(
    dst: U8,
    dst_off: npt.NDArray[np.int64],
    src: U8,
    src_off: npt.ArrayLike,
    lens: npt.NDArray[np.int64],
) -> None:
    """``dst[dst_off[i]:+lens[i]] = src[src_off[i]:+lens[i]]`` for every i (bounds already checked)."""
    k = int(lens.shape[0])
    if k == 0:
        return
    so = np.asarray(src_off).astype(np.int64, copy=False)
    total = int(lens.sum())
    if k <= _LOOP_MAX_PIECES or total > _GATHER_MAX_AVG * k:
        for d, s, n in zip(dst_off.tolist(), so.tolist(), lens.tolist(), strict=True):
            if n:
                dst[d : d + n] = src[s : s + n]
        return
    first = int(lens[0])
    d0 = int(dst_off[0])
    if first > 0 and bool((lens == first).all()) and bool(
        (dst_off == d0 + first * np.arange(k, dtype=np.int64)).all()
    ):
        # equal pieces written back to back: the batched small-read case
        block = dst[d0 : d0 + k * first]
        if first == 8 and not bool((so & 7).any()):
            whole = src[: (src.shape[0] // 8) * 8].view(np.uint64)
            np.take(whole, so >> 3, out=block.view(np.uint64))
            return
        idx = so[:, None] + np.arange(first, dtype=np.int64)
        block.reshape(k, first)[:] = src[idx]
        return
    # general small pieces: per-byte index arrays
    starts = np.zeros(k, dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    pos = np.arange(total, dtype=np.int64)
    dst_idx = pos + np.repeat(dst_off - starts, lens)
    src_idx = pos + np.repeat(so - starts, lens)
    dst[dst_idx] = src[src_idx]


def zero_failures(out: U8, failures: list[ReadFailure], piece_addr: npt.NDArray[np.uint64],
                  piece_off: npt.NDArray[np.int64]) -> None:
    """Zero the bytes of ``out`` that ``failures`` name (failure addresses are piece addresses)."""
    for f in failures:
        o = int(piece_off[f.index]) + (f.address - int(piece_addr[f.index]))
        out[o : o + f.length] = 0
