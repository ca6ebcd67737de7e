"""A small time-limited, size-bounded cache for listings and produced files.

Why: ``ls`` and ``cat`` come in bursts (getattr, open, read, read, ...); producing a process list
or an export table once per burst instead of once per call is what keeps the mount fast. On a live
target the content must follow the machine, so entries expire after ``ttl`` seconds.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


def _weight(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, bytearray)) else sys.getsizeof(value)


class TtlCache:
    """``get(key, produce)``: the cached value while younger than ``ttl`` (None: forever), else a
    fresh ``produce()``. Least recently used entries go when ``max_bytes`` is exceeded."""

    def __init__(self, ttl: float | None, max_bytes: int = 256 << 20) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[float, int, Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()

    def get(self, key: Hashable, produce: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and (self.ttl is None or now - hit[0] < self.ttl):
                self._items.move_to_end(key)
                return hit[2]  # type: ignore[no-any-return]
        value = produce()
        weight = _weight(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (now, weight, value)
            self._bytes += weight
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, w, _) = self._items.popitem(last=False)
                self._bytes -= w
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class ReadAhead:
    """Sequential reads of a memory file in one bigger read: the kernel hands FUSE 128 KiB at a
    time, and a translated read's fixed cost (page walks, a NumPy batch) is paid once per ``window``
    instead of once per request. Only a read that starts where the previous one ended triggers it,
    so random access (mmap faults, gdb) reads exactly what it asks for. ``max_age``: how long a
    window stays valid (None: until the next write; a few ms on live targets)."""

    def __init__(self, max_age: float | None, window: int = 4 << 20) -> None:
        self.max_age = max_age
        self.window = window
        self._last_end: dict[int, int] = {}
        self._buf: dict[int, tuple[int, bytes, float]] = {}

    def read(self, mem: Any, off: int, n: int, size: int | None) -> bytes:
        key = id(mem)
        now = time.monotonic()
        hit = self._buf.get(key)
        if hit is not None:
            start, data, born = hit
            fresh = self.max_age is None or now - born < self.max_age
            if fresh and start <= off and off + n <= start + len(data):
                self._last_end[key] = off + n
                return data[off - start : off - start + n]
        if self._last_end.get(key) == off and n < self.window:
            k = self.window if size is None else max(n, min(self.window, size - off))
            data = mem.read(off, k, zero_fill=True)
            self._buf[key] = (off, data, now)
            out = data[:n]
        else:
            out = mem.read(off, n, zero_fill=True)
        self._last_end[key] = off + n
        return bytes(out)

    def clear(self) -> None:
        self._buf.clear()
        self._last_end.clear()
