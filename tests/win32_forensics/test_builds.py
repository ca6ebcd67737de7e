"""Every synthetic build (Windows 7 SP1 x86/PAE/x64 to Windows 11, each at its kernel's offsets): threads,
handles, malfind and the timeline agree with the ground truth (per-build entry decoding, key control blocks,
object alignment), and no walk warns."""

from __future__ import annotations

import warnings

import pytest

from pymemflow.demo import build_image
from pymemflow.demo.profiles import PROFILES
from pymemflow.os.win32.kernel import Win32Kernel

from .conftest import phys_of


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_forensics_on_every_build(profile: str) -> None:
    img = build_image(profile, seed=9, size=128 << 20)
    f = img.facts
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any walk warning fails the build
        # ... but one: the timeline's netscan rightly says when the tcpip table has no layout for the build
        # (Windows 11 22000) and which older one it took (tests/win32_forensics/test_psscan_builds.py)
        warnings.filterwarnings("ignore", message=r".*netscan: no tcpip layout known for build 10\.0\.22000")
        k = Win32Kernel.open(phys_of(img), progress=False)
        threads = sorted((t.tid, t.pid, t.start_address, t.state, t.teb, t.address) for t in k.threads())
        handles = sorted((h.pid, h.handle, h.type, h.name, h.address, h.access) for h in k.handles())
        hits = [(h.pid, h.start, h.end, h.protection) for h in k.malfind()]
        events = k.timeline()
    assert threads == sorted((t["tid"], t["pid"], t["win32_start_address"], t["state"], t["teb"], t["ethread"])
                             for p in f["processes"] for t in p["threads"])
    assert handles == sorted((p["pid"], h["handle"], h["type"], h["name"], h["object"], h["access"])
                             for p in f["processes"] for h in p.get("handles", []))
    inj = f["injected"]
    assert hits == [(inj["pid"], inj["start"], inj["end"], inj["protection"])]
    n_threads = sum(len(p["threads"]) for p in f["processes"])
    assert sum(e.source == "thread" and e.action == "created" for e in events) == n_threads
