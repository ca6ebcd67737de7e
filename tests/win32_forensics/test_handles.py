"""handles on the synthetic machines: every handle of every process (one- and two-level tables, the
cookie-encoded TypeIndex, names from name-info headers, files, processes, threads) against the ground
truth, the --type filter, the type table found without a symbol, and volatility3's windows.handles."""

from __future__ import annotations

from typing import Any

from pymemflow.demo import SyntheticImage
from pymemflow.os.win32.handles import HandleLayout
from pymemflow.os.win32.kernel import Win32Kernel
from pymemflow.os.win32.objects import find_type_table

from .conftest import MASK48, by_pid, vol


def expected(img: SyntheticImage) -> list[tuple[Any, ...]]:
    return sorted((p["pid"], h["handle"], h["type"], h["name"], h["object"], h["access"])
                  for p in img.facts["processes"] for h in p.get("handles", []))


def test_handles_match_ground_truth(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    got = sorted((h.pid, h.handle, h.type, h.name, h.address, h.access) for h in k.handles())
    want = expected(img)
    assert got == want
    assert {"File", "Key", "Mutant", "Event", "Section", "Thread", "Process"} <= {w[2] for w in want}
    assert "MACHINE\\SYSTEM\\ControlSet001\\Control\\Nls" in {w[3] for w in want if w[2] == "Key"}
    assert not [w for w in k.warnings if "handle" in w]


def test_two_level_table(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    pid = img.facts["big_handle_table"]
    p = by_pid(img)[pid]
    assert p["handle_table_levels"] == 1
    per_page = 0x1000 // HandleLayout.for_kernel(k).entry_size
    rows = k.handles(k.process(pid))
    assert len(rows) == len(p["handles"]) > per_page
    assert max(h.handle for h in rows) > per_page * 4  # handles of the second entry page
    assert (per_page * 4) not in {h.handle for h in rows}  # entry 0 of a page is never a handle


def test_type_filter_and_one_process(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    img, k = machine
    notepad = k.process("notepad.exe")
    files = k.handles(notepad, "file")
    assert [h.name for h in files] == [h["name"] for h in by_pid(img)[notepad.info.pid]["handles"]
                                       if h["type"] == "File"]
    assert "\\Device\\HarddiskVolume2\\Users\\demo\\notes.txt" in [h.name for h in files]
    assert {h.type for h in k.handles(type_name="Mutant")} == {"Mutant"}
    assert k.handles(type_name="NoSuchType") == []


def test_type_table_found_by_shape(machine: tuple[SyntheticImage, Win32Kernel]) -> None:
    """Without the ObTypeIndexTable symbol (x86 kernels here) the table is found in the kernel image."""
    img, k = machine
    want = img.facts["symbols"].get("ObTypeIndexTable") or img.facts["kernel_base"] + k.offsets["ObTypeIndexTable"]
    assert find_type_table(k) == want


def test_volatility_handles_agree(vol_env: Any) -> None:
    img = vol_env[0]
    rows = vol(vol_env, "windows.handles")
    got = sorted((r["PID"], r["HandleValue"], r["Type"], r["Name"], r["Offset"] & MASK48, r["GrantedAccess"])
                 for r in rows)
    want = sorted((pid, h, t, n, o & MASK48, a) for pid, h, t, n, o, a in expected(img))
    assert got == want
