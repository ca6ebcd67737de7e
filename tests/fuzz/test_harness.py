"""The harness itself: each way a case can end is recognised (a harness that never reports a hang
would pass any suite)."""

from __future__ import annotations

import os
import random
import signal
import time

from pymemflow.errors import FormatError

from .harness import Case, case_budget, mutate, run_cases


def returns() -> None:
    return None


def rejects() -> None:
    raise FormatError("x.bin", 0x10, "magic", "not a dump")


def breaks() -> None:
    {}["missing"]


def hangs() -> None:
    time.sleep(60)


def allocates() -> None:
    blob = bytearray(2 << 30)  # over the 256 MiB limit below
    blob[-1] = 1



def dies() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def test_each_ending_is_classified() -> None:
    cases = [Case(returns), Case(rejects), Case(breaks), Case(hangs), Case(allocates), Case(dies)]
    report = run_cases(cases, timeout=3, memory_limit=256 << 20)
    kinds = [o.kind for o in report.outcomes]
    assert kinds == ["ok", "clean", "internal", "hang", "blowup", "crash"], report.outcomes
    assert "x.bin at offset 0x10: magic" in report.outcomes[1].detail
    assert "KeyError" in report.outcomes[2].detail
    assert "SIGSEGV" in report.outcomes[5].detail
    assert report.counts() == {"cases": 6, "ok": 1, "clean": 1, "internal": 1, "hang": 1, "blowup": 1, "crash": 1}
    try:
        report.assert_clean()
    except AssertionError as e:
        assert "1 internal, 1 hangs, 1 blowups, 1 crashes" in str(e)
    else:
        raise AssertionError("assert_clean passed a report with failures")


def test_mutate_is_deterministic_and_changes_bytes() -> None:
    blob = bytes(range(256)) * 16
    a = [mutate(blob, random.Random(s), span=64) for s in range(50)]
    assert a == [mutate(blob, random.Random(s), span=64) for s in range(50)]
    assert sum(m != blob for m in a) >= 45
    assert all(m[64:] == blob[64 : len(m)] for m in a)  # edits stay in the span


def test_case_budget_reads_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("PYMEMFLOW_FUZZ_CASES", raising=False)
    assert case_budget(7) == 7
    monkeypatch.setenv("PYMEMFLOW_FUZZ_CASES", "1234")
    assert case_budget(7) == 1234
