"""`pymemflow mount` and `pymemflow gdbserver` speed, measured in one run and printed as rates and ratios.

    python benchmarks/bench_mount.py [--size 64m] [--processes 100] [--chain "-c demo:processes=100 -o win32"]

1. Sequential read of ``pid/<pid>/memory.vmem`` and ``phys.raw`` through a real FUSE mount (1 MiB
   reads, the way ``cat``/``dd`` read) next to ``pymemflow read`` / ``phys-read --out -`` of the same
   bytes (the CLI's wall time, start-up included, and the same read through the Python API in this
   process): MB/s and the mount/read ratio (goal >= 0.5x).
2. ``ls -R MOUNT/pid`` on a machine with ``--processes`` processes (demo connector knob), first and
   second time (goal < 1 s).
3. gdb ``x/1000gx`` against ``pymemflow gdbserver`` (seconds, gdb's start-up subtracted).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymemflow.fs.fuse import mounted_at
from pymemflow.plugins.api import parse_size

CLI = [sys.executable, "-m", "pymemflow.cli.main"]
CHUNK = 1 << 20


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def read_file(path: Path, offset: int, size: int) -> bytes:
    """Sequential 1 MiB reads, like cat/dd."""
    parts = []
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        left = size
        while left:
            b = f.read(min(CHUNK, left))
            if not b:
                break
            parts.append(b)
            left -= len(b)
    return b"".join(parts)


def cli_bytes(*args: str) -> bytes:
    return subprocess.run([*CLI, *args, "--out", "-"], capture_output=True).stdout


def mbps(n: int, s: float) -> float:
    return n / s / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=parse_size, default=64 << 20, help="bytes read sequentially (default 64m)")
    ap.add_argument("--processes", type=int, default=100)
    ap.add_argument("--chain", default=None, help="chain (default: the demo machine with --processes processes)")
    a = ap.parse_args()
    chain = shlex.split(a.chain) if a.chain else ["-c", f"demo:processes={a.processes}", "-o", "win32"]
    ps = json.loads(subprocess.run([*CLI, *chain, "ps", "--json"], capture_output=True, check=True).stdout)
    proc = next((p for p in ps if p["name"] == "notepad.exe"), ps[-1])
    mods = json.loads(subprocess.run([*CLI, *chain, "modules", "-p", str(proc["pid"]), "--json"],
                                     capture_output=True, check=True).stdout)
    start = mods[0]["base"] if mods else 0x10000
    print(f"chain: {' '.join(chain)}; {len(ps)} processes; vmem: pid {proc['pid']} ({proc['name']}) "
          f"from {start:#x}; {a.size >> 20} MiB sequential reads in {CHUNK >> 10} KiB requests")

    # the same reads through the Python API in this process (what the mount calls per request)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pymemflow.plugins.chain import open_links, parse_chain_args
    from pymemflow.plugins.registry import default_inventory
    opened = open_links(parse_chain_args(chain), default_inventory())
    pobj = opened.os.process(proc["pid"])  # type: ignore[union-attr]

    def api_read(mem, off: int, size: int) -> bytes:  # type: ignore[no-untyped-def]
        return b"".join(mem.read(o, min(CHUNK, off + size - o), zero_fill=True) for o in range(off, off + size, CHUNK))

    with tempfile.TemporaryDirectory(prefix="pmf-bench-mount-") as tmp:
        mnt = Path(tmp) / "mnt"
        mnt.mkdir()
        server = subprocess.Popen([*CLI, *chain, "mount", str(mnt)], stderr=subprocess.PIPE)
        try:
            while mounted_at(mnt) is None:
                if server.poll() is not None:
                    raise SystemExit(f"mount failed: {server.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
            rows = []
            vmem = mnt / "pid" / str(proc["pid"]) / "memory.vmem"
            raw = mnt / "phys.raw"
            for what, path, off, cli_args, mem in (
                    ("memory.vmem", vmem, start, ["read", "-p", str(proc["pid"]), hex(start), str(a.size)],
                     pobj.memory),
                    ("phys.raw", raw, 0, ["phys-read", "0", str(a.size)], opened.connector)):
                m_data, m_s = timed(lambda p=path, o=off: read_file(p, o, a.size))
                c_data, c_s = timed(lambda c=cli_args: cli_bytes(*chain, *c))
                p_data, p_s = timed(lambda m=mem, o=off: api_read(m, o, a.size))
                same = hashlib.sha256(m_data).digest() == hashlib.sha256(c_data).digest() == \
                    hashlib.sha256(p_data).digest()
                rows.append((what, mbps(len(m_data), m_s), mbps(len(c_data), c_s), mbps(len(p_data), p_s), same))
            print(f"\n{'file':<12} {'mount MB/s':>11} {'`read` MB/s':>12} {'API MB/s':>9} {'mount/read':>11} "
                  f"{'mount/API':>10}  same bytes")
            for what, m, c, p, same in rows:
                print(f"{what:<12} {m:11.1f} {c:12.1f} {p:9.1f} {m / c:10.2f}x {m / p:9.2f}x  {same}")

            for label in ("first", "second"):
                r, s = timed(lambda: subprocess.run(["ls", "-R", str(mnt / "pid")], capture_output=True, check=True))
                n = len([ln for ln in r.stdout.decode().splitlines() if ln.endswith(":")])
                print(f"ls -R pid/ ({label}): {s:.3f} s, {n} folders, {len(ps)} processes "
                      f"({'< 1 s: met' if s < 1 else '>= 1 s: MISSED'})")
        finally:
            server.terminate()
            server.wait(timeout=60)

    gdb = subprocess.run(["which", "gdb"], capture_output=True, text=True).stdout.strip()
    if not gdb:
        print("gdb x/1000gx: skipped (gdb not installed)")
        return 0
    srv = subprocess.Popen([*CLI, *chain, "gdbserver", "-p", str(proc["pid"]), "--listen", "127.0.0.1:0"],
                           stderr=subprocess.PIPE, text=True)
    try:
        addr = ""
        while not addr:
            line = srv.stderr.readline()  # type: ignore[union-attr]
            if not line:
                raise SystemExit("gdbserver failed to start")
            m = re.search(r"on (127\.0\.0\.1:\d+);", line)
            addr = m.group(1) if m else ""
        base = [gdb, "-batch", "-nx", "-ex", f"target remote {addr}"]
        _, t0 = timed(lambda: subprocess.run(base, capture_output=True))
        r, t1 = timed(lambda: subprocess.run([*base, "-ex", f"x/1000gx {start:#x}"], capture_output=True, text=True))
        lines = len([ln for ln in r.stdout.splitlines() if ln.startswith("0x")])
        print(f"gdb x/1000gx at {start:#x}: {t1:.3f} s total, {t1 - t0:.3f} s beyond connecting "
              f"({t0:.3f} s), {lines} lines")
    finally:
        srv.terminate()
        srv.wait(timeout=60)
    opened.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
