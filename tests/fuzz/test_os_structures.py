"""Kernel structures mutated through the OS layers (issue 12): process lists, loader lists, VAD trees,
page tables and PE headers of the synthetic Windows machines; task lists, task_structs, maple trees,
VMAs, page tables, kallsyms, BTF and VMCOREINFO of a real Linux guest's RAM. Each case in its own process
with a timeout and a memory limit (tests/fuzz/harness.py). CI runs ``CI_CASES`` per structure kind;
``--fuzz-cases N`` / ``PYMEMFLOW_FUZZ_CASES=N`` runs N per kind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .harness import Case, case_budget, run_cases
from .oslayers import (
    ENV_LINUX,
    LINUX_KINDS,
    WIN_KINDS,
    WIN_PROFILES,
    linux_case,
    warm_linux,
    warm_windows,
    windows_case,
)

CI_CASES = 6
TIMEOUT = 60
MEMORY = 1 << 30


def test_windows_structures_survive_mutation() -> None:
    n = case_budget(CI_CASES)
    cases = [Case(windows_case, (profile, kind, seed), f"{profile}/{kind}#{seed}")
             for profile in WIN_PROFILES for kind in WIN_KINDS for seed in range(n)]
    report = run_cases(cases, timeout=TIMEOUT, memory_limit=MEMORY, warm=[warm_windows])
    print("windows structures:", report.summary())
    report.assert_clean()
    assert report.counts()["ok"] > len(cases) // 2, report.summary()


def test_linux_structures_survive_mutation(guest_ram_x64: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LINUX, str(guest_ram_x64))  # read by the fork server's warm-up
    n = case_budget(CI_CASES)
    cases = [Case(linux_case, (kind, seed), f"linux/{kind}#{seed}") for kind in LINUX_KINDS for seed in range(n)]
    report = run_cases(cases, timeout=TIMEOUT, memory_limit=MEMORY, warm=[warm_linux])
    print("linux structures:", report.summary())
    report.assert_clean()
    assert report.counts()["ok"] > len(cases) // 2, report.summary()
    assert os.environ[ENV_LINUX]
