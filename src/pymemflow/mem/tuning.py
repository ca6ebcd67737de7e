"""Allocator tuning for batch-heavy NumPy work.

Every batched read makes a few arrays of 100 KiB - 16 MiB and frees them. With glibc's defaults
such blocks are mmap'ed, or the freed top of the heap is handed back to the kernel at once, so the
next batch page-faults all of it in again: measured with ``benchmarks/bench_core.py``, 100k random
8-byte reads ran at ~19 M/s untuned and ~45-50 M/s tuned. We take blocks under 32 MiB from the
heap (``M_MMAP_THRESHOLD``) and keep up to 64 MiB of freed heap mapped (``M_TRIM_THRESHOLD``,
``M_TOP_PAD``) -- the cost is that much memory staying with the process. Applied once when
:mod:`pymemflow.mem` is imported, glibc only; ``PYMEMFLOW_NO_MALLOC_TUNING=1`` leaves the
allocator alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
TOP_PAD = 64 << 20
_applied: bool | None = None


def tune_allocator(top_pad: int = TOP_PAD) -> bool:
    """Apply the glibc settings above; True when applied (False on other C libraries or when
    ``PYMEMFLOW_NO_MALLOC_TUNING`` is set)."""
    global _applied
    if os.environ.get("PYMEMFLOW_NO_MALLOC_TUNING", "") not in ("", "0"):
        _applied = False
        return False
    if not sys.platform.startswith("linux"):
        _applied = False
        return False
    try:
        # the C library the interpreter runs on, by its global symbols: ctypes.util.find_library would
        # import subprocess, shutil and tempfile (~10 ms of every start) to find the same library
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        _applied = False
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # all allocations below 32 MiB (NumPy temporaries, bytes of a 16 MiB read) from the heap ...
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20))
    # ... and keep up to top_pad of freed heap mapped instead of handing it back at every free
    ok = bool(mallopt(_M_TRIM_THRESHOLD, int(top_pad))) and ok
    ok = bool(mallopt(_M_TOP_PAD, int(top_pad))) and ok
    _applied = ok
    return _applied


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` changed the allocator in this process."""
    return bool(_applied)
