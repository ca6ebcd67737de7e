"""Triage dumps of the synthetic Windows machines, mutated, read by the crashdump connector and the
win32 triage layer: each case in its own process with a timeout and a memory limit
(tests/fuzz/harness.py). ``--fuzz-cases N`` / ``PYMEMFLOW_FUZZ_CASES=N`` runs N per machine."""

from __future__ import annotations

from .harness import Case, case_budget, run_cases
from .triage import PROFILES, build_originals, open_mutated

CI_CASES = 60


def test_triage_dumps_survive_mutation(tmp_path) -> None:
    n = case_budget(CI_CASES)
    cases = [Case(open_mutated, (prof, seed, str(tmp_path)), f"{prof}#{seed}")
             for prof in PROFILES for seed in range(n)]
    report = run_cases(cases, timeout=30, memory_limit=1 << 30, warm=[build_originals])
    print(report.summary())
    report.assert_clean()
    counts = report.counts()
    assert counts["clean"] > 0 and counts["ok"] > 0, f"mutations that never fail or never open: {counts}"
