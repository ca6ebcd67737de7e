"""Big reads copied by two threads (pymemflow.mem._parcopy.c): the same bytes and failures as the pure path.

A batch or a single read of PAR_MIN (256 KiB) bytes or more is located piece by piece, then copied by the
calling thread and one worker thread claiming 64 KiB units. What must hold: every byte where the pure path
puts it (pieces cut into units, zero-length pieces, uneven ends), unreadable pieces handed back to the pure
path's per-piece report, another process's memory through process_vm_readv (this process's own buffer,
read as the ``qemu`` connector reads QEMU's), the worker really running (a thread named pymemflow-copy), gone after
2 s idle and started again, a forked child that reads big batches without hanging, several Python
threads at once, and PYMEMFLOW_COPY_THREADS=1 keeping every copy on the calling thread.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pymemflow.connectors.raw import RawFileMemory
from pymemflow.mem import fast
from pymemflow.mem.memmap import MemoryMap

compiled_only = pytest.mark.skipif(not fast.compiled(), reason=f"compiled path not in use: {fast.READ_PATH}")

SIZE = 8 << 20
CONTENT = np.random.default_rng(5).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
KIB = 1024
IDLE_EXIT_S = 2.0


def copy_workers() -> int:
    """This process's copy worker threads (named by _parcopy.c), from /proc."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            n += Path(f"/proc/self/task/{tid}/comm").read_text().strip() == "pymemflow-copy"
        except OSError:  # a thread that ended while listed
            pass
    return n


def wait_workers(target: int, timeout: float = 15.0) -> int:
    """Poll until there are ``target`` copy workers (the worker leaves on its own) or time runs out."""
    end = time.monotonic() + timeout
    while (n := copy_workers()) != target and time.monotonic() < end:
        time.sleep(0.05)
    return n


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("parcopy") / "big.raw"
    p.write_bytes(CONTENT)
    return p


def expect(ranges: list[tuple[int, int, int]], addrs: list[int], lengths: list[int]) -> bytes:
    """What the memory map holds at each piece (every piece inside one range)."""
    out = []
    for a, n in zip(addrs, lengths, strict=True):
        (base, _, real), = [r for r in ranges if r[0] <= a and a + n <= r[0] + r[1]]
        out.append(CONTENT[real + a - base: real + a - base + n])
    return b"".join(out)


@compiled_only
def test_big_batches_and_reads_match_the_file(image: Path) -> None:
    ranges = [(0, 3 << 20, 0), (0x1000_0000, 4 << 20, 4 << 20)]  # two ranges, a hole, a shifted offset
    rng = np.random.default_rng(1)
    with RawFileMemory(image, mem_map=MemoryMap(ranges)) as c, RawFileMemory(image, mem_map=MemoryMap(ranges)) as p:
        fast.force_pure(p)
        shapes = [[64 * KIB] * 8, [64 * KIB] * 32, [1 << 20, 0, 100_001, 3, 64 * KIB + 1, 200 * KIB],
                  [256 * KIB], [(1 << 20) + 17] * 3, list(rng.integers(0, 150 * KIB, 40))]
        for lengths in shapes:
            lengths = [int(n) for n in lengths]
            addrs = []
            for n in lengths:
                base, size, _ = ranges[int(rng.integers(0, 2))]
                addrs.append(base + int(rng.integers(0, size - n + 1)))
            want = expect(ranges, addrs, lengths)
            for a_in, n_in in ((addrs, lengths), (np.array(addrs, np.uint64), np.array(lengths, np.int64))):
                got = c.read_batch(a_in, n_in)
                assert got.failures == [] and got.data.tobytes() == want
                assert p.read_batch(a_in, n_in).data.tobytes() == want
            out = bytearray(len(want))
            assert c._compiled_reader.gather_into(addrs, lengths, out) and bytes(out) == want  # served in C
        for n in (256 * KIB, 3 << 20, (1 << 20) + 5):
            a = int(rng.integers(0, (3 << 20) - n + 1))
            assert c.read(a, n) == CONTENT[a: a + n]
        equal = np.array([0x1000_0000 + i * 100_000 for i in range(32)], np.uint64)
        g, f = c.read_gather(equal, 64 * KIB)
        assert f == [] and g.tobytes() == expect(ranges, equal.tolist(), [64 * KIB] * 32)


@compiled_only
def test_unreadable_piece_gives_the_pure_report(image: Path) -> None:
    """One piece in the hole or across a range's end: the compiled path serves nothing and the pure path
    reports exactly that piece, the others' bytes right."""
    ranges = [(0, 3 << 20, 0), (0x1000_0000, 4 << 20, 4 << 20)]
    with RawFileMemory(image, mem_map=MemoryMap(ranges)) as c, RawFileMemory(image, mem_map=MemoryMap(ranges)) as p:
        fast.force_pure(p)
        addrs = [0x1000 + i * 300_000 for i in range(8)]
        for bad in (3 << 20, (3 << 20) - 100, 0x1000_0000 + (4 << 20) - 10):
            mixed = [*addrs[:5], bad, *addrs[6:]]
            assert not c._compiled_reader.gather_into(mixed, 64 * KIB, bytearray(8 * 64 * KIB))
            rc, rp = c.read_batch(mixed, 64 * KIB), p.read_batch(mixed, 64 * KIB)
            assert rc.failures == rp.failures and [f.index for f in rc.failures] == [5]
            assert rc.data.tobytes() == rp.data.tobytes()
            ok = [i for i in range(8) if i != 5]
            assert [rc.piece(i) for i in ok] == [CONTENT[addrs[i]: addrs[i] + 64 * KIB] for i in ok]
        with pytest.raises(Exception) as e:
            c.read((3 << 20) - 100, 1 << 20)
        assert type(e.value).__name__ == "PartialReadError"


def own_memory_reader(buf: bytearray, pure: Any) -> Any:
    """A MapReader over this process's own buffer read with process_vm_readv, as the qemu connector reads
    guest RAM in the QEMU process: two ranges, the buffer's halves, the first cut 1 MiB short (an unmapped gap)."""
    from pymemflow.mem import _speedups  # type: ignore[attr-defined]

    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    half = len(buf) // 2
    return _speedups.MapReader(None, [0, 0x4000_0000], [half - (1 << 20), half], [addr, addr + half], True, 8,
                               pure, pure, pure, pid=os.getpid())


@compiled_only
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process_vm_readv is Linux's")
def test_other_process_path_reads_with_two_threads() -> None:
    buf = bytearray(CONTENT)
    half = len(buf) // 2
    pure_calls: list[Any] = []

    def pure(*args: Any, **kw: Any) -> str:
        pure_calls.append(args)
        return "pure"

    r = own_memory_reader(buf, pure)
    addrs = [0x10 + i * 90_000 for i in range(16)] + [0x4000_0000 + i * 200_000 for i in range(16)]
    want = b"".join(CONTENT[a: a + 64 * KIB] if a < 0x4000_0000 else
                    CONTENT[half + a - 0x4000_0000: half + a - 0x4000_0000 + 64 * KIB] for a in addrs)
    out = bytearray(len(want))
    assert r.gather_into(addrs, 64 * KIB, out) and bytes(out) == want
    assert r.read(0x4000_0000 + 5, 1 << 20) == CONTENT[half + 5: half + 5 + (1 << 20)]
    assert pure_calls == []
    assert not r.gather_into([*addrs[:31], half - (1 << 20) - 10], 64 * KIB, bytearray(len(want)))  # past the range
    assert r.read(half - (1 << 20) - 10, 1 << 20) == "pure"


@compiled_only
def test_worker_runs_leaves_when_idle_and_comes_back(image: Path) -> None:
    with RawFileMemory(image) as c:
        assert wait_workers(0) == 0  # one left by an earlier test has gone idle
        c.read(0, 64 * KIB)  # small reads and batches: never a worker
        c.read_batch([0, 70_000, 200_000], 1000)
        assert copy_workers() == 0
        c.read_batch([i * 100_000 for i in range(8)], 64 * KIB)
        assert copy_workers() == 1
        t0 = time.monotonic()
        assert wait_workers(0) == 0  # idle: the worker leaves
        assert time.monotonic() - t0 >= IDLE_EXIT_S * 0.5
        assert c.read(0, 1 << 20) == CONTENT[: 1 << 20]
        assert copy_workers() == 1  # and comes back for the next big read


@compiled_only
def test_threads_at_once_get_their_own_bytes(image: Path) -> None:
    """Callers from several Python threads: one gets the worker, the others copy alone; no wrong byte."""
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with RawFileMemory(image) as c:
            for _ in range(40):
                addrs = rng.integers(0, SIZE - 64 * KIB, 8).tolist()
                got = c.read_batch(addrs, 64 * KIB).data.tobytes()
                if got != b"".join(CONTENT[a: a + 64 * KIB] for a in addrs):
                    errors.append(f"thread {seed}: wrong bytes for {addrs}")

    ts = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == [] and not any(t.is_alive() for t in ts)


CHILD = """
import hashlib, os, sys
from pathlib import Path
from pymemflow.connectors.raw import RawFileMemory

def workers():
    return sum(Path(f"/proc/self/task/{t}/comm").read_text().strip() == "pymemflow-copy"
               for t in os.listdir("/proc/self/task"))

head = Path(sys.argv[1]).read_bytes()[: 1 << 20]
with RawFileMemory(sys.argv[1]) as c:
    addrs = [i * 100_000 for i in range(32)]
    first = c.read_batch(addrs, 65536).data.tobytes()
    running = workers()
    pid = os.fork()
    if pid == 0:  # the child has no worker thread: its big reads must neither hang nor go wrong
        ok = all(c.read_batch(addrs, 65536).data.tobytes() == first for _ in range(20)) and c.read(0, 1 << 20) == head
        os._exit(0 if ok and workers() == running else 3)
    _, status = os.waitpid(pid, 0)
    print(running, os.waitstatus_to_exitcode(status), hashlib.sha256(first).hexdigest())
"""


@compiled_only
def test_fork_after_the_worker_started_and_switch_off(image: Path) -> None:
    import hashlib

    want = hashlib.sha256(b"".join(CONTENT[i * 100_000: i * 100_000 + 64 * KIB] for i in range(32))).hexdigest()
    for env, workers in (({}, 1), ({"PYMEMFLOW_COPY_THREADS": "1"}, 0)):
        out = subprocess.run([sys.executable, "-c", CHILD, str(image)], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **env}, check=True).stdout.split()
        assert (int(out[0]), int(out[1]), out[2]) == (workers, 0, want), (env, out)
