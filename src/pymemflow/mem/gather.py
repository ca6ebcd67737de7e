"""Copy many (source offset, destination offset, length) pieces between byte arrays at once.

Small pieces are copied with one NumPy fancy-index gather (Python loops cost ~1 us per piece);
large pieces with one slice copy each (a memcpy). Connectors and map wrappers share this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ReadFailure

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    U8 = npt.NDArray[np.uint8]
else:
    from .lazynp import np

_LOOP_MAX_PIECES = 8
"""Up to this many pieces a Python loop of slice copies beats building index arrays."""
_GATHER_MAX_AVG = 256
"""Pieces averaging more bytes than this are copied one slice at a time."""
_RECORD = {1: "u1", 2: "u2", 4: "u4", 8: "u8"}


def copy_pieces(
    dst: U8,
    dst_off: npt.NDArray[np.int64] | None,
    src: U8,
    src_off: npt.ArrayLike,
    lens: npt.NDArray[np.int64],
) -> None:
    """``dst[dst_off[i]:+lens[i]] = src[src_off[i]:+lens[i]]`` for every i (bounds already checked).

    ``dst_off=None`` means the pieces go back to back from ``dst[0]`` (the batched-read layout),
    which lets equal-length pieces be gathered straight into ``dst`` without offset arrays.
    """
    k = int(lens.shape[0])
    if k == 0:
        return
    so = np.asarray(src_off)
    if so.dtype != np.int64:
        so = so.astype(np.int64)
    lmin = int(lens.min())
    lmax = int(lens.max())
    if lmax == 0:
        return
    if dst_off is None and lmin == lmax and k > _LOOP_MAX_PIECES and lmax <= _GATHER_MAX_AVG:
        # equal pieces written back to back (the batched small-read case): view the source as
        # overlapping records of lmax bytes starting at every byte, and gather records
        dt: np.dtype[Any] = np.dtype(_RECORD.get(lmax) or f"V{lmax}")
        block = dst[: k * lmax].view(dt)
        if lmax in (2, 4, 8) and not int(np.bitwise_or.reduce(so)) & (lmax - 1):
            # all aligned: an aligned typed view gathers about twice as fast
            whole = src[: (src.shape[0] // lmax) * lmax].view(dt)
            np.take(whole, so >> (lmax.bit_length() - 1), out=block)
            return
        records = np.ndarray((src.shape[0] - lmax + 1,), dtype=dt, buffer=src, strides=(1,))
        block[:] = records[so]
        return
    if dst_off is None:
        dst_off = np.zeros(k, dtype=np.int64)
        np.cumsum(lens[:-1], out=dst_off[1:])
    total = int(lens.sum())
    if k <= _LOOP_MAX_PIECES or total > _GATHER_MAX_AVG * k:
        for d, s, n in zip(dst_off.tolist(), so.tolist(), lens.tolist(), strict=True):
            if n:
                dst[d : d + n] = src[s : s + n]
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
