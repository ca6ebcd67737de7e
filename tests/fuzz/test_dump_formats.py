"""Every dump format, mutated: each case in its own process with a timeout and a memory limit
(tests/fuzz/harness.py). CI runs ``CI_CASES`` per format; ``--fuzz-cases N`` / ``PYMEMFLOW_FUZZ_CASES=N``
runs N per format."""

from __future__ import annotations

import pytest

from .dumps import FORMATS, available, build_originals, open_mutated
from .harness import Case, case_budget, run_cases

CI_CASES = 50


def test_every_dump_format_survives_mutation(tmp_path) -> None:
    per_format = case_budget(CI_CASES)
    formats = [f for f in FORMATS if available(f)]
    if len(formats) < len(FORMATS) - 2:
        pytest.fail(f"only {formats} can be written here: codec packages missing")
    cases = [Case(open_mutated, (fmt, seed, str(tmp_path)), f"{fmt}#{seed}")
             for fmt in formats for seed in range(per_format)]
    report = run_cases(cases, timeout=30, memory_limit=1 << 30, warm=[build_originals])
    print(report.summary())
    report.assert_clean()
    counts = report.counts()
    assert counts["clean"] > 0 and counts["ok"] > 0, f"mutations that never fail or never open: {counts}"
    for fmt in formats:  # every format was really exercised: some of its mutants open
        mine = [o for o in report.outcomes if o.case.args[0] == fmt]
        assert any(o.kind == "ok" for o in mine), f"{fmt}: no mutant opened ({len(mine)} cases)"
