"""The ``qemu`` connector against real testbed guests (QEMU/TCG), checked against QEMU's own ``xp``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from pymemflow.connectors.qemu import PLUGIN, QemuConnector, list_vms, open_qemu, targets
from pymemflow.errors import ArgumentError, NotFoundError, ReadOnlyError
from pymemflow.live.procfs import parse_maps
from pymemflow.live.qemu_ram import mapping_by_size, parse_mtree_flat
from pymemflow.live.qmp import QmpClient
from pymemflow.os.native.layer import NativeOs

pytestmark = pytest.mark.testbed

HEARTBEAT = 64  # the marker process bumps a u64 at offset 64 of its page 0 once per second


def xp_u64(q: QmpClient, gpa: int) -> int:
    m = re.search(r":\s*(0x[0-9a-f]+)", q.hmp(f"xp /1gx {gpa:#x}"))
    assert m, gpa
    return int(m.group(1), 16)


def marker_pa(guest, page: int = 0) -> int:
    if page == 0:
        return int(guest.info["MARKER_PA0"], 16)
    for line in guest.serial_lines("TESTBED_MARKER_PAGE"):
        kv = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
        if kv.get("i") == str(page):
            return int(kv["pa"], 16)
    raise AssertionError(f"marker page {page} not on the serial log")


# ---- finding VMs ------------------------------------------------------------------------------

def test_targets_list_the_vm(guest_x64):
    t = {x.name: x for x in targets()}
    assert guest_x64.name in t
    assert t[guest_x64.name].extra["pid"] == guest_x64.pid
    assert t[guest_x64.name].extra["mem_size"] == 512 << 20
    assert f"unix:{guest_x64.qmp}" in t[guest_x64.name].extra["qmp"]
    assert PLUGIN.targets is targets and PLUGIN.accepts_input


def test_open_by_name_and_by_pid_read_marker(guest_x64):
    marker = guest_x64.info["MARKER"].encode()
    with open_qemu(guest_x64.name) as by_name, open_qemu(str(guest_x64.pid)) as by_pid:
        assert by_name.pid == by_pid.pid == guest_x64.pid
        assert by_name.layout.method == "qmp"
        assert by_name.read(marker_pa(guest_x64), len(marker)) == marker
        assert by_pid.read(marker_pa(guest_x64), len(marker)) == marker
        assert by_name.metadata.real_size == 512 << 20
        assert by_name.hints["live"] is True


def test_unknown_vm_is_a_clear_error(guest_x64):
    with pytest.raises(NotFoundError, match="no running VM"):
        open_qemu("no-such-vm-name")
    if len(list_vms()) > 1:
        with pytest.raises(ArgumentError, match="name a VM"):
            open_qemu(None)


def test_plugin_factory_args(guest_x64):
    conn = PLUGIN.factory({"target": guest_x64.name, "pause": "off", "writable": False, "io": "auto",
                           "layout": "auto", "qmp_timeout": 2.0}, None)
    try:
        assert isinstance(conn, QemuConnector)
        assert conn.read(marker_pa(guest_x64), 6) == b"TBMARK"
    finally:
        conn.close()


def test_shm_guest_heuristic_agrees_with_qmp(guest_x64):
    with open_qemu(guest_x64.name) as a, open_qemu(guest_x64.name, layout="heuristic") as b:
        assert a.map.ranges == b.map.ranges
        assert b.layout.method == "heuristic"


# ---- a live, changing guest ---------------------------------------------------------------------

def test_value_changes_while_guest_runs(guest_x64):
    pa = marker_pa(guest_x64) + HEARTBEAT
    with open_qemu(guest_x64.name) as conn:
        first = conn.read_u64(pa)
        deadline = time.time() + 5
        while conn.read_u64(pa) == first and time.time() < deadline:
            time.sleep(0.2)
        assert conn.read_u64(pa) > first


def test_page_cache_over_live_guest_expires(guest_x64):
    mw = pytest.importorskip("pymemflow.mem.middleware", reason="middleware not in the tree yet")
    pa = marker_pa(guest_x64) + HEARTBEAT
    with open_qemu(guest_x64.name) as conn:
        cache_arg = next(a for a in mw.MIDDLEWARE_ARGS if a.name == "cache")
        cached = mw.wrap(conn, {"cache": cache_arg.parse("all")})
        assert isinstance(cached, mw.PageCache)
        assert cached.validity.seconds == conn.hints["cache_time"] == 0.1  # short default for live targets
        first = cached.read_u64(pa)
        hits = cached.hits
        assert cached.read_u64(pa) == first and cached.hits == hits + 1  # served from the cache
        deadline = time.time() + 5
        while conn.read_u64(pa) == first and time.time() < deadline:
            time.sleep(0.2)
        new = conn.read_u64(pa)
        time.sleep(0.15)
        assert cached.read_u64(pa) >= new > first  # the expired entry was read again


# ---- anonymous RAM (QEMU's default): QMP layout, checked with xp -----------------------------

def test_anon_guest_layout_and_bytes_match_xp(guest_anon):
    marker = guest_anon.info["MARKER"].encode()
    with open_qemu(guest_anon.name, pause="open") as conn, QmpClient(guest_anon.qmp2) as q:
        assert conn.layout.method == "qmp"
        assert conn.read(marker_pa(guest_anon), len(marker)) == marker
        # register hints from QEMU: 4-level paging, and CR3 is a page-table root in guest RAM whose
        # kernel half (PML4 entries 256..511; with PTI the kernel root is CR3 without bit 12) is present
        assert conn.hints["arch"] == "x64" and conn.hints["cpu_registers"][0]["cpl"] in (0, 3)
        pml4 = np.frombuffer(conn.read(conn.hints["dtb"] & ~0x1FFF, 4096), "<u8")
        assert (pml4[256:] & 1).sum() >= 2
        # the RAM mapping is the rw mapping of memdev size, not the (bigger) TCG code cache
        size = q.cmd("query-memdev")[0]["size"]
        host = conn.map.ranges[0].host
        with open(f"/proc/{guest_anon.pid}/maps") as f:
            for line in f:
                a, b = (int(x, 16) for x in line.split()[0].split("-"))
                if a <= host < b:
                    assert b - a == size and line.split()[1].startswith("rw")
        rng = np.random.default_rng(5)
        gpas = (rng.integers(0x100000, size - 8, 64) & ~7).tolist() + [marker_pa(guest_anon) + 8 * k for k in range(8)]
        vals, ok = conn.read_u64_many(gpas)
        assert ok.all()
        for g, v in zip(gpas, vals.tolist(), strict=True):
            assert v == xp_u64(q, g), hex(g)
        assert not q.cmd("query-status")["running"]
        # the fallback for QEMUs without gpa2hva: size-matched mappings checked against xp
        entries = [e for e in parse_mtree_flat(q.hmp("info mtree -f")) if e.name == "pc.ram"]
        maps = parse_maps(open(f"/proc/{guest_anon.pid}/maps").read())
        base, note = mapping_by_size(q, maps, size, entries, conn._access.read_bytes)
        assert base == conn.map.ranges[0].host
        hits, total = (int(x) for x in re.search(r"(\d+) of (\d+) non-zero", note).groups())
        assert hits == total >= 16, note
    with QmpClient(guest_anon.qmp2) as q:
        assert q.cmd("query-status")["running"]  # resumed on close


def test_batches_report_holes_and_io_paths_agree(guest_anon):
    pa = marker_pa(guest_anon)
    with open_qemu(guest_anon.name) as rv, open_qemu(guest_anon.name, io="procmem") as pm:
        addrs = [pa, 512 << 20, (512 << 20) - 4, marker_pa(guest_anon, 3), 0x3FFFFFFF0]
        lens = [64, 8, 8, 4096, 16]
        a, b = rv.read_batch(addrs, lens), pm.read_batch(addrs, lens)
        assert {f.index for f in a.failures} == {1, 2, 4} == {f.index for f in b.failures}
        f2 = next(f for f in a.failures if f.index == 2)
        assert (f2.address, f2.length) == (512 << 20, 4)  # first 4 bytes read, the rest is a hole
        assert a.piece(0) == b.piece(0) and a.piece(0).startswith(b"TBMARK")
        assert a.piece(3)[:6] == b"TBMARK" and a.piece(3)[len(guest_anon.info["MARKER"]) - 2:].startswith(b"03")
        assert a.data.ctypes.data % 4096 == 0  # page-aligned destination
        assert rv.info()["io"] == "readv" and pm.info()["io"] == "procmem"


def test_small_batches_compiled_pure_and_procmem_agree(guest_anon):
    """x1/x8/x32 batches of small pieces (marker pages, RAM's edge, past RAM): the compiled path (one
    process_vm_readv), the pure path's one-syscall small batch and the /proc/PID/mem path give the same
    bytes and failures (issue 15)."""
    from pymemflow.mem import fast

    pages = [marker_pa(guest_anon, i) for i in (1, 2, 3)]
    rng = np.random.default_rng(3)
    with open_qemu(guest_anon.name) as c, open_qemu(guest_anon.name) as p, \
            open_qemu(guest_anon.name, io="procmem") as pm:
        fast.force_pure(p)
        assert fast.compiled() == ("_compiled_reader" in c.__dict__)
        assert c.read_u64(pages[0]) == p.read_u64(pages[0]) == pm.read_u64(pages[0])
        for k in (1, 8, 32):
            for _ in range(5):
                addrs = [int(pages[int(rng.integers(0, 3))] + rng.integers(0, 4096 - 16)) for _ in range(k)]
                lens = [int(n) for n in rng.integers(0, 17, k)]
                if k > 1:
                    addrs[-1], lens[-1] = (512 << 20) - 4, 8  # the end of RAM: half read, half a hole
                want = [pm.read(a, n, zero_fill=True) for a, n in zip(addrs, lens, strict=True)]
                for conn in (c, p, pm):
                    for a_in, n_in in ((addrs, lens), (np.array(addrs, np.uint64), np.array(lens, np.int64))):
                        res = conn.read_batch(a_in, n_in)
                        assert [res.piece(i) for i in range(k)] == want
                        assert [(f.index, f.address, f.length) for f in res.failures] == \
                            ([(k - 1, 512 << 20, 4)] if k > 1 else [])


def test_pause_and_resume(guest_anon):
    pa = marker_pa(guest_anon) + HEARTBEAT
    with open_qemu(guest_anon.name) as conn:
        with conn.paused():
            assert conn.is_running() is False
            v = conn.read_u64(pa)
            time.sleep(1.3)
            assert conn.read_u64(pa) == v
        assert conn.is_running() is True
        deadline = time.time() + 5
        while conn.read_u64(pa) == v and time.time() < deadline:
            time.sleep(0.2)
        assert conn.read_u64(pa) > v


def test_pause_per_read(guest_anon):
    with open_qemu(guest_anon.name, pause="read") as conn:
        assert conn.read(marker_pa(guest_anon), 6) == b"TBMARK"
    with QmpClient(guest_anon.qmp2) as q:
        assert q.cmd("query-status")["running"]


def test_writes_need_opt_in(guest_anon):
    spot = marker_pa(guest_anon) + 2048  # inside the marker page's pattern, unused by the guest
    with open_qemu(guest_anon.name) as ro:
        with pytest.raises(ReadOnlyError):
            ro.write(spot, b"x")
    with open_qemu(guest_anon.name, writable=True) as rw, QmpClient(guest_anon.qmp2) as q:
        old = rw.read(spot, 8)
        rw.write(spot, b"PMFWRITE")
        assert xp_u64(q, spot) == int.from_bytes(b"PMFWRITE", "little")
        rw.write(spot, old)
        assert rw.read(spot, 8) == old


def test_busy_qmp_sockets_fall_back_to_heuristic_with_warning(guest_anon):
    # QEMU serves one client per QMP socket: hold both, the connector must warn and use the heuristic
    with QmpClient(guest_anon.qmp) as _a, QmpClient(guest_anon.qmp2) as _b:
        with pytest.warns(UserWarning, match="heuristic"):
            conn = open_qemu(guest_anon.name, qmp_timeout=0.5)
    with conn, open_qemu(guest_anon.name) as exact:
        assert conn.layout.method == "heuristic"
        assert conn.map.ranges == exact.map.ranges
        assert conn.read(marker_pa(guest_anon), 6) == b"TBMARK"


def test_map_base_override(guest_anon):
    with open_qemu(guest_anon.name) as exact:
        r = exact.map.ranges[0]
    with open_qemu(guest_anon.name, map_base=r.host, map_size=512 << 20) as conn:
        assert conn.layout.method == "override"
        assert conn.read(marker_pa(guest_anon), 6) == b"TBMARK"


def test_chain_on_native_and_on_an_os_layer_view(guest_anon):
    # -o native -c qemu:VM: the native layer is the local host, so the connector reads directly
    with open_qemu(guest_anon.name, input=NativeOs()) as conn:
        assert conn.layout.method == "qmp"
        assert conn.read(marker_pa(guest_anon), 6) == b"TBMARK"

    class RemoteView(NativeOs):
        """The same host seen as 'another machine': command line, maps and memory from the OS layer."""

        is_local_host = False

    with pytest.warns(UserWarning, match="heuristic"):
        conn2 = open_qemu(guest_anon.name, input=RemoteView())
    with conn2:
        assert conn2.info()["io"] == "input os"
        marker = guest_anon.info["MARKER"].encode()
        assert conn2.read(marker_pa(guest_anon), len(marker)) == marker
        res = conn2.read_batch([marker_pa(guest_anon), 1 << 40], [8, 8])
        assert [f.index for f in res.failures] == [1]


def test_missing_ptrace_permission_says_what_to_do(guest_anon):
    code = (
        "import os, sys, bisect, shlex, warnings\n"
        "from pymemflow.connectors.qemu import open_qemu\n"
        "from pymemflow.errors import PymemflowError\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)  # after imports: /root is private\n"
        f"try:\n    open_qemu('{guest_anon.pid}')\n"
        "except PymemflowError as e:\n    print('ERR', e); sys.exit(3)\n"
    )
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert "CAP_SYS_PTRACE" in p.stdout and "root" in p.stdout
    assert "Traceback" not in p.stderr


# ---- q35 with 4 GiB: RAM split around the PCI hole ------------------------------------------

def test_q35_split_ram(guest_q35):
    with open_qemu(guest_q35.name) as qmp_conn, QmpClient(guest_q35.qmp2) as q:
        mtree = parse_mtree_flat(q.hmp("info mtree -f"))
        assert any(e.start == 1 << 32 and e.name == "pc.ram" for e in mtree)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            heur = open_qemu(guest_q35.name, layout="heuristic")
        with heur:
            assert qmp_conn.map.ranges == heur.map.ranges
            bases = [(r.base, r.size) for r in qmp_conn.map.ranges]
            assert bases == [(0, 2 << 30), (4 << 30, 2 << 30)]
            assert qmp_conn.map.ranges[1].host - qmp_conn.map.ranges[0].host == 2 << 30
        marker = guest_q35.info["MARKER"].encode()
        assert qmp_conn.read(marker_pa(guest_q35), len(marker)) == marker
        with qmp_conn.paused():
            rng = np.random.default_rng(7)
            high = ((4 << 30) + (rng.integers(0, 2 << 30, 24) & ~7)).tolist()
            low = (rng.integers(0x100000, 2 << 30, 8) & ~7).tolist()
            vals, ok = qmp_conn.read_u64_many(high + low)
            assert ok.all()
            for g, v in zip(high + low, vals.tolist(), strict=True):
                assert v == xp_u64(q, g), hex(g)
        # the PCI hole is not RAM: a read across its start fails only for the part in the hole
        res = qmp_conn.read_batch([(2 << 30) - 8, 3 << 30], [16, 8])
        fails = sorted((f.index, f.address, f.length) for f in res.failures)
        assert fails == [(0, 2 << 30, 8), (1, 3 << 30, 8)]


# ---- virtual memory over the live connector ------------------------------------------------------

def test_kernel_virtual_read_through_live_connector(guest_x64):
    arch = pytest.importorskip("pymemflow.arch", reason="translation layer not in the tree yet")
    if not hasattr(arch, "VirtualMemory"):
        pytest.skip("pymemflow.arch.VirtualMemory not in the tree yet")
    syms = {ln.split()[3]: int(ln.split()[1], 16) for ln in guest_x64.serial_lines("TESTBED_SYM")}
    with open_qemu(guest_x64.name) as conn, conn.paused(), QmpClient(guest_x64.qmp2) as q:
        m = re.search(r"CR3=([0-9a-f]+)", q.hmp("info registers"))
        assert m
        # PTI: a user-mode CR3 is the kernel PGD + 4 KiB (bit 12); low bits are the PCID
        dtb = int(m.group(1), 16) & ~0x1FFF
        vm = arch.VirtualMemory(conn, "x64", dtb)
        assert vm.read(syms["linux_banner"], 14) == b"Linux version "
        assert vm.tlb is not None and vm.tlb.policy.max_age == conn.hints["cache_time"]  # short for live targets


# ---- chains and the command line ---------------------------------------------------------------

def test_chains_native_then_qemu(guest_anon):
    import pymemflow

    marker = guest_anon.info["MARKER"].encode()
    pa = marker_pa(guest_anon)
    with pymemflow.chain(["-o", "native", "-c", f"qemu:{guest_anon.name}"]) as ch:
        assert isinstance(ch.connector, QemuConnector)
        assert ch.connector.read(pa, len(marker)) == marker
    with pymemflow.Chain().connector("qemu", guest_anon.name, cache=True) as ch:
        assert ch.connector.read(pa, len(marker)) == marker
        assert ch.connector.validity.seconds == 0.1  # the page cache took the live target's short default


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pymemflow.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_targets_and_phys_read(guest_anon):
    out = _cli("targets", "-c", "qemu")
    assert out.returncode == 0, out.stderr
    assert guest_anon.name in out.stdout and str(guest_anon.pid) in out.stdout
    pa = marker_pa(guest_anon)
    out = _cli("-o", "native", "-c", f"qemu:{guest_anon.name}", "phys-read", hex(pa), "16")
    assert out.returncode == 0, out.stderr
    assert "TBMARK" in out.stdout
    out = _cli("-c", "qemu:no-such-vm", "info")
    assert out.returncode == 1 and "no running VM" in out.stderr and "Traceback" not in out.stderr
