"""`pymemflow scan` throughput over a 1 GiB memory image (GB/s), next to `grep -c` on the same file,
in the same run.

    python benchmarks/bench_scan.py [--image PATH] [--size 1g] [--repeat 3]

The image is the synthetic Windows machine (pymemflow.demo, 1 GiB) written *densely*: the pages the
machine does not use hold random bytes instead of sparse-file holes, so both tools really read
1 GiB (a scan skips a raw file's holes; grep would read them as zeros). `--image` keeps it for the
next run. Each command runs `--repeat` times after one warm-up pass (page cache warm for both);
the best wall time counts, start-up of the `pymemflow` process included.

grep is the peer: `grep -c -a -P` (PCRE: `\x00` can be written, which a fixed string in argv cannot
hold; `(?s)` so `.` matches any byte), the same bytes as the scan, LC_ALL=C. The start-up of
`pymemflow` (interpreter, NumPy, opening the image: `info`) is printed too; it is in the scan's times. grep counts *lines* with a match, pymemflow counts matches,
so the counts are printed side by side but differ where a "line" holds several hits.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pymemflow.demo import build_image
from pymemflow.plugins.api import parse_size

PYMEMFLOW = [sys.executable, "-m", "pymemflow"]
ENV = {**os.environ, "LC_ALL": "C"}


def make_image(path: Path, size: int) -> None:
    """The demo machine's pages over random bytes, written in 64 MiB pieces (bounded memory)."""
    img = build_image("win10", seed=0, size=size)
    rng = np.random.default_rng(18)
    step = 64 << 20
    with open(path, "wb") as f:
        for base in range(0, size, step):
            buf = bytearray(rng.integers(0, 256, min(step, size - base), dtype=np.uint8).tobytes())
            for pa in range(base, base + len(buf), 0x1000):
                page = img.pages.get(pa)
                if page is not None:
                    buf[pa - base: pa - base + 0x1000] = page
            f.write(buf)


def timed(argv: list[str | bytes], repeat: int) -> tuple[float, float, str]:
    """Best wall time and best CPU time (user + system of the child) of ``repeat`` runs."""
    subprocess.run(argv, env=ENV, capture_output=True, check=False)  # warm-up (page cache, imports)
    best, cpu, out = float("inf"), float("inf"), ""
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run(argv, env=ENV, capture_output=True, check=False)
        best = min(best, time.perf_counter() - t)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = min(cpu, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        if p.returncode not in (0, 1):  # grep: 1 = no line matched
            raise SystemExit(f"{argv!r} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-500:]}")
        out = p.stdout.decode(errors="replace")
    return best, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, help="raw image to use (built there if missing); default: a temp file")
    ap.add_argument("--size", type=parse_size, default=1 << 30)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    grep = shutil.which("grep")
    if grep is None:
        raise SystemExit("grep not found")
    tmp = None
    path = a.image
    if path is None:
        tmp = tempfile.mkdtemp(prefix="bench-scan-")
        path = Path(tmp) / "demo-1g.raw"
    try:
        if not path.exists() or path.stat().st_size != a.size:
            t = time.perf_counter()
            make_image(path, a.size)
            print(f"built {path} ({a.size >> 20} MiB, dense) in {time.perf_counter() - t:.1f} s")
        size = path.stat().st_size
        text = "explorer.exe"
        u16 = "".join(f"{re.escape(c)}\\x00" for c in text)
        cases = [
            ("exact pattern 4D 5A 90 00 (MZ header)", ["--pattern", "4D 5A 90 00"],
             [grep, "-c", "-a", "-P", r"MZ\x90\x00", str(path)], r"grep -c -a -P 'MZ\x90\x00'"),
            ("wildcards 48 8B ?? ?? 89", ["--pattern", "48 8B ?? ?? 89"],
             [grep, "-c", "-a", "-P", r"(?s)\x48\x8b..\x89", str(path)], r"grep -c -a -P '(?s)\x48\x8b..\x89'"),
            (f"string {text} (ASCII + UTF-16LE)", ["--string", text],
             [grep, "-c", "-a", "-P", f"explorer\\.exe|{u16}", str(path)], f"grep -c -a -P 'explorer\\.exe|{u16}'"),
        ]
        print(f"image {path}: {size / 1e9:.3f} GB; best of {a.repeat} after a warm-up; {os.cpu_count()} CPUs\n")
        print("wall: best elapsed time (this machine is shared: other work slows both); cpu: the command's own "
              "user+system time. ratio = grep time / scan time (> 1: scan is faster)\n")
        t0, c0, _ = timed([*PYMEMFLOW, "-c", f"raw:{path}", "info"], a.repeat)
        print(f"pymemflow start-up (-c raw:IMAGE info): wall {t0:.2f} s, cpu {c0:.2f} s\n")
        print(f"{'search':42s} {'pymemflow scan (wall, cpu)':>32s} {'grep -c (wall, cpu)':>32s} "
              f"{'ratio wall':>10s} {'ratio cpu':>10s}")
        for label, scan_args, grep_argv, grep_text in cases:
            cmd = [*PYMEMFLOW, "-c", f"raw:{path}", "scan", "--phys", *scan_args, "--jsonl"]
            ts, cs, out = timed(list(cmd), a.repeat)
            tg, cg, gout = timed(list(grep_argv), a.repeat)
            hits = len(out.splitlines())
            lines = int(gout.strip() or 0)
            print(f"{label:42s} {size / ts / 1e9:6.2f} GB/s {ts:5.2f} s, {size / cs / 1e9:6.2f} GB/s {cs:5.2f} s "
                  f"{size / tg / 1e9:6.2f} GB/s {tg:5.2f} s, {size / cg / 1e9:6.2f} GB/s {cg:5.2f} s "
                  f"{tg / ts:9.2f}x {cg / cs:9.2f}x")
            print(f"{'':42s} {hits:>12d} hits {'':15s} {lines:>12d} lines   ({grep_text})")
            if cs > c0:
                print(f"{'':42s} search alone (scan cpu - start-up cpu): {size / (cs - c0) / 1e9:.2f} GB/s, "
                      f"grep {size / cg / 1e9:.2f} GB/s")
        print(f"\ncommands: {' '.join(PYMEMFLOW)} -c raw:{path} scan --phys ARGS --jsonl  vs  the grep shown")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
