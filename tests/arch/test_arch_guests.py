"""Exactness against QEMU's own MMU on the real testbed guests (x86-64, LA57, i386 PAE, i386 2-level).

The VM is paused while we compare, so the page tables and the bytes cannot move under us; QEMU's
``gva2gpa`` and ``xp`` (through tests/testbed/groundtruth.py) are the oracle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from testbed import QMP, Guest

from pymemflow.arch import VirtualMemory
from pymemflow.connectors.raw import RawFileMemory

pytestmark = pytest.mark.testbed

MODES = {"x86_64": "x64", "la57": "x64la57", "pae": "x86pae", "x86": "x86"}


@contextmanager
def paused(guest: Guest) -> Iterator[None]:
    q = QMP(guest.qmp2)
    try:
        q.execute("stop")
    finally:
        q.close()
    try:
        yield
    finally:
        q = QMP(guest.qmp2)
        try:
            q.execute("cont")
        finally:
            q.close()


def _check_guest(guest: Guest, expect_mode: str) -> dict[str, Any]:
    assert guest.ramfile, "the testbed guest must run with RAM=shm"
    phys = RawFileMemory(guest.ramfile)
    try:
        with paused(guest):
            gt = guest.ground_truth("--tlb-sample", "600", "--unmapped", "50", "--xp", "200")
            assert gt["paging_mode"] == expect_mode
            arch = MODES[gt["paging_mode"]]
            cr3 = int(gt["cr3"], 16)
            pairs = gt["pairs"]
            vas = np.array([int(p["gva"], 16) for p in pairs], dtype=np.uint64)
            want = [None if p["gpa"] is None else int(p["gpa"], 16) for p in pairs]
            vm = VirtualMemory(phys, arch, cr3)
            batch = vm.translate_batch(vas)
            warm = vm.translate_batch(vas)
            scalar = VirtualMemory(phys, arch, cr3)
            mismatches = []
            for i, (va, w) in enumerate(zip(vas.tolist(), want, strict=True)):
                got_b = int(batch.pa[i]) if batch.reason[i] == 0 else None
                got_w = int(warm.pa[i]) if warm.reason[i] == 0 else None
                info = scalar.translate_info(va)
                got_s = info.pa if info.reason == 0 else None
                if not (got_b == got_w == got_s == w):
                    mismatches.append((hex(va), w, got_b, got_w, got_s, pairs[i]["src"]))
            assert not mismatches, f"{len(mismatches)}/{len(pairs)} disagree with QEMU: {mismatches[:5]}"
            n_mapped = sum(w is not None for w in want)
            assert len(pairs) >= 500 and n_mapped >= 450 and len(pairs) - n_mapped >= 20
            # bytes: QEMU's xp of the 8 bytes at the aligned gpa == our virtual read at the aligned gva
            # (RAM only: a sampled fixmap leaf can map the APIC/IOAPIC/HPET, whose registers QEMU's xp
            # reads but which are not in the RAM file)
            xps = [(int(p["gva"], 16) & ~7, int(p["xp_u64_at_gpa_aligned8"], 16)) for p in pairs
                   if p.get("xp_u64_at_gpa_aligned8") and int(p["gpa"], 16) < phys.metadata.max_address]
            assert len(xps) >= 150
            res = vm.read_batch([a for a, _ in xps], 8)
            assert not res.failures
            got = res.data.view("<u8").tolist()
            bad = [(hex(a), hex(w), hex(g)) for (a, w), g in zip(xps, got, strict=True) if w != g]
            assert not bad, f"{len(bad)}/{len(xps)} xp values differ: {bad[:5]}"
            assert all(vm.read_u64(a) == w for a, w in xps[:50])
            # every mapped sample lies inside the page map; reverse finds the virtual address back
            leaves = vm.leaves()
            idx = np.searchsorted(leaves.va, vas, side="right") - 1
            for i, w in enumerate(want):
                if w is None:
                    continue
                j = int(idx[i])
                assert j >= 0 and int(leaves.va[j]) <= int(vas[i]) < int(leaves.va[j]) + int(leaves.size[j])
            for i in [k for k, w in enumerate(want) if w is not None][:20]:
                assert int(vas[i]) in vm.reverse(want[i])  # type: ignore[arg-type]
            regions = vm.page_map()
            assert regions and sum(r.size for r in regions) == int(leaves.size.sum())
            return {"pairs": len(pairs), "mapped": n_mapped, "xp": len(xps), "regions": len(regions)}
    finally:
        phys.close()


def test_x64_guest_matches_qemu(guest_x64: Guest) -> None:
    r = _check_guest(guest_x64, "x86_64")
    assert r["mapped"] >= 450


def test_la57_guest_matches_qemu(guest_la57: Guest) -> None:
    r = _check_guest(guest_la57, "la57")
    assert r["mapped"] >= 450


def test_pae_guest_matches_qemu(guest_pae: Guest) -> None:
    r = _check_guest(guest_pae, "pae")
    assert r["mapped"] >= 450


def test_x86_guest_matches_qemu(guest_x86: Guest) -> None:
    r = _check_guest(guest_x86, "x86")
    assert r["mapped"] >= 450
