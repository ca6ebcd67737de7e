"""memflow's ``read_bench`` for any memory view: random chunks of a range, several per batch.

Why in the library and not only in ``benchmarks/``: users compare their own chains (a live VM, a dump,
``-o native``) with the same grid memflow prints, so the measurement must run on whatever they open.
Addresses are drawn before the clock starts (a pool reused in a ring), so the cell measures reads,
not the random-number generator; unreadable bytes are counted, never hidden.

What a cell times: ``batch == 1`` calls ``mem.read(addr, chunk)`` (a new ``bytes`` per read), a bigger
batch calls ``mem.read_batch(addrs, chunk)`` (a new result buffer per batch) -- the public calls a user
makes, neither reusing an output buffer. The batch sizes of one chunk size take turns in ``ROUNDS``
interleaved rounds and each cell keeps its best round, so a burst of load on a shared machine does
not land on one batch size only. With the compiled path a batch of 256 KiB or more is copied by two
threads (``mem/_parcopy.c``), so at 64 KiB a batch is faster per read than a single read, which one
thread copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import PartialReadError
from ..mem.view import MemoryView

CHUNK_SIZES: tuple[int, ...] = (0x10000, 0x1000, 0x100, 0x10, 0x8)
BATCH_SIZES: tuple[int, ...] = (1, 8, 32)
ROUNDS = 3
"""Interleaved rounds per chunk size (each cell gets ``seconds / ROUNDS`` per round and keeps its best)."""
POOL_BATCHES = 512
"""Batches of addresses drawn up front per cell when no shared pool is given; the timed loop cycles through them."""
POOL_READS = 1 << 14
POOL_BYTES = 64 << 20
"""The shared pool of one chunk size: this many addresses, at most this many bytes (a multiple of every batch
size). Every batch size reads the same addresses, warmed once before timing, so a bigger batch is not
charged for touching more distinct pages (first-touch faults, TLB misses) than a smaller one."""


@dataclass
class BenchCell:
    """One cell of the grid: ``reads`` pieces of ``chunk`` bytes in batches of ``batch``."""

    chunk: int
    batch: int
    reads: int
    bytes: int
    failed_bytes: int
    seconds: float

    @property
    def reads_per_s(self) -> float:
        return self.reads / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "reads_per_s": self.reads_per_s, "mb_per_s": self.mb_per_s}


def _pool(rng: np.random.Generator, start: int, size: int, chunk: int, count: int) -> np.ndarray:
    """``count`` random start addresses with the whole chunk inside [start, start + size)."""
    return np.uint64(start) + rng.integers(0, max(size - chunk, 0) + 1, count, dtype=np.uint64)


def shared_pool(rng: np.random.Generator, start: int, size: int, chunk: int, batch_sizes: Sequence[int]) -> np.ndarray:
    """One chunk size's addresses for every batch size (see ``POOL_READS``)."""
    step = int(np.lcm.reduce(np.array(list(batch_sizes) or [1], dtype=np.int64)))
    n = max(step, min(POOL_READS, POOL_BYTES // chunk) // step * step)
    return _pool(rng, start, size, chunk, n)


def warm(mem: MemoryView, pool: np.ndarray, chunk: int) -> None:
    """Read every pooled chunk once, untimed (batches of 32), so no cell pays for first touches."""
    for i in range(0, pool.shape[0], 32):
        mem.read_batch(pool[i : i + 32], chunk)


def bench_cell(mem: MemoryView, start: int, size: int, chunk: int, batch: int, seconds: float,
               rng: np.random.Generator, pool: np.ndarray | None = None) -> BenchCell:
    """Read for ``seconds`` (at least one pass over the pool): single reads for ``batch == 1``, else
    ``read_batch``. ``pool``: the addresses (a multiple of ``batch``); drawn here when not given."""
    if chunk <= 0 or batch <= 0:
        raise ValueError(f"chunk and batch must be positive (got {chunk}, {batch})")
    if pool is None or pool.shape[0] % batch:
        pool = _pool(rng, start, size, chunk, POOL_BATCHES * batch)
    reads = failed = 0
    deadline_ns = int(seconds * 1e9)
    if batch == 1:
        addrs = pool.tolist()
        read = mem.read
        t0 = time.perf_counter_ns()
        while True:
            for a in addrs:
                try:
                    read(a, chunk)
                except PartialReadError as e:  # the public single-read path; failures are rare
                    failed += sum(f.length for f in e.failures)
            reads += len(addrs)
            if time.perf_counter_ns() - t0 >= deadline_ns:
                break
        elapsed = (time.perf_counter_ns() - t0) / 1e9
    else:
        lengths = np.full(batch, chunk, dtype=np.int64)
        batches = list(pool.reshape(-1, batch))
        read_batch = mem.read_batch
        t0 = time.perf_counter_ns()
        while True:  # the clock is read once per pass over the pool, as for single reads above
            for b in batches:
                res = read_batch(b, lengths)
                if res.failures:
                    failed += sum(f.length for f in res.failures)
            reads += batch * len(batches)
            if time.perf_counter_ns() - t0 >= deadline_ns:
                break
        elapsed = (time.perf_counter_ns() - t0) / 1e9
    return BenchCell(chunk, batch, reads, reads * chunk, failed, elapsed)


def read_bench(mem: MemoryView, start: int, size: int, *, chunk_sizes: Sequence[int] = CHUNK_SIZES,
               batch_sizes: Sequence[int] = BATCH_SIZES, seconds: float = 0.3, seed: int = 0,
               on_cell: Callable[[BenchCell], None] | None = None) -> list[BenchCell]:
    """The whole grid, chunk sizes outermost (memflow's order), each cell the best of ``ROUNDS`` interleaved
    rounds of ``seconds / ROUNDS``. ``size`` must hold the largest chunk that is asked for; a smaller range
    is an error rather than a benchmark of one address."""
    if size <= 0:
        raise ValueError(f"range size must be positive (got {size})")
    too_big = [c for c in chunk_sizes if c > size]
    if too_big:
        raise ValueError(f"chunk size {too_big[0]:#x} is larger than the range ({size:#x} bytes)")
    rng = np.random.default_rng(seed)
    cells = []
    for chunk in chunk_sizes:
        pool = shared_pool(rng, start, size, chunk, batch_sizes)
        warm(mem, pool, chunk)
        best: dict[int, BenchCell] = {}
        for _ in range(ROUNDS):  # the batch sizes take turns: load changes hit all of them alike
            for batch in batch_sizes:
                cell = bench_cell(mem, start, size, chunk, batch, seconds / ROUNDS, rng, pool)
                if batch not in best or cell.reads_per_s > best[batch].reads_per_s:
                    best[batch] = cell
        for batch in batch_sizes:
            cells.append(best[batch])
            if on_cell is not None:
                on_cell(best[batch])
    return cells
