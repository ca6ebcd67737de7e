"""Translation ground truth from QEMU's own MMU, over QMP.

The VM is paused while sampling (CR3 and the page tables cannot move), then resumed if it was running.
Addresses come from the kernel symbols and marker pages the guest printed on its serial log, random leaves
of ``info tlb`` (bucketed per 1 GiB of address space and taken round-robin, so the tens of thousands of
ESPFIX alias leaves do not swamp the sample), explicit addresses, and random canonical addresses (mostly
unmapped: the negative truth). ``gva2gpa`` translates each with the vCPU's current paging state; ``xp``
reads 8 bytes at the first N physical results.

Result (JSON-able dict): ``regs``, ``cr3``, ``paging_mode`` (none/x86/pae/x86_64/la57), ``pairs``:
``[{"gva", "gpa" or None, "src", "xp_u64_at_gpa_aligned8"?}]``, counts, ``mtree_f`` on request.
CLI (compatible with the old shared script): ``python -m testbed.groundtruth QMP [--serial LOG] ...``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from testbed.qmp import QMP

__all__ = ["QMP", "collect", "paging_mode", "serial_addresses", "main"]

_REG = re.compile(r"\b(CR0|CR2|CR3|CR4|EFER|RIP|EIP|CS)=([0-9a-fA-F]+)")
_TLB = re.compile(r"^([0-9a-fA-F]+): ([0-9a-fA-F]+) ")


def parse_regs(text: str) -> dict[str, int]:
    regs: dict[str, int] = {}
    for k, v in _REG.findall(text):
        regs.setdefault(k, int(v, 16))
    m = re.search(r"CPL=(\d)", text)
    if m:
        regs["CPL"] = int(m.group(1))
    return regs


def paging_mode(regs: dict[str, int]) -> str:
    """From CR0.PG, EFER.LMA, CR4.LA57 and CR4.PAE."""
    if not regs.get("CR0", 0) >> 31 & 1:
        return "none"
    if regs.get("EFER", 0) >> 10 & 1:
        return "la57" if regs.get("CR4", 0) >> 12 & 1 else "x86_64"
    return "pae" if regs.get("CR4", 0) >> 5 & 1 else "x86"


def serial_addresses(log: Path) -> list[tuple[int, str]]:
    """Kernel symbols (kernel half only) and marker addresses the guest printed about itself."""
    out: list[tuple[int, str]] = []
    for raw in log.read_text(errors="replace").splitlines():
        f = raw.strip().split()
        if not f:
            continue
        if f[0] in ("TESTBED_SYM", "TESTBED_KSAMPLE") and len(f) >= 4:
            a = int(f[1], 16)
            if a >= 0xFFFF800000000000 or 0xC0000000 <= a < 1 << 32:
                out.append((a, f"sym:{f[3]}"))
        elif f[0] == "TESTBED_MARKER_PAGE":
            kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
            out.append((int(kv["va"], 16), f"marker_page{kv['i']}(guest_pagemap_pa={kv['pa']})"))
        elif f[0] == "TESTBED_MARKER_ADDRS":
            out += [(int(v, 16), f"marker_{k}") for k, v in (x.split("=", 1) for x in f[1:] if "=" in x)]
    return out


def _tlb_sample(q: QMP, n: int, rnd: random.Random, cpu: int | None) -> tuple[int, list[tuple[int, str]]]:
    buckets: dict[int, list[int]] = {}
    count = 0
    for line in q.hmp("info tlb", cpu).splitlines():
        m = _TLB.match(line.strip())
        if m:
            count += 1
            va = int(m.group(1), 16)
            buckets.setdefault(va >> 30, []).append(va)
    for b in buckets.values():
        rnd.shuffle(b)
    picked: list[tuple[int, str]] = []
    depth = 0
    while len(picked) < min(n, count):
        for k in sorted(buckets):
            if depth < len(buckets[k]) and len(picked) < n:
                picked.append((buckets[k][depth] + rnd.randrange(0, 4096, 8), "tlb"))
        depth += 1
    return count, picked


def _random_addresses(mode: str, n: int, rnd: random.Random) -> Iterable[tuple[int, str]]:
    bits = {"la57": 57, "x86_64": 48}.get(mode, 32)
    for _ in range(n):
        v = rnd.getrandbits(bits - 1)
        if bits > 32 and rnd.random() < 0.5:
            v |= ((1 << 64) - 1) ^ ((1 << (bits - 1)) - 1)  # sign-extended: the canonical upper half
        yield v, "random"


def _gva2gpa(q: QMP, gva: int, cpu: int | None) -> int | None:
    m = re.match(r"gpa:\s*0x([0-9a-fA-F]+)", q.hmp(f"gva2gpa 0x{gva:x}", cpu).strip())
    return int(m.group(1), 16) if m else None


def _xp_u64(q: QMP, gpa: int, cpu: int | None) -> int | None:
    out = q.hmp(f"xp /2wx 0x{gpa:x}", cpu)
    words = re.findall(r"0x([0-9a-fA-F]{8})\b", out.split(":", 1)[1]) if ":" in out else []
    return int(words[0], 16) | int(words[1], 16) << 32 if len(words) >= 2 else None


def collect(qmp: str, serial: Path | None = None, addrs: Sequence[int] = (), tlb_sample: int = 200,
            unmapped: int = 20, xp: int = 20, cpu: int | None = None, seed: int = 1, pause: bool = True,
            mtree: bool = False) -> dict[str, Any]:
    rnd = random.Random(seed)
    t0 = time.time()
    with QMP(qmp, timeout=120) as q:
        running = bool(q.execute("query-status").get("running"))
        paused = running and pause
        if paused:
            q.execute("stop")
        try:
            regs = parse_regs(q.hmp("info registers", cpu))
            mode = paging_mode(regs)
            cands = [(a, "cli") for a in addrs] + (serial_addresses(serial) if serial else [])
            nleaves, leaves = _tlb_sample(q, tlb_sample, rnd, cpu) if tlb_sample else (0, [])
            cands += leaves + list(_random_addresses(mode, unmapped, rnd))
            pairs: list[dict[str, Any]] = []
            nxp = 0
            for gva, src in cands:
                gpa = _gva2gpa(q, gva, cpu)
                e: dict[str, Any] = {"gva": f"0x{gva:x}", "gpa": None if gpa is None else f"0x{gpa:x}", "src": src}
                if gpa is not None and nxp < xp:
                    v = _xp_u64(q, gpa & ~7, cpu)
                    e["xp_u64_at_gpa_aligned8"] = None if v is None else f"0x{v:016x}"
                    nxp += 1
                pairs.append(e)
            res: dict[str, Any] = {
                "qmp": qmp, "status_before": "running" if running else "paused", "cpu_index": cpu,
                "regs": {k: v if k == "CPL" else f"0x{v:x}" for k, v in regs.items()},
                "cr3": f"0x{regs.get('CR3', 0):x}", "paging_mode": mode, "tlb_leaf_count": nleaves,
                "pairs": pairs, "n_mapped": sum(p["gpa"] is not None for p in pairs),
                "n_unmapped": sum(p["gpa"] is None for p in pairs),
            }
            if mtree:
                res["mtree_f"] = q.hmp("info mtree -f")
        finally:
            if paused:
                q.execute("cont")
    res["elapsed_s"] = round(time.time() - t0, 3)
    return res


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="groundtruth", description=__doc__.splitlines()[0])
    ap.add_argument("qmp")
    ap.add_argument("--serial", type=Path)
    ap.add_argument("--addr", nargs="*", default=[])
    ap.add_argument("--tlb-sample", type=int, default=200)
    ap.add_argument("--unmapped", type=int, default=20)
    ap.add_argument("--xp", type=int, default=20)
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-pause", action="store_true")
    ap.add_argument("--mtree", action="store_true", help="include 'info mtree -f'")
    return ap


def run(argv: Sequence[str]) -> dict[str, Any]:
    a = parser().parse_args(list(argv))
    return collect(a.qmp, a.serial, [int(x, 0) for x in a.addr], a.tlb_sample, a.unmapped, a.xp, a.cpu,
                   a.seed, not a.no_pause, a.mtree)


def main(argv: Sequence[str] | None = None) -> int:
    json.dump(run(sys.argv[1:] if argv is None else argv), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
