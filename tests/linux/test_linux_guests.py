"""The Linux layer on the real testbed guests, live (RAM file) and from QEMU's own ELF and kdump dumps,
compared exactly with what the guest printed about itself (processes, parents, uids, command lines,
executables, threads, memory maps, modules, kernel log, kernel symbols)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pymemflow.connectors.elf import ElfCore
from pymemflow.connectors.kdump import KdumpCompressed
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.os.linux import btf as btf_mod
from pymemflow.os.linux.layer import LinuxOs

from .conftest import TRANSIENT, LinuxGuest

pytestmark = pytest.mark.testbed

SOURCES = ["x64-live", "x64-elf", "x64-kdump", "la57-live", "la57-elf"]
_OPEN: dict[str, tuple[LinuxGuest, LinuxOs]] = {}


@pytest.fixture(params=SOURCES)
def linux(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[LinuxGuest, LinuxOs]:
    key = request.param
    if key not in _OPEN:
        kind, src = key.split("-")
        lg: LinuxGuest = request.getfixturevalue(f"lx_{kind}")
        if src == "live":
            phys = RawFileMemory(lg.guest.ramfile)
        elif src == "elf":
            phys = ElfCore(lg.guest.dump(tmp_path_factory.mktemp("lx") / f"{kind}.elf", "elf"))
        else:
            phys = KdumpCompressed(lg.guest.dump(tmp_path_factory.mktemp("lx") / f"{kind}.kdump", "kdump-zlib"))
        _OPEN[key] = (lg, LinuxOs(phys))
    return _OPEN[key]


def _stable(gt_proc: dict) -> bool:
    return gt_proc["cmd"].split(" ")[0] not in TRANSIENT and not gt_proc["cmd"].startswith("sleep 1")


def test_release_arch_and_symbols(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    gt = lg.truth
    assert os_.vmcoreinfo.osrelease == gt.release
    assert os_.arch == ("x64la57" if lg.kind == "la57" else "x64")
    assert os_.symbols.source == "kallsyms" and len(os_.symbols) > 50_000
    # A dump's VMCOREINFO note is used when present (QEMU writes one only when the guest registered it
    # through fw_cfg, which these initramfs guests do not); otherwise physical memory is scanned.
    assert (os_.vmcoreinfo.location is None) == bool(os_.phys.hints.get("vmcoreinfo"))
    pairs = set((n, a) for n, _t, a in os_.symbols.items())
    assert gt.syms and gt.ksample
    for name, addr in {**gt.syms, **gt.ksample}.items():
        assert (name, addr) in pairs, name


def test_processes_match_guest_ps(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    procs = {p.pid: p for p in os_.process_info_list()}
    checked = 0
    for pid, comm in lg.truth.ps.items():
        if comm in TRANSIENT or comm.startswith("kworker") or pid not in lg.truth.procs:
            continue  # helpers that lived only while the guest printed its facts
        assert pid in procs, (pid, comm)
        assert procs[pid].name == comm
        checked += 1
    assert checked >= 20
    assert procs[0].name == "swapper/0" and procs[0].extra["kernel_thread"]


def test_parents_ids_command_lines_exe_threads(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    procs = {p.pid: p for p in os_.process_info_list()}
    checked = 0
    for pid, t in lg.truth.procs.items():
        if not _stable(t) or pid not in lg.truth.ps or lg.truth.ps[pid].startswith("kworker"):
            continue  # alive both when ps ran and when the facts were printed: a lasting process
        p = procs[pid]
        assert (p.ppid, p.extra["uid"], p.extra["gid"]) == (t["ppid"], t["uid"], t["gid"]), pid
        assert p.command_line == t["cmd"], pid
        assert p.path == t["exe"], pid
        assert len(p.extra["threads"]) == t["threads"], pid
        assert p.extra["kernel_thread"] == (t["exe"] == "" and t["cmd"] == ""), pid
        assert (p.dtb != 0) == (not p.extra["kernel_thread"]), pid
        checked += 1
    assert checked >= 20
    assert any(p.path == "/bin/marker" for p in procs.values())


def test_memory_maps_match_proc_maps(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    compared = 0
    for pid, regions in lg.truth.maps.items():
        if not _stable(lg.truth.procs[pid]) or pid not in lg.truth.ps:
            continue
        proc = os_.process_by_pid(pid)
        ours = [(r.start, r.end, r.protection, r.path) for r in proc.maps()]
        assert ours == regions, pid
        compared += 1
        mods = proc.module_list()
        assert {m.path for m in mods} == {r[3] for r in regions if r[3].startswith("/")}
    assert compared >= 2


def test_marker_pages_through_process_memory(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    info = lg.guest.info
    proc = os_.process_by_pid(int(info["MARKER_PID"]))
    assert proc.read(int(info["MARKER_VA"], 16), len(info["MARKER"])) == info["MARKER"].encode()


def test_kernel_modules_and_dmesg(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    assert [(m.name, m.size, m.base) for m in os_.kernel_modules()] == lg.truth.modules
    assert {m[0] for m in lg.truth.modules} >= {"dummy", "crc_itu_t"}  # the testbed's initramfs loads both
    lines = [ln.strip() for r in os_.dmesg() for ln in r.text.split("\n")]
    assert len(lg.truth.dmesg) >= 30
    assert lines[: len(lg.truth.dmesg)] == [ln.strip() for ln in lg.truth.dmesg]


@pytest.mark.parametrize("linux", ["x64-live", "x64-elf", "x64-kdump"], indirect=True)  # one kernel is enough
def test_isf_from_btf_gives_the_same_answers(linux: tuple[LinuxGuest, LinuxOs], tmp_path: Path) -> None:
    lg, os_ = linux
    roots = ["task_struct", "mm_struct", "file", "dentry", "qstr", "mount", "vfsmount", "cred",
             "signal_struct", "vm_area_struct", "maple_tree", "maple_range_64", "maple_arange_64", "module"]
    isf = btf_mod.to_isf(os_.types, roots)  # type: ignore[arg-type]
    path = tmp_path / "kernel.isf.json"
    path.write_text(json.dumps(isf))
    other = LinuxOs(os_.phys, isf=str(path))
    a = [(p.pid, p.ppid, p.name, p.command_line, p.path) for p in os_.process_info_list()]
    b = [(p.pid, p.ppid, p.name, p.command_line, p.path) for p in other.process_info_list()]
    assert other.info()["types"].startswith("ISF")
    stable = {pid for pid, t in lg.truth.procs.items() if _stable(t)}
    assert [x for x in a if x[0] in stable] == [x for x in b if x[0] in stable]
    pid = lg.truth.marker_pid
    assert other.process_by_pid(pid).maps() == os_.process_by_pid(pid).maps()


def test_cli_json_field_names(lx_x64: LinuxGuest) -> None:
    base = [sys.executable, "-m", "pymemflow.cli.main", "-c", f"raw:{lx_x64.guest.ramfile}", "-o", "linux", "--json"]
    out = subprocess.run(base + ["ps"], check=True, capture_output=True, text=True, timeout=120).stdout
    rows = json.loads(out)
    assert {"pid", "ppid", "name", "path", "command_line", "state", "dtb", "address"} <= set(rows[0])
    assert {r["pid"]: r["name"] for r in rows}[lx_x64.truth.marker_pid] == "marker"
    out = subprocess.run(base + ["dmesg", "-n", "5"], check=True, capture_output=True, text=True, timeout=120).stdout
    recs = json.loads(out)
    assert len(recs) == 5 and {"seq", "timestamp", "level", "text"} <= set(recs[0])


@pytest.mark.parametrize("kind,arch", [("pae", "x86pae"), ("x86", "x86")])
def test_i386_discovery_symbols_dmesg_and_missing_btf(kind: str, arch: str, request: pytest.FixtureRequest) -> None:
    lg: LinuxGuest = request.getfixturevalue(f"lx_{kind}")
    os_ = LinuxOs(RawFileMemory(lg.guest.ramfile))
    assert os_.arch == arch and os_.vmcoreinfo.osrelease == lg.truth.release
    pairs = set((n, a) for n, _t, a in os_.symbols.items())
    for name, addr in {**lg.truth.syms, **lg.truth.ksample}.items():
        assert (name, addr) in pairs, name
    lines = [ln.strip() for r in os_.dmesg() for ln in r.text.split("\n")]
    assert lines[: len(lg.truth.dmesg)] == [ln.strip() for ln in lg.truth.dmesg]
    assert not lg.truth.btf
    with pytest.raises(Exception, match=r"no BTF.*isf=FILE"):
        _ = os_.types
    # No BTF, no files: the task layout is inferred from memory (infer.py) and checked like x86-64's.
    procs = {p.pid: p for p in os_.process_info_list()}
    assert all(p.extra["layout"] == "inferred" for p in procs.values())
    checked = 0
    for pid, t in lg.truth.procs.items():
        if not _stable(t) or pid not in lg.truth.ps or lg.truth.ps[pid].startswith("kworker"):
            continue
        p = procs[pid]
        assert (p.name, p.ppid, p.command_line) == (lg.truth.ps[pid], t["ppid"], t["cmd"]), pid
        assert p.extra["kernel_thread"] == (t["exe"] == "" and t["cmd"] == ""), pid
        checked += 1
    assert checked >= 20
    info = lg.guest.info
    marker = os_.process_by_pid(int(info["MARKER_PID"]))
    assert marker.read(int(info["MARKER_VA"], 16), len(info["MARKER"])) == info["MARKER"].encode()
    with pytest.raises(NotImplementedError, match="isf=FILE"):
        marker.maps()


def test_vmcoreinfo_hint_is_used_without_scanning(lx_x64: LinuxGuest) -> None:
    scanned = LinuxOs(RawFileMemory(lx_x64.guest.ramfile))
    phys = RawFileMemory(lx_x64.guest.ramfile)
    phys.hints["vmcoreinfo"] = scanned.vmcoreinfo.text  # what an ELF/kdump connector hands over
    hinted = LinuxOs(phys)
    assert hinted.vmcoreinfo.location is None and scanned.vmcoreinfo.location is not None
    assert (hinted.root.dtb, hinted.root.arch) == (scanned.root.dtb, scanned.root.arch)
    phys2 = RawFileMemory(lx_x64.guest.ramfile)
    phys2.hints["vmcoreinfo"] = scanned.vmcoreinfo.text.replace("NUMBER(phys_base)=", "NUMBER(phys_base)=1")
    fallback = LinuxOs(phys2)  # a hint whose page tables do not check out is ignored: memory is scanned
    assert fallback.vmcoreinfo.location == scanned.vmcoreinfo.location
