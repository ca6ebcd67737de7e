"""Peak memory of huge reads on a small target (issue 12, defect 4): the CLI must stream, not
allocate what is asked.

Runs, each as its own subprocess, and prints that child's peak RSS (``ru_maxrss`` of the rusage
``os.wait4`` returns for it -- the same figure ``getrusage(RUSAGE_CHILDREN)`` gives for a single
child):

- ``pymemflow -c dummy:size=1m phys-read 0 1m --out F``   (baseline: the interpreter + one small read)
- ``pymemflow -c dummy:size=1m phys-read 0 4g``           (hexdump, capped)
- ``pymemflow -c dummy:size=1m phys-read 0 4g --out F``   (streamed to a file)
- ``pymemflow -c dummy:size=1m phys-read 0 4g --out -``   (streamed to stdout, piped to /dev/null)
- ``pymemflow -c demo:win10,size=64m -o win32 read -p 152 BASE 1m --out F``   (baseline: the demo machine)
- ``pymemflow -c demo:win10,size=64m -o win32 read -p 152 BASE 4g --out F``   (process memory)

and the ratio of each peak to the 4 GiB asked. Usage: ``python benchmarks/bench_read_memory.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

GIB = 1 << 30
CLI = [sys.executable, "-m", "pymemflow.cli.main"]


def run(args: list[str]) -> tuple[int, float, int]:
    """(exit code, seconds, peak RSS of this child in bytes): ``os.wait4`` gives the rusage of the
    one child waited for, so each run is measured alone."""
    t = time.monotonic()
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - t, usage.ru_maxrss * 1024


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pmf-bench-read-") as d:
        out = os.path.join(d, "out.bin")
        demo = ["-c", "demo:win10,size=64m", "-o", "win32"]
        mods = subprocess.run([*CLI, *demo, "--json", "modules", "-p", "152"], capture_output=True, text=True,
                              check=True)
        base = next(m["base"] for m in json.loads(mods.stdout) if m["name"] == "smss.exe")
        runs = [
            ("baseline: phys-read 0 1m --out F (1 MiB target)", ["-c", "dummy:size=1m", "phys-read", "0", "1m",
                                                                 "--out", out, "--force"]),
            ("phys-read 0 4g (hexdump) on a 1 MiB target", ["-c", "dummy:size=1m", "phys-read", "0", "4g"]),
            ("phys-read 0 4g --out F on a 1 MiB target", ["-c", "dummy:size=1m", "phys-read", "0", "4g", "--out", out,
                                                          "--force"]),
            ("phys-read 0 4g --out - on a 1 MiB target", ["-c", "dummy:size=1m", "phys-read", "0", "4g", "--out", "-"]),
            ("baseline: read -p 152 BASE 1m --out F (demo win10)", [*demo, "read", "-p", "152", hex(base), "1m",
                                                                   "--out", out, "--force"]),
            ("read -p 152 BASE 4g --out F (demo win10, 64 MiB)", [*demo, "read", "-p", "152", hex(base), "4g",
                                                                  "--out", out, "--force"]),
        ]
        print(f"{'run':52} {'exit':>4} {'seconds':>8} {'peak RSS':>10} {'peak / 4 GiB':>12}")
        for name, args in runs:
            code, secs, peak = run(args)
            print(f"{name:52} {code:>4} {secs:>8.2f} {peak / (1 << 20):>7.1f} MiB {peak / (4 * GIB):>12.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
