"""threads, handles, netscan, psscan, malfind and timeline of the Linux layer on the live testbed guests,
compared exactly with what the guest printed about itself (/proc/PID/task/TID/stat, /proc/PID/fd and fdinfo,
/proc/net/{tcp,udp,tcp6,udp6,unix}, /proc/PID/maps, /proc/stat btime, dmesg); psscan also on a copy of the
guest's RAM in which the worker was unlinked from the task list (DKOM) by patching the copy."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from pymemflow.connectors.raw import RawFileMemory
from pymemflow.os.linux.layer import LinuxOs
from pymemflow.os.linux.net import TCP_STATES

from .conftest import TRANSIENT, LinuxGuest

pytestmark = pytest.mark.testbed

SOURCES = ["x64", "la57"]
_OPEN: dict[str, tuple[LinuxGuest, LinuxOs]] = {}
STATE_LETTER = {"sleeping": "S", "idle": "I", "running": "R", "disk-sleep": "D", "zombie": "Z", "stopped": "T"}
RWX_CODE = b"\x55\x48\x89\xe5\x31\xc0\x5d\xc3PMFRWX"
"""What guest/worker.c writes into its anonymous RWX page."""


@pytest.fixture(params=SOURCES)
def linux(request: pytest.FixtureRequest) -> tuple[LinuxGuest, LinuxOs]:
    kind = request.param
    if kind not in _OPEN:
        lg: LinuxGuest = request.getfixturevalue(f"lx_{kind}")
        _OPEN[kind] = (lg, LinuxOs(RawFileMemory(lg.guest.ramfile)))
    return _OPEN[kind]


def _stable_pids(lg: LinuxGuest) -> set[int]:
    """User processes that live from the guest's print-out to our read (not the init loops' helpers)."""
    return {pid for pid, p in lg.truth.procs.items()
            if p["cmd"] and p["cmd"].split(" ")[0] not in TRANSIENT and not p["cmd"].startswith("sleep 1")}


def _epoch(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_boot_time_is_the_guests_btime(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    boot = os_.boot_time()
    assert boot is not None and lg.truth.btime > 0
    assert boot.wall_ns // 1_000_000_000 == lg.truth.btime  # /proc/stat truncates to whole seconds
    assert boot.where.startswith("tk_core+")


def test_threads_match_guest_tasks(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    gt = lg.truth
    threads = os_.threads()
    by_pid: dict[int, dict[int, object]] = {}
    for t in threads:
        by_pid.setdefault(t.pid, {})[t.tid] = t
    kernel = {pid for pid, p in gt.procs.items() if not p["cmd"] and not p["exe"]}
    checked = 0
    for pid in _stable_pids(lg) | kernel:
        if pid not in gt.tstat or (pid in kernel and gt.ps.get(pid, "").startswith("kworker")):
            continue  # kworkers come and go
        assert set(by_pid[pid]) == set(gt.tstat[pid]), pid
        for tid, (letter, ticks) in gt.tstat[pid].items():
            t = by_pid[pid][tid]
            assert t.extra["name"] == gt.tasks[pid][tid]  # type: ignore[attr-defined]
            assert t.extra["start_ns"] // 10_000_000 == ticks, (pid, tid)  # type: ignore[attr-defined]
            # UTC start: the boot time (whole seconds in /proc/stat) plus the start stamp
            assert -1e-3 < _epoch(t.create_time) - (gt.btime + ticks / 100) < 1.01, (pid, tid)  # type: ignore[attr-defined]
            if pid in (gt.worker_pid, gt.marker_pid):  # sleepers (init itself ran while it printed)
                assert STATE_LETTER[t.state] == letter, (pid, tid)  # type: ignore[attr-defined]
            checked += 1
    assert checked >= 30
    w = gt.worker_pid
    worker = os_.threads(os_.process(w))
    assert sorted((t.tid, t.extra["name"]) for t in worker) == sorted(gt.tasks[w].items())
    assert len(worker) == 4 and all(t.pid == w and t.state == "sleeping" for t in worker)
    # kernel threads: the function each runs (struct kthread's threadfn), named by kallsyms
    fns = {t.extra["name"]: t.start_module for t in threads if t.extra["kernel_thread"]}
    assert fns["ksoftirqd/0"] == "smpboot_thread_fn"
    assert {fn for name, fn in fns.items() if name.startswith("kworker/")} <= {"worker_thread", "rescuer_thread"}


def test_handles_match_proc_fd_and_fdinfo(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    gt = lg.truth
    for pid in (gt.worker_pid, gt.marker_pid):
        hs = os_.handles(os_.process(pid))
        assert {h.handle: h.name for h in hs} == gt.fds[pid], pid
        assert {h.handle: h.access for h in hs} == gt.fd_flags[pid], pid
        assert all(h.pid == pid and h.address for h in hs)
    types = {h.handle: h.type for h in os_.handles(os_.process(gt.worker_pid))}
    fds = gt.fds[gt.worker_pid]
    assert types[3] == "file" and types[4] == "file" and types[5] == "chr" and types[6] == types[7] == "pipe"
    assert {fd for fd, t in types.items() if t == "socket"} == {fd for fd, n in fds.items() if n.startswith("socket:")}
    sockets = os_.handles(type_name="SOCKET")
    assert sockets and all(h.type == "socket" for h in sockets)
    assert {h.handle for h in sockets if h.pid == gt.worker_pid} == {fd for fd, t in types.items() if t == "socket"}


def _norm(addr: str) -> str:
    return str(ipaddress.ip_address(addr))


def test_netscan_matches_proc_net(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    gt = lg.truth
    socks = os_.netscan()
    by_inode = {s.extra["inode"]: s for s in socks}
    worker_inet = gt.sockets_of(gt.worker_pid)
    v6 = sum(int(gt.worker[k]) >= 0 for k in ("tcp6fd", "udp6fd"))
    assert len(worker_inet) == 5 + v6
    for row in worker_inet:
        s = by_inode[row.inode]
        assert s.protocol == row.proto
        assert (s.local_address, s.local_port) == (_norm(row.local[0]), row.local[1]), row
        assert (s.remote_address, s.remote_port) == (_norm(row.remote[0]), row.remote[1]), row
        assert s.state == TCP_STATES[row.state]
        assert (s.pid, s.owner, s.extra["pids"]) == (gt.worker_pid, "pmfwork", [gt.worker_pid])
    # every inet socket the kernel listed (of any process alive at both times) is found and agrees
    for row in gt.sockets:
        if row.inode in by_inode:
            assert by_inode[row.inode].state == TCP_STATES[row.state]
    unix = [s for s in socks if s.protocol == "unix" and s.pid == gt.worker_pid]
    assert {s.extra["inode"] for s in unix} == {int(n[8:-1]) for n in gt.fds[gt.worker_pid].values()
                                                 if n.startswith("socket:") and int(n[8:-1]) in gt.unix_inodes}
    assert len(unix) == 2 and unix[0].extra["peer"] == unix[1].address and unix[1].extra["peer"] == unix[0].address
    assert all(s.state == "CONNECTED" for s in unix)
    tcp = int(gt.worker["tcp"])
    assert [s.protocol for s in socks if s.state == "LISTEN" and s.local_port == tcp] == ["tcp", "tcp6"][: 1 + (v6 > 0)]


def test_psscan_finds_every_process_listed(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    carved = {p.pid: p for p in os_.psscan()}
    listed = {p.pid for p in os_.process_info_list()}
    for pid in _stable_pids(lg) | {1, 2}:
        p = carved[pid]
        assert p.flag == "listed" and p.extra["sources"] == ["pid_idr", "tasks"], pid
        assert p.name == lg.truth.ps[pid] and p.ppid == lg.truth.procs[pid]["ppid"]
        assert p.physical_address and p.create_time
    assert carved[0].name == "swapper/0" and carved[0].extra["sources"] == ["tasks"]  # the idle task has no pid
    assert not [p for p in carved.values() if p.flag == "unlinked"]
    both = {pid for pid, p in carved.items() if p.extra["sources"] == ["pid_idr", "tasks"]}
    assert both >= (listed & set(carved)) - {0}  # every listed process but the idle task is in the pid idr too


def test_psscan_flags_a_task_unlinked_from_the_list(lx_x64: LinuxGuest, tmp_path: Path) -> None:
    """DKOM: the worker taken off init_task.tasks in a copy of the guest's RAM (prev->next = next,
    next->prev = prev, as list_del does) vanishes from ps but psscan still finds it, flagged unlinked, and
    threads/handles/netscan still show what it holds."""
    gt = lx_x64.truth
    os_ = LinuxOs(RawFileMemory(lx_x64.guest.ramfile))
    task = os_.process_by_pid(gt.worker_pid).info.address
    off = os_._toff.tasks
    k = os_.kmem
    node = task + off
    nxt, prv = k.read_ptr(node), k.read_ptr(node + 8)
    copy = tmp_path / "ram.bin"
    shutil.copyfile(lx_x64.guest.ramfile, copy)
    with open(copy, "r+b") as f:  # the RAM file's offsets are guest-physical addresses
        f.seek(k.translate(prv))
        f.write(nxt.to_bytes(8, "little"))
        f.seek(k.translate(nxt + 8))
        f.write(prv.to_bytes(8, "little"))
    hidden = LinuxOs(RawFileMemory(str(copy)))
    assert gt.worker_pid not in {p.pid for p in hidden.process_info_list()}
    carved = {p.pid: p for p in hidden.psscan()}
    w = carved[gt.worker_pid]
    assert (w.flag, w.name, w.address, w.extra["sources"]) == ("unlinked", "pmfwork", task, ["pid_idr"])
    assert carved[gt.marker_pid].flag == "listed"
    assert [p.pid for p in carved.values() if p.flag == "unlinked"] == [gt.worker_pid]
    # what the hidden process holds is still shown: its threads, open files and sockets
    assert sorted(t.tid for t in hidden.threads() if t.pid == gt.worker_pid) == sorted(gt.tasks[gt.worker_pid])
    assert {h.handle: h.name for h in hidden.handles() if h.pid == gt.worker_pid} == gt.fds[gt.worker_pid]
    assert {s.extra["inode"] for s in hidden.netscan() if s.pid == gt.worker_pid} >= {
        s.inode for s in gt.sockets_of(gt.worker_pid)}
    assert [(h.pid, h.start) for h in hidden.malfind()] == [(gt.worker_pid, int(gt.worker["rwx"], 16))]


def test_malfind_finds_the_rwx_page_and_nothing_else(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    gt = lg.truth
    hits = os_.malfind()
    rwx = int(gt.worker["rwx"], 16)
    assert [(h.pid, h.process, h.start, h.end, h.protection, h.kind) for h in hits] == [
        (gt.worker_pid, "pmfwork", rwx, rwx + 4096, "rwx", "anonymous")]
    # the guest's own maps: the only executable mapping without a file of a lasting process is that page
    anon_x = [(pid, lo, hi) for pid in _stable_pids(lg) for lo, hi, perms, path in gt.maps.get(pid, [])
              if "x" in perms and not path]
    assert anon_x == [(gt.worker_pid, rwx, rwx + 4096)]
    h = hits[0]
    assert h.first_bytes.startswith(RWX_CODE) and len(h.first_bytes) == 64
    try:
        import capstone  # noqa: F401
    except ImportError:
        assert h.disassembly == []
    else:
        assert [ln.split(": ", 1)[1] for ln in h.disassembly[:5]] == [
            "push rbp", "mov rbp, rsp", "xor eax, eax", "pop rbp", "ret"]
    assert os_.malfind(os_.process(gt.marker_pid)) == []


def test_timeline_has_starts_and_kernel_log_in_utc(linux: tuple[LinuxGuest, LinuxOs]) -> None:
    lg, os_ = linux
    gt = lg.truth
    events = os_.timeline()
    assert [e.time for e in events] == sorted(e.time for e in events)
    boot = gt.btime
    ticks = gt.tstat[gt.worker_pid][gt.worker_pid][1]
    created = [e for e in events if e.source == "process" and e.pid == gt.worker_pid]
    assert len(created) == 1 and -1e-3 < _epoch(created[0].time) - (boot + ticks / 100) < 1.01
    assert len([e for e in events if e.source == "thread" and e.pid == gt.worker_pid]) == 4
    log = [e for e in events if e.source == "log"]
    texts = {e.description.strip() for e in log}
    assert sum(ln.strip() in texts for ln in gt.dmesg) >= len(gt.dmesg) - 2  # multi-line records aside
    assert all(boot <= _epoch(e.time) < boot + 3600 for e in log)


def test_cli_forensic_commands(lx_x64: LinuxGuest) -> None:
    gt = lx_x64.truth
    base = [sys.executable, "-m", "pymemflow.cli.main", "-c", f"raw:{lx_x64.guest.ramfile}", "-o", "linux"]

    def run(*args: str) -> str:
        return subprocess.run(base + list(args), check=True, capture_output=True, text=True, timeout=300).stdout

    rows = json.loads(run("--json", "netscan"))
    assert {(r["protocol"], r["local_port"], r["state"]) for r in rows if r["pid"] == gt.worker_pid} >= {
        ("tcp", int(gt.worker["tcp"]), "LISTEN"), ("udp", int(gt.worker["udp"]), "CLOSE")}
    rows = json.loads(run("--json", "handles", "-p", str(gt.worker_pid)))
    assert {r["handle"]: r["name"] for r in rows} == gt.fds[gt.worker_pid]
    rows = json.loads(run("--json", "threads", "-p", str(gt.worker_pid)))
    assert sorted(r["tid"] for r in rows) == sorted(gt.tasks[gt.worker_pid])
    assert gt.worker["rwx"][2:] in run("malfind")  # the people's view: the hit, its bytes and disassembly
    rows = [json.loads(ln) for ln in run("--jsonl", "psscan").splitlines()]
    assert {r["pid"]: r["flag"] for r in rows}[gt.worker_pid] == "listed"


def test_docs_linux_examples_run(lx_x64: LinuxGuest) -> None:
    """docs/forensics.md's Linux section: its Python block and command lines, on the guest's RAM file."""
    import re
    import shlex

    doc = (Path(__file__).resolve().parents[2] / "docs" / "forensics.md").read_text()
    text = doc.split("## Linux\n", 1)[1].split("\n## ", 1)[0].replace("/dev/shm/guest.ram", lx_x64.guest.ramfile)
    gt = lx_x64.truth
    (code,) = re.findall(r"```py\n(.*?)```", text, re.S)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    assert f"tcp 0.0.0.0 {gt.worker['tcp']} 0.0.0.0 0 LISTEN {gt.worker_pid}" in out
    assert "[] unlinked" in out and f"{gt.worker_pid} pmfwork {gt.worker['rwx']} rwx anonymous 554889e5" in out
    lines = [ln for b in re.findall(r"```sh\n(.*?)```", text, re.S) for ln in b.splitlines() if ln.startswith("pymemflow ")]
    assert len(lines) == 5
    for line in lines:
        r = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", *shlex.split(line)[1:]], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0 and str(gt.worker_pid) in r.stdout, (line, r.stderr[-2000:])
