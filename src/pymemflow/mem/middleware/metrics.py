"""Metrics: count calls, pieces, bytes, failures and time spent in the inner connector.

``stats()`` gives totals and rates from Python; with a ``log_interval`` a summary line goes to the
``pymemflow.metrics`` logger (level INFO) at most once per interval while reads happen (no thread
is started, so an idle program stays quiet).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ...errors import ReadFailure
from ..phys import PhysicalMemory
from ..view import I64Array, U8Array, U64Array
from .base import Middleware

log = logging.getLogger("pymemflow.metrics")


class MetricsMemory(Middleware):
    name = "metrics"

    def __init__(self, inner: PhysicalMemory, log_interval: float | None = 1.0) -> None:
        super().__init__(inner)
        self.log_interval = log_interval
        self.reset()

    def reset(self) -> None:
        self.read_calls = 0
        self.read_pieces = 0
        self.read_bytes = 0
        self.failed_pieces = 0
        self.read_time = 0.0
        self.max_latency = 0.0
        self.write_calls = 0
        self.write_bytes = 0
        self.write_time = 0.0
        self._start = time.perf_counter()
        self._last_log = self._start

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        t0 = time.perf_counter()
        failures = self.inner._read_batch(addrs, lengths, out)
        self._account(t0, int(lengths.shape[0]), int(out.shape[0]), failures)
        return failures

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        t0 = time.perf_counter()
        data, failures = self.inner._read_single(addr, n)
        self._account(t0, 1, n, failures)
        return data, failures

    def _account(self, t0: float, pieces: int, nbytes: int, failures: list[ReadFailure]) -> None:
        t1 = time.perf_counter()
        dt = t1 - t0
        self.read_calls += 1
        self.read_pieces += pieces
        self.read_bytes += nbytes
        if failures:
            self.failed_pieces += len({f.index for f in failures})
        self.read_time += dt
        if dt > self.max_latency:
            self.max_latency = dt
        if self.log_interval is not None and t1 - self._last_log >= self.log_interval:
            self._last_log = t1
            log.info("%s", self.summary())

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        t0 = time.perf_counter()
        failures = self.inner._write_batch(addrs, lengths, data)
        self.write_time += time.perf_counter() - t0
        self.write_calls += 1
        self.write_bytes += int(data.shape[0])
        return failures

    def stats(self) -> dict[str, float]:
        """Totals since creation or :meth:`reset`, plus rates over the elapsed wall time."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return {
            "elapsed_s": elapsed,
            "read_calls": self.read_calls,
            "read_pieces": self.read_pieces,
            "read_bytes": self.read_bytes,
            "failed_pieces": self.failed_pieces,
            "reads_per_s": self.read_pieces / elapsed,
            "calls_per_s": self.read_calls / elapsed,
            "bytes_per_s": self.read_bytes / elapsed,
            "avg_latency_s": self.read_time / self.read_calls if self.read_calls else 0.0,
            "max_latency_s": self.max_latency,
            "write_calls": self.write_calls,
            "write_bytes": self.write_bytes,
        }

    def summary(self) -> str:
        s = self.stats()
        return (
            f"{s['read_pieces']} reads in {s['read_calls']} calls, {s['reads_per_s']:.0f} reads/s, "
            f"{s['bytes_per_s'] / 1e6:.2f} MB/s, latency avg {s['avg_latency_s'] * 1e6:.1f} us "
            f"max {s['max_latency_s'] * 1e6:.1f} us, {s['failed_pieces']} failed"
        )

    def middleware_info(self) -> dict[str, Any]:
        return dict(self.stats())
