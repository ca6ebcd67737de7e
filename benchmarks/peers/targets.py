"""The data every peer reads: a real Linux guest's RAM with its x86-64 page tables, the synthetic 1 GiB
Windows machine, and the plan (addresses, expected checksums) built from them.

The Linux image is the testbed guest's RAM file (a real Debian kernel booted under QEMU), copied while
the guest is paused, with CR3 and a sample of translations taken from QEMU itself over QMP; the plan
is only written after pymemflow's translations of those samples match QEMU's. Expected checksums are
computed from the file at the translated physical addresses with NumPy, not through any peer's reader.
"""

from __future__ import annotations

import json
import shutil
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pymemflow.arch import VirtualMemory
from pymemflow.connectors.raw import RawFileMemory

ROOT = Path(__file__).resolve().parents[2]
WIN_PROFILE = "win10-19041-x64"
WIN_ISF = ROOT / "tests" / "data" / "windows" / "isf" / "5278AFF86C341677D7D7835C85B7B844-1.json.xz"
BIG = 16 << 20
ALIASED = 512
"""Leaves sharing one frame with this many others are left out of the samples (see _sample_vas)."""
M64 = (1 << 64) - 1


def linux_image(cache: Path, mem: str, fresh: bool) -> tuple[Path, dict[str, Any]]:
    """Boot a testbed guest with ``mem`` of RAM, pause it, copy its RAM and take CR3 and translation
    samples from QEMU; cached in ``cache`` (``fresh`` boots again)."""
    img, meta_path = cache / f"linux-guest-{mem}.raw", cache / f"linux-guest-{mem}.json"
    if img.exists() and meta_path.exists() and not fresh:
        return img, json.loads(meta_path.read_text())
    sys.path.insert(0, str(ROOT / "tests"))
    from testbed import QMP, ProvisionError, boot  # the project's QEMU testbed (tests/testbed)

    print(f"peers: booting a {mem} testbed guest ...", file=sys.stderr, flush=True)
    try:
        guest = boot("x64", MEM=mem, RAM="shm", SUFFIX="peers")
    except ProvisionError as e:
        raise SystemExit(f"peers: the QEMU testbed cannot run here ({e}); give --image FILE --dtb CR3 instead") from e
    try:
        with QMP(guest.qmp2) as q:
            q.execute("stop")  # paused: tables and RAM stay as copied
        gt = guest.ground_truth("--tlb-sample", "200", "--unmapped", "0", "--xp", "0", "--no-pause")
        cache.mkdir(parents=True, exist_ok=True)
        assert guest.ramfile
        shutil.copyfile(guest.ramfile, img)
    finally:
        guest.stop()
    pairs = [(int(p["gva"], 16), int(p["gpa"], 16)) for p in gt["pairs"] if p.get("gpa")]
    meta = {"dtb": int(gt["cr3"], 16) & ~0xFFF, "paging_mode": gt.get("paging_mode"), "pairs": pairs,
            "mem": mem}
    meta_path.write_text(json.dumps(meta))
    return img, meta


def windows_image(cache: Path) -> dict[str, Any]:
    """The synthetic Windows 10 x64 machine (1 GiB) as a raw file, with its process count."""
    from pymemflow.demo.machine import build_image

    path = cache / f"{WIN_PROFILE}.raw"
    meta_path = cache / f"{WIN_PROFILE}.json"
    if not (path.exists() and meta_path.exists()):
        img = build_image(WIN_PROFILE, seed=0)
        cache.mkdir(parents=True, exist_ok=True)
        img.write_raw(str(path))
        meta_path.write_text(json.dumps({"processes": len(img.facts["processes"]), "size": img.size}))
    meta = json.loads(meta_path.read_text())
    return {"image": str(path), "processes": meta["processes"], "isf": str(WIN_ISF) if WIN_ISF.exists() else None}


def _sample_vas(vm: VirtualMemory, ram: int, n: int, align: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` mapped kernel addresses: a leaf (any page size) picked uniformly, then an aligned offset in
    it, keeping those whose page lies in RAM (not MMIO) -- 4 KiB pages and the direct map both show up."""
    lv = vm.leaves()
    # A frame that whole tables of identical entries alias (here one page behind 65,536 leaves) is one
    # page read again and again, and volatility3 rejects such tables by design: leave those leaves out.
    _, inverse, counts = np.unique(lv.pa, return_inverse=True, return_counts=True)
    keep = np.nonzero(counts[inverse] < ALIASED)[0]
    out = np.empty(0, dtype=np.uint64)
    for _ in range(20):
        if out.shape[0] >= n or keep.shape[0] == 0:
            break
        pick = keep[rng.integers(0, keep.shape[0], 2 * n)]
        off = (rng.random(2 * n) * lv.size[pick].astype(np.float64)).astype(np.uint64)
        off &= np.uint64(~(align - 1) & M64)
        off = np.minimum(off, lv.size[pick] - np.uint64(align))
        va, pa = lv.va[pick] + off, lv.pa[pick] + off
        out = np.concatenate([out, va[pa + np.uint64(align) <= np.uint64(ram)]])
    if out.shape[0] < n:  # a wrong CR3 or not an x86-64 image: its "leaves" point outside the file
        raise SystemExit(f"peers: only {out.shape[0]} of {n} sampled addresses map into the image's RAM "
                         f"({len(lv)} leaves under CR3 {vm.dtb:#x}): is this the right CR3 for an x86-64 image?")
    return out[:n]


def _u64_at(arr: np.ndarray, pas: np.ndarray) -> int:
    idx = pas.astype(np.int64)[:, None] + np.arange(8)
    return int(arr[idx].copy().view("<u8").sum(dtype=np.uint64))


def build_plan(image: Path, dtb: int, pairs: list[tuple[int, int]], counts: dict[str, int],
               windows: dict[str, Any] | None, repeats: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    phys = RawFileMemory(str(image))
    vm = VirtualMemory(phys, "x64", dtb)
    ram = image.stat().st_size
    bad = [(va, pa) for va, pa in pairs if vm.translate_batch([va]).pa[0] != pa]
    if bad:
        raise SystemExit(f"peers: pymemflow's translation disagrees with QEMU for {len(bad)} of {len(pairs)} "
                         f"samples (first: va {bad[0][0]:#x} -> QEMU {bad[0][1]:#x})")
    arr = np.memmap(image, dtype=np.uint8, mode="r")
    plan: dict[str, Any] = {"image": str(image), "dtb": dtb, "arch": "x64", "repeats": repeats, "pa": {},
                            "qemu_pairs_checked": len(pairs)}

    def pas_of(vas: np.ndarray) -> np.ndarray:
        tr = vm.translate_batch(vas)
        assert tr.ok.all()
        return tr.pa

    for name, align in (("single8", 8), ("batch8", 8)):
        vas = _sample_vas(vm, ram, counts[name], align, rng)
        pas = pas_of(vas)
        plan[name] = {"va": vas.tolist(), "check": _u64_at(arr, pas)}
        plan["pa"][name] = pas.tolist()
    vas = _sample_vas(vm, ram, counts["read4k"], 4096, rng)
    pas = pas_of(vas)
    plan["read4k"] = {"va": vas.tolist(),
                      "check": sum(zlib.crc32(arr[p : p + 4096]) for p in pas.tolist()) & M64}
    plan["pa"]["read4k"] = pas.tolist()
    vas = _sample_vas(vm, ram, counts["translate"], 1, rng)
    plan["translate"] = {"va": vas.tolist(), "check": int(pas_of(vas).sum(dtype=np.uint64))}
    # one 16 MiB read: the first mapped range of that size whose pages are all RAM (the direct map)
    for region in vm.page_map():
        if region.size < BIG:
            continue
        pages = pas_of(np.arange(region.start, region.start + BIG, 4096, dtype=np.uint64))
        if int(pages.max()) + 4096 <= ram:
            break
    else:
        raise SystemExit("peers: no 16 MiB mapped range of RAM in the kernel's page tables")
    runs: list[list[int]] = []
    for p in pages.tolist():
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 4096
        else:
            runs.append([p, 4096])
    plan["read16m"] = {"va": region.start, "size": BIG,
                       "check": _crc_runs(arr, runs), "kind": region.kind, "physical_runs": len(runs)}
    plan["pa"]["read16m_runs"] = runs
    if windows:
        plan["windows"] = windows
        plan["open_ps"] = {"check": windows["processes"]}
        plan["ps_cli"] = {"check": windows["processes"]}
    phys.close()
    return plan


def _crc_runs(arr: np.ndarray, runs: list[list[int]]) -> int:
    crc = 0
    for a, n in runs:
        crc = zlib.crc32(arr[a : a + n], crc)
    return crc
