"""Page bitmaps (kdump's dumped-pages bitmap, crash dumps' summary bitmap) to pfn arrays, bounded.

The set bits are counted first (a byte popcount table) and compared with what the file can hold, so
a hostile bitmap of all ones cannot make us materialise billions of pfns; then only the non-zero
bytes are expanded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def count_bits(bitmap: npt.NDArray[np.uint8], nbits: int) -> int:
    full = nbits // 8
    n = int(_POPCOUNT[bitmap[:full]].sum())
    rem = nbits - full * 8
    if rem and full < bitmap.size:
        n += bin(int(bitmap[full]) & ((1 << rem) - 1)).count("1")
    return n


def bitmap_pfns(bitmap: npt.NDArray[np.uint8], nbits: int, max_count: int,
                too_many: Callable[[int], Exception]) -> npt.NDArray[np.uint64]:
    """Indices of the set bits among the first ``nbits`` (LSB-first in each byte), sorted.

    Raises ``too_many(count)`` when more than ``max_count`` bits are set."""
    nbytes = min(bitmap.size, (nbits + 7) // 8)
    bm = bitmap[:nbytes]
    count = count_bits(bm, nbits)
    if count > max_count:
        raise too_many(count)
    nz = np.flatnonzero(bm)
    bits = np.unpackbits(bm[nz][:, None], axis=1, bitorder="little").astype(bool)
    pfns = (nz.astype(np.uint64)[:, None] * np.uint64(8) + np.arange(8, dtype=np.uint64))[bits]
    return pfns[pfns < np.uint64(nbits)]
