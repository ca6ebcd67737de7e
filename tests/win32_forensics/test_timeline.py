"""timeline on the synthetic machines: process create/exit, thread create/exit and module load times
from the ground truth, in one table sorted by time."""

from __future__ import annotations

from pymemflow.demo import SyntheticImage
from pymemflow.os.forensics import iso_from_filetime
from pymemflow.os.win32.kernel import Win32Kernel


def test_timeline_holds_every_known_time(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    events = k.timeline()
    assert [e.time for e in events] == sorted(e.time for e in events)
    got = {(e.source, e.action, e.pid, e.time) for e in events}
    procs = img.facts["processes"]
    for p in procs:
        assert ("process", "created", p["pid"], iso_from_filetime(p["create_time"])) in got
        for t in p["threads"]:
            assert ("thread", "created", p["pid"], iso_from_filetime(t["create_time"])) in got
            if t["exit_time"]:
                assert ("thread", "exited", p["pid"], iso_from_filetime(t["exit_time"])) in got
        for m in p["modules"]:
            assert ("module", "loaded", p["pid"], iso_from_filetime(m["load_time"])) in got
    dead = [p for p in procs if not p["alive"]]
    assert dead and all(any(e.source == "process" and e.action == "exited" and e.pid == p["pid"] for e in events)
                        for p in dead)
    n_threads = sum(len(p["threads"]) for p in procs)
    assert sum(e.source == "thread" and e.action == "created" for e in events) == n_threads
    assert sum(e.source == "module" for e in events) == sum(len(p["modules"]) for p in procs)


def test_module_event_names_the_module(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    mods = [e for e in k.timeline() if e.source == "module"]
    notepad = next(p for p in img.facts["processes"] if p["name"] == "notepad.exe")
    texts = [e.description for e in mods if e.pid == notepad["pid"]]
    assert any(t.startswith(f"{notepad['modules'][0]['path']} at {notepad['modules'][0]['base']:#x}") for t in texts)
