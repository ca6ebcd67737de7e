"""``translate`` through the win32 layer's page-table hook (issue 14): a transition page translates to its
frame and says "transition"; a page-file PTE says "paged out (pagefile N, offset X)" instead of "not
present". Checked on both synthetic machines (x64 and x86-PAE), whose facts record the PTEs they wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from pymemflow.demo.machine import build_image
from pymemflow.os.win32.pte import PagefileBits, WindowsPteHook

PROFILES = {"win10": "win10-19041-x64", "win7": "win7-7601-x86pae"}


def _cli(target: str, *args: str, opts: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pymemflow", "--json", "-c", f"demo:{target}", "-o", f"win32{opts}",
                           *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module", params=sorted(PROFILES))
def machine(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(demo target, facts of the machine ``-c demo:TARGET`` builds: seed 0, default size)."""
    return request.param, build_image(PROFILES[request.param], seed=0).facts


def test_transition_page_translates_and_says_so(machine: tuple[str, dict[str, Any]]) -> None:
    target, facts = machine
    t = facts["transition_pages"][0]
    r = _cli(target, "translate", "-p", str(t["pid"]), hex(t["va"]), hex(t["va"] + 0x123))
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["pa"], x["status"]) for x in rows] == [(t["pa"], "transition"), (t["pa"] + 0x123, "transition")]
    assert rows[0]["pte"] == t["pte"]
    # the bytes there are the page's own (the marker the builder wrote), read through the same hook
    r = _cli(target, "read", "-p", str(t["pid"]), hex(t["va"]), str(len(t["marker"])), "--out", "-")
    assert r.returncode == 0 and r.stdout == t["marker"]


def test_transition_off_says_why_not_read(machine: tuple[str, dict[str, Any]]) -> None:
    target, facts = machine
    t = facts["transition_pages"][0]
    r = _cli(target, "translate", "-p", str(t["pid"]), hex(t["va"]), opts=":transition=false")
    assert r.returncode == 1
    row = json.loads(r.stdout)
    assert row["pa"] is None and row["status"].startswith("transition (not used for reads")


def test_pagefile_pte_says_where(machine: tuple[str, dict[str, Any]]) -> None:
    target, facts = machine
    p = facts["pagefile_pages"][0]
    r = _cli(target, "translate", "-p", str(p["pid"]), hex(p["va"]))
    assert r.returncode == 1  # not in RAM: not translated
    row = json.loads(r.stdout)
    off = p["page_offset"] << 12
    assert row["status"] == f"paged out (pagefile {p['pagefile']}, offset {off:#x})"
    assert (row["pa"], row["pagefile"], row["pagefile_offset"], row["pte"]) == (None, p["pagefile"], off, p["pte"])
    r = subprocess.run([sys.executable, "-m", "pymemflow", "-c", f"demo:{target}", "-o", "win32", "translate", "-p",
                        str(p["pid"]), hex(p["va"])], capture_output=True, text=True, timeout=300)
    assert "paged out (pagefile" in r.stdout and "not present" not in r.stdout


def test_plain_not_present_stays_not_present(machine: tuple[str, dict[str, Any]]) -> None:
    target, facts = machine
    r = _cli(target, "translate", "-p", str(facts["pagefile_pages"][0]["pid"]), "0x10000")
    assert r.returncode == 1
    assert json.loads(r.stdout)["status"] == "page not present"


@pytest.mark.parametrize(("arch", "pte", "status"), [
    # x86 non-PAE: PageFileLow bits 1-4, PageFileHigh bits 12-31 (the Windows 7 x86 _MMPTE_SOFTWARE layout)
    ("x86", (0x1234 << 12) | (2 << 1) | (4 << 5), "paged out (pagefile 2, offset 0x1234000)"),
    ("x86", (0xABCDE << 12) | (1 << 11) | (4 << 5), "transition"),
    ("x86", (1 << 10) | 0xFFFF0000, "prototype PTE (shared section page; the prototype PTE is not followed)"),
    ("x86", 4 << 5, "demand zero (never touched; reads as zeros once faulted in)"),
    ("x86pae", (0x77 << 32) | (3 << 1) | (4 << 5), "paged out (pagefile 3, offset 0x77000)"),
    ("x64", (0x99 << 32) | (1 << 12) | (4 << 5), "paged out (pagefile 1, offset 0x99000)"),
])
def test_describe_decodes_software_ptes(arch: str, pte: int, status: str) -> None:
    hook = WindowsPteHook(arch, bits=PagefileBits.default(arch, 19041))
    sw = hook.describe(pte, hook.last_level)
    assert sw is not None and sw.status() == status
    assert hook.describe(pte, 0) is None and hook.describe(pte | 1, hook.last_level) is None
