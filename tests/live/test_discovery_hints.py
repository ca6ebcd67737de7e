"""Linux discovery from what the target already knows: a live QEMU guest's CR3 (QMP) or a dump's CPU notes
lead straight to VMCOREINFO through the kernel's own pointer to it -- no physical-memory scan -- and give
exactly what the scan gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymemflow.connectors.elf import ElfCore
from pymemflow.connectors.qemu import open_qemu
from pymemflow.os.linux.discovery import find_vmcoreinfo
from pymemflow.os.linux.layer import LinuxOs

pytestmark = pytest.mark.testbed

SCAN_TASK = "scanning for VMCOREINFO"
TRANSIENT = {"ps", "sh", "sleep", "init"}  # "init": a subshell of the init script (pid 1 is checked apart)


def _processes(os_: LinuxOs) -> list[tuple[int, int, str, int]]:
    return sorted((p.pid, p.ppid, p.name, p.dtb) for p in os_.process_info_list())


def _open(phys, **kw) -> tuple[LinuxOs, list[str]]:
    tasks: list[str] = []
    os_ = LinuxOs(phys, progress=lambda task, done, total: tasks.append(task), **kw)
    return os_, tasks


def test_live_guest_skips_the_vmcoreinfo_scan(guest_anon):
    with open_qemu(guest_anon.name, pause="open") as conn:
        hinted, tasks = _open(conn)
        assert hinted.root.how.startswith("kernel pointer"), hinted.root.how
        assert SCAN_TASK not in tasks  # nothing scanned physical memory
        # the scan, run on purpose, finds the same kernel
        scan_tasks: list[str] = []
        info, root = find_vmcoreinfo(conn, {}, conn.metadata.max_address,
                                     progress=lambda task, done, total: scan_tasks.append(task))
        assert SCAN_TASK in scan_tasks and root.how == "physical scan"
        assert (root.arch, root.dtb, root.kaslr_offset) == (hinted.root.arch, hinted.root.dtb, hinted.root.kaslr_offset)
        assert info.osrelease == hinted.vmcoreinfo.osrelease and info.symbols == hinted.vmcoreinfo.symbols
        assert info.offsets == hinted.vmcoreinfo.offsets
        # the VM is paused: the whole process list is the same either way
        saved = dict(conn.hints)
        try:
            for k in ("dtb", "cpu_registers"):
                conn.hints.pop(k, None)
            scanned, tasks2 = _open(conn)
            assert SCAN_TASK in tasks2 and scanned.root.how == "physical scan"
            assert _processes(scanned) == _processes(hinted)
        finally:
            conn.hints.update(saved)
        # and it is the guest's own process list, less what has exited since init printed it: the `ps` and its
        # pipeline's shell, the shell-marker loop's `sleep 1` (a new one every second), idle kernel workers
        pids = {p[0] for p in _processes(hinted)}
        truth = {int(w[1]): w[2] for w in (ln.split() for ln in guest_anon.serial_lines("TESTBED_PS "))
                 if len(w) > 2 and w[1].isdigit()}
        assert {1, int(guest_anon.info["MARKER_PID"]), int(guest_anon.info["WORKER_PID"])} <= pids
        gone = {pid: name for pid, name in truth.items() if pid not in pids}
        assert len(truth) > 20 and len(gone) <= 5, gone
        assert all(name in TRANSIENT or name.startswith("kworker") for name in gone.values()), gone


@pytest.fixture(scope="module")
def anon_elf(guest_anon, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hints") / "guest.elf"
    guest_anon.dump(path, "elf")
    return path


def test_dump_cpu_notes_give_cr3(anon_elf):
    """QEMU's ELF core of the guest: CR3 from its CPU notes (the testbed's kernels do not load qemu_fw_cfg, so
    QEMU has no VMCOREINFO note to write); the process list equals the scan's."""
    with ElfCore(anon_elf) as core:
        assert core.hints.get("dtb") and not core.hints.get("vmcoreinfo")
        from_cr3, tasks = _open(core)
        assert from_cr3.root.how.startswith("kernel pointer") and SCAN_TASK not in tasks
        saved = dict(core.hints)
        try:
            for k in ("dtb", "cpu_registers"):
                core.hints.pop(k, None)
            scanned, tasks = _open(core)
        finally:
            core.hints.update(saved)
        assert scanned.root.how == "physical scan" and SCAN_TASK in tasks
        assert scanned.root.dtb == from_cr3.root.dtb
        assert _processes(from_cr3) == _processes(scanned)
        # a VMCOREINFO note, when a dump has one, is used before anything else
        core.hints["vmcoreinfo"] = from_cr3.vmcoreinfo.text
        from_note, tasks = _open(core)
        assert from_note.root.how == "connector hint" and SCAN_TASK not in tasks
        assert _processes(from_note) == _processes(from_cr3)
