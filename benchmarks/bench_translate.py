"""Address-translation benchmark on a real testbed guest kernel (x86-64 with KASLR, 512 MiB).

Boots a guest through the testbed (tests/testbed) (or takes ``--ram FILE --dtb CR3`` of a running one), maps
its RAM with the ``raw`` connector and prints, all measured in one run:

* batched translation of 1 M random mapped kernel addresses, warm TLB (target >= 20 M/s), and the
  same cold (no TLB: the batched page walk itself);
* single ``read_u64`` through the virtual address space, warm TLB (target <= 1 us);
* a 16 MiB contiguous virtual read against NumPy's memcpy of 16 MiB (target >= 50 %);
* the page map of the whole kernel address space (time, leaves, merged ranges).

    python benchmarks/bench_translate.py [--json] [--ram FILE --dtb 0x...]
"""

from __future__ import annotations

import argparse
import json
import mmap
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pymemflow.arch import NO_TLB, VirtualMemory
from pymemflow.connectors.raw import RawFileMemory

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
BIG = 16 * MIB
N = 1_000_000


def qmp(cmd: str, sock: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from testbed import QMP  # type: ignore[import-not-found]

    q = QMP(sock)
    try:
        q.execute(cmd)
    finally:
        q.close()


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def aligned(n: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A page-aligned buffer (a misaligned destination makes the kernel's copies ~3x slower)."""
    return np.frombuffer(mmap.mmap(-1, n), dtype=np.uint8)


def run(ram: str, dtb: int) -> dict[str, float]:
    out: dict[str, float] = {}
    rng = np.random.default_rng(3)
    phys = RawFileMemory(ram)
    # -- page map of the whole address space (cold: a fresh space, nothing cached)
    t0 = time.perf_counter()
    vm = VirtualMemory(phys, "x64", dtb)
    regions = vm.page_map()
    out["page_map_s"] = time.perf_counter() - t0
    leaves = vm.leaves()
    out["page_map_leaves"] = len(leaves)
    out["page_map_regions"] = len(regions)
    out["page_map_again_s"] = best(lambda: VirtualMemory(phys, "x64", dtb).page_map(), 3)

    # -- 1 M random mapped addresses: pick leaves uniformly, then a random offset inside each
    pick = rng.integers(0, len(leaves), N)
    vas = leaves.va[pick] + (rng.random(N) * leaves.size[pick].astype(np.float64)).astype(np.uint64)
    vm_tlb = VirtualMemory(phys, "x64", dtb)
    first = vm_tlb.translate_batch(vas)
    assert bool(first.ok.all()), "every sampled address must translate"
    out["batch_warm_per_s"] = N / best(lambda: vm_tlb.translate_batch(vas), 5)
    out["distinct_pages"] = len(np.unique(vas >> np.uint64(12)))
    # the same, uniform over mapped *bytes* (mostly the 2 MiB pages of the direct map): 1 M
    # distinct 4 KiB pages would overflow a per-4K TLB; the per-page-size stores hold them
    cum = np.cumsum(leaves.size.astype(np.float64))
    at = rng.random(N) * cum[-1]
    li = np.searchsorted(cum, at, side="right")
    vas_b = leaves.va[li] + (at - (cum[li] - leaves.size[li].astype(np.float64))).astype(np.uint64)
    vm_b = VirtualMemory(phys, "x64", dtb)
    assert bool(vm_b.translate_batch(vas_b).ok.all())
    out["batch_warm_bytes_per_s"] = N / best(lambda: vm_b.translate_batch(vas_b), 5)
    out["distinct_pages_bytes"] = len(np.unique(vas_b >> np.uint64(12)))
    vm_cold = VirtualMemory(phys, "x64", dtb, tlb=NO_TLB)
    cold = vm_cold.translate_batch(vas)
    assert np.array_equal(cold.pa, first.pa)
    out["batch_cold_per_s"] = N / best(lambda: vm_cold.translate_batch(vas), 3)

    # -- single read_u64, warm TLB: 20k addresses on the most-used leaves, read once to warm
    in_ram = vas[first.pa < np.uint64(phys.metadata.max_address - 8)]  # not MMIO (ioremap, APIC)
    singles = (in_ram[:20_000] & np.uint64(~7 & (2**64 - 1))).tolist()
    for a in singles:
        vm_tlb.read_u64(a)

    def read_singles() -> None:
        r = vm_tlb.read_u64
        for a in singles:
            r(a)

    out["single_read_u64_us"] = best(read_singles, 7) / len(singles) * 1e6
    phys_addrs = [vm_tlb.translate(a) for a in singles]

    def read_phys() -> None:
        r = phys.read_u64
        for a in phys_addrs:
            r(a)

    out["phys_read_u64_us"] = best(read_phys, 7) / len(singles) * 1e6
    out["virt_vs_phys_read_u64"] = out["single_read_u64_us"] / out["phys_read_u64_us"]
    one = singles[0]
    out["single_read_u64_same_us"] = best(lambda: [vm_tlb.read_u64(one) for _ in range(20_000)], 7) / 20_000 * 1e6
    out["single_translate_us"] = best(lambda: [vm_tlb.translate(a) for a in singles], 5) / len(singles) * 1e6

    # -- 16 MiB contiguous virtual read (inside the direct map) vs memcpy of 16 MiB
    big = [r for r in regions if r.size >= BIG]
    assert big, "no 16 MiB mapped range in the kernel"
    start = big[0].start
    dst = aligned(BIG)
    vm_tlb.read_into(start, dst)
    assert vm_tlb.read(start + 12345, 64) == bytes(dst[12345:12345 + 64])
    t_read = best(lambda: vm_tlb.read_into(start, dst), 15)
    src = aligned(BIG)
    src[:] = np.frombuffer(np.random.default_rng(4).bytes(BIG), dtype=np.uint8)
    np.copyto(dst, src)
    t_copy = best(lambda: np.copyto(dst, src), 15)
    pa_start = vm_tlb.translate(start)
    contiguous = vm_tlb.translate(start + BIG - 1) == pa_start + BIG - 1
    if contiguous:  # the same bytes read physically: what the connector itself can do
        phys.read_into(pa_start, dst)
        out["phys_read_16m_gbps"] = BIG / best(lambda: phys.read_into(pa_start, dst), 15) / 1e9
    out["read_16m_gbps"] = BIG / t_read / 1e9
    out["memcpy_16m_gbps"] = BIG / t_copy / 1e9
    out["read_16m_vs_memcpy"] = t_copy / t_read
    out["read_16m_region_kind"] = float(1 if "2M" in big[0].kind else 0)
    vm_4k = VirtualMemory(phys, "x64", dtb)
    small = [r for r in regions if r.size >= BIG and "4K" in r.kind]
    if small:
        s4 = small[0].start
        vm_4k.read_into(s4, dst)
        out["read_16m_4k_pages_gbps"] = BIG / best(lambda: vm_4k.read_into(s4, dst), 9) / 1e9
    phys.close()
    return out


ROWS = [
    ("batched translate, 1M random leaves, warm", "batch_warm_per_s", "M/s", ">= 20 M/s", lambda v: v >= 20e6),
    ("  distinct 4 KiB pages among them", "distinct_pages", "", "", None),
    ("batched translate, 1M uniform over bytes, warm", "batch_warm_bytes_per_s", "M/s", ">= 20 M/s",
     lambda v: v >= 20e6),
    ("  distinct 4 KiB pages among them", "distinct_pages_bytes", "", "", None),
    ("batched translate, 1M random, no TLB", "batch_cold_per_s", "M/s", "", None),
    ("single read_u64, warm TLB, 20k addrs", "single_read_u64_us", "us", "<= 1 us", lambda v: v <= 1.0),
    ("  physical read_u64, same addresses", "phys_read_u64_us", "us", "(connector)", None),
    ("  virtual / physical read_u64", "virt_vs_phys_read_u64", "x", "", None),
    ("single read_u64, warm TLB, same addr", "single_read_u64_same_us", "us", "<= 1 us", lambda v: v <= 1.0),
    ("single translate, warm TLB", "single_translate_us", "us", "", None),
    ("16 MiB virtual read_into", "read_16m_gbps", "GB/s", "", None),
    ("  physical read_into, same bytes", "phys_read_16m_gbps", "GB/s", "(connector)", None),
    ("numpy memcpy 16 MiB", "memcpy_16m_gbps", "GB/s", "(the limit)", None),
    ("16 MiB virtual read / memcpy", "read_16m_vs_memcpy", "x", ">= 0.50", lambda v: v >= 0.5),
    ("16 MiB virtual read over 4K pages", "read_16m_4k_pages_gbps", "GB/s", "", None),
    ("page map, whole kernel space (cold)", "page_map_s", "s", "(printed)", None),
    ("page map again (fresh space)", "page_map_again_s", "s", "", None),
    ("  leaves / merged ranges", "page_map_leaves", "", "", None),
    ("  merged ranges", "page_map_regions", "", "", None),
]


def table(res: dict[str, float]) -> str:
    lines = [f"{'measure':42} {'value':>12} {'unit':5} {'target':10} ok"]
    for label, key, unit, target, check in ROWS:
        if key not in res:
            continue
        v = res[key]
        shown = v / 1e6 if unit == "M/s" else v
        ok = "" if check is None else ("yes" if check(v) else "NO")
        num = f"{shown:12.3f}" if isinstance(shown, float) and unit else f"{int(shown):12d}"
        lines.append(f"{label:42} {num} {unit:5} {target:10} {ok}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ram", help="guest RAM file (guest-physical address == file offset)")
    ap.add_argument("--dtb", type=lambda s: int(s, 0), help="CR3 of the guest (with --ram)")
    a = ap.parse_args()
    guest = None
    if a.ram:
        if a.dtb is None:
            ap.error("--ram needs --dtb")
        ram, dtb = a.ram, a.dtb
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from testbed import boot  # type: ignore[import-not-found]

        guest = boot("x64", SUFFIX="bench")
        ram = guest.ramfile
        qmp("stop", guest.qmp2)  # a paused guest: stable tables, and its vCPU stops taking a core
        dtb = int(guest.ground_truth("--tlb-sample", "0", "--unmapped", "0", "--xp", "0")["cr3"], 16)
    try:
        res = run(ram, dtb)
    finally:
        if guest is not None:
            guest.stop()
    res["dtb"] = dtb
    print(json.dumps(res, indent=1) if a.json else f"guest RAM {ram}, CR3 {dtb:#x}\n" + table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
