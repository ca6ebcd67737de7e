"""Several clients at once (threads and processes) get exactly the local bytes; a client killed with
SIGKILL mid-read, or one that reads its response slowly, stalls nobody and stops nothing."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
from conftest import Daemon

import pymemflow


def _pieces(demo_local: Any, seed: int) -> tuple[int, np.ndarray, np.ndarray]:
    exp = demo_local.os.process("explorer.exe")
    mods = exp.module_list()
    rng = np.random.default_rng(seed)
    m = mods[int(rng.integers(0, len(mods)))]
    addrs = m.base + rng.integers(0, max(m.size - 64, 1), 500).astype(np.uint64)
    lens = rng.integers(1, 64, 500).astype(np.int64)
    return exp.info.pid, addrs, lens


def test_threads_get_exact_bytes(demo_daemon: Daemon, demo_local: Any) -> None:
    d = pymemflow.connect(demo_daemon.url)
    errors: list[str] = []

    def worker(seed: int) -> None:
        ros = d["demo"].os
        for round_ in range(15):
            pid, addrs, lens = _pieces(demo_local, seed * 100 + round_)
            want = demo_local.os.process(pid).memory.read_batch(addrs, lens)
            got = ros.process(pid).memory.read_batch(addrs, lens)
            if got.data.tobytes() != want.data.tobytes() or got.failures != want.failures:
                errors.append(f"thread {seed} round {round_}: wrong bytes")
            phys = np.arange(seed << 20, (seed << 20) + 0x40000, 0x1000, dtype=np.uint64)
            if (d["demo"].connector.read_batch(phys, 32).data.tobytes()
                    != demo_local.connector.read_batch(phys, 32).data.tobytes()):
                errors.append(f"thread {seed} round {round_}: wrong physical bytes")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors


def _proc_worker(url: str, seed: int, pid: int, addrs: np.ndarray, lens: np.ndarray, out: Any) -> None:
    mem = pymemflow.connect(url)["demo"].os.process(pid).memory
    digests = [mem.read_batch(addrs, lens).data.tobytes() for _ in range(10)]
    out.put((seed, len(set(digests)) == 1, digests[0]))


def test_processes_get_exact_bytes(demo_daemon: Daemon, demo_local: Any) -> None:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    jobs = []
    for seed in range(6):
        pid, addrs, lens = _pieces(demo_local, 1000 + seed)
        want = demo_local.os.process(pid).memory.read_batch(addrs, lens).data.tobytes()
        p = ctx.Process(target=_proc_worker, args=(demo_daemon.url, seed, pid, addrs, lens, q))
        p.start()
        jobs.append((p, want))
    results = {seed: (stable, data) for seed, stable, data in (q.get(timeout=300) for _ in jobs)}
    for seed, (p, want) in enumerate(jobs):
        p.join(60)
        stable, data = results[seed]
        assert stable and data == want, f"process {seed}: wrong bytes"


KILLED_CLIENT = """
import sys, pymemflow
mem = pymemflow.connect(sys.argv[1])["scratch"].connector
print("ready", flush=True)
while True:
    mem.read(0, 16 << 20)
"""


def test_kill_9_client_mid_read_and_slow_reader(demo_daemon: Daemon, demo_local: Any) -> None:
    # a client streaming 16 MiB reads in a loop, killed with SIGKILL while reading
    p = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, demo_daemon.url], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    # a client that asks for 64 MiB and never reads the answer
    slow = socket.socket(socket.AF_UNIX)
    slow.connect(demo_daemon.socket)
    slow.sendall(b"GET /v1/connections/demo/phys/read?addr=0&length=67108864&zero_fill=true HTTP/1.1\r\n"
                 b"Host: x\r\n\r\n")
    slow.recv(1024)  # its response has started
    try:
        # meanwhile every other client is served promptly with the right bytes
        d = pymemflow.connect(demo_daemon.url)
        t0 = time.monotonic()
        for _ in range(20):
            assert d["demo"].os.process_info_list() == demo_local.os.process_info_list()
            assert d["demo"].connector.read(0x1000, 4096, zero_fill=True) == demo_local.connector.read(
                0x1000, 4096, zero_fill=True)
        assert time.monotonic() - t0 < 60
    finally:
        slow.close()
    assert demo_daemon.alive()
