"""benchmarks/peers on a real guest: the plan is checked against QEMU's own translations, and the
pymemflow and memcpy-limit workers read exactly the bytes the plan's checksums were computed from
(the other peers need their own venvs from PyPI: the benchmark's business, not the suite's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from testbed import QMP, Guest

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))

import report  # noqa: E402
import targets  # noqa: E402

COUNTS = {"single8": 300, "batch8": 2000, "read4k": 40, "translate": 300}
REPEATS = {"min": 1, "max": 2, "budget_s": 0.1}


@pytest.fixture(scope="module")
def paused_copy(guest_x64: Guest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, list[tuple[int, int]]]:
    """The guest's RAM copied while it is paused, with CR3 and translations from QEMU."""
    assert guest_x64.ramfile
    q = QMP(guest_x64.qmp)  # the second socket is for groundtruth.py
    try:
        q.execute("stop")
        gt = guest_x64.ground_truth("--tlb-sample", "60", "--unmapped", "0", "--xp", "0", "--no-pause")
        copy = tmp_path_factory.mktemp("peers") / "guest.raw"
        shutil.copyfile(guest_x64.ramfile, copy)
    finally:
        q.execute("cont")
        q.close()
    pairs = [(int(p["gva"], 16), int(p["gpa"], 16)) for p in gt["pairs"] if p["gpa"]]
    assert len(pairs) >= 30
    return copy, int(gt["cr3"], 16) & ~0xFFF, pairs


@pytest.mark.testbed
def test_workers_read_the_plans_bytes(paused_copy: tuple[Path, int, list[tuple[int, int]]], tmp_path: Path) -> None:
    image, dtb, pairs = paused_copy
    windows = targets.windows_image(tmp_path / "cache")
    plan = targets.build_plan(image, dtb, pairs, COUNTS, windows, REPEATS)
    assert plan["qemu_pairs_checked"] == len(pairs)
    assert len(plan["batch8"]["va"]) == COUNTS["batch8"] and plan["read16m"]["size"] == 16 << 20
    assert len(set(plan["pa"]["batch8"])) > COUNTS["batch8"] // 4  # spread over many pages, not one alias
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    results = []
    for peer, expect in (("pymemflow", set(report.WORKLOADS) - {"ps_cli"}),
                         ("limit", {"single8", "batch8", "read4k", "read4k_batch", "read16m"})):
        out = tmp_path / f"{peer}.json"
        subprocess.run([sys.executable, str(PEERS / "harness.py"), peer, str(plan_path), str(out)], check=True,
                       timeout=600, stdout=subprocess.DEVNULL)
        res = json.loads(out.read_text())
        assert "error" not in res
        assert expect <= set(res["results"])
        for name, entry in res["results"].items():
            assert "error" not in entry, (peer, name, entry.get("error"))
            assert 1 <= len(entry["times"]) <= REPEATS["max"] and entry["median_s"] > 0
            want = plan.get(name, {}).get("check")
            if want is not None:
                assert entry["check"] == want, (peer, name)
        results.append(res)
    table = report.markdown(results, plan)
    assert "| one 16 MiB virtual read | GB/s |" in table and "pymemflow vs memcpy (limit)" in table
    assert "≠" not in table and "failed" not in table


@pytest.mark.testbed
def test_plan_refuses_translations_that_disagree_with_qemu(
        paused_copy: tuple[Path, int, list[tuple[int, int]]], tmp_path: Path) -> None:
    image, dtb, pairs = paused_copy
    wrong = [(pairs[0][0], pairs[0][1] ^ 0x1000), *pairs[1:]]
    with pytest.raises(SystemExit, match="disagrees with QEMU for 1 of"):
        targets.build_plan(image, dtb, wrong, COUNTS, None, REPEATS)



@pytest.mark.parametrize("content", ["zeros", "random"])
def test_plan_on_a_wrong_image_or_cr3_says_so(content: str, tmp_path: Path) -> None:
    """Tables of zeros (no leaves) or of random bytes (leaves far outside the file): a clear error
    naming the CR3, not an endless sampling loop."""
    image = tmp_path / "bad.raw"
    rng = np.random.default_rng(1)
    image.write_bytes(bytes(4 << 20) if content == "zeros" else rng.integers(0, 256, 4 << 20, np.uint8).tobytes())
    with pytest.raises(SystemExit, match="right CR3 for an x86-64 image"):
        targets.build_plan(image, 0x1000, [], COUNTS, None, REPEATS)
