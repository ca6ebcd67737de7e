"""The ``native`` OS layer against processes these tests start themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymemflow.errors import FormatError, NotFoundError, PartialReadError, ReadOnlyError
from pymemflow.live import procfs
from pymemflow.live.elf import ElfFile, elf_arch
from pymemflow.os.native.layer import NativeOs
from pymemflow.os.native.plugin import PLUGIN

CHILD = r"""
import ctypes, mmap, sys
marker = sys.argv[1].encode()
buf = ctypes.create_string_buffer(marker + b"\0" * 64, 4096)
libc = ctypes.CDLL(None)
m = mmap.mmap(-1, 3 * 4096)
m[:] = b"A" * 4096 + b"B" * 4096 + b"C" * 4096
three = ctypes.addressof(ctypes.c_char.from_buffer(m))
assert libc.munmap(ctypes.c_void_p(three + 4096), 4096) == 0  # a hole in the middle
print(ctypes.addressof(buf), ctypes.cast(libc.getpid, ctypes.c_void_p).value, three, flush=True)
for line in sys.stdin:
    print(buf.value.decode(), flush=True)
"""


@dataclass
class Child:
    proc: subprocess.Popen
    marker: str
    buf: int
    getpid: int
    guarded: int
    """3 pages 'A', 'B', 'C' with the middle one unmapped (PROT_NONE would not do: /proc/PID/mem
    reads those, with the debugger's FOLL_FORCE, while process_vm_readv refuses them)."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def echo(self) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("x\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()


@pytest.fixture(scope="module")
def child() -> Iterator[Child]:
    marker = f"PMFNATIVE:{uuid.uuid4().hex}"
    p = subprocess.Popen([sys.executable, "-c", CHILD, marker], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout
        buf, getpid, guarded = (int(x) for x in p.stdout.readline().split())
        yield Child(p, marker, buf, getpid, guarded)
    finally:
        p.kill()
        p.wait()


def test_process_info(child):
    os_ = NativeOs()
    info = next(i for i in os_.process_info_list() if i.pid == child.pid)
    assert info.ppid == os.getpid()
    assert info.path == os.path.realpath(sys.executable)
    assert info.name == open(f"/proc/{child.pid}/comm").read().strip()  # like ps
    assert child.marker in info.command_line
    assert info.state in ("sleeping", "running")
    assert info.arch == elf_arch(sys.executable) == {"x86_64": "x64", "aarch64": "aarch64"}.get(os.uname().machine,
                                                                                               info.arch)
    assert os_.process(str(child.pid)).info.pid == child.pid
    assert os_.process_by_pid(child.pid).info.command_line == info.command_line
    with pytest.raises(NotFoundError):
        os_.process_by_pid(2**22 + 12345)


def test_long_names_are_not_cut_at_15_chars(tmp_path):
    exe = tmp_path / "pmf_a_rather_long_process_name"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    p = subprocess.Popen([str(exe), "30"])
    try:
        os_ = NativeOs()
        proc = os_.process_by_name(exe.name)
        assert proc.info.pid == p.pid
        assert proc.info.extra["comm"] == exe.name[:15]
    finally:
        p.kill()
        p.wait()


def test_read_known_string_and_unmapped(child):
    proc = NativeOs().process_by_pid(child.pid)
    assert proc.read(child.buf, len(child.marker)) == child.marker.encode()
    assert proc.memory.read_cstr(child.buf) == child.marker
    res = proc.memory.read_batch([child.buf, 8, child.buf + 4], [10, 8, 6])
    assert [f.index for f in res.failures] == [1]
    assert res.piece(0) == child.marker.encode()[:10] and res.piece(2) == child.marker.encode()[4:10]
    assert res.piece(1) == b"\0" * 8
    assert res.data.ctypes.data % 4096 == 0


@pytest.mark.parametrize("io", ["readv", "procmem"])
def test_partial_read_reports_exactly_the_hole(child, io):
    mem = NativeOs(io=io).process_by_pid(child.pid).memory
    g = child.guarded
    res = mem.read_batch([g + 4000, g, g + 8192], [8192 + 96, 10, 16])
    assert [(f.index, f.address, f.length) for f in res.failures] == [(0, g + 4096, 4096)]
    p0 = res.piece(0)
    assert p0[:96] == b"A" * 96 and p0[96 : 96 + 4096] == b"\0" * 4096 and p0[96 + 4096 :] == b"C" * 4096
    assert res.piece(1) == b"A" * 10 and res.piece(2) == b"C" * 16
    with pytest.raises(PartialReadError) as e:
        mem.read(g + 4090, 12)
    assert e.value.data[:6] == b"A" * 6 and e.value.failures[0].address == g + 4096


def test_io_paths_agree(child):
    a = NativeOs(io="readv").process_by_pid(child.pid).memory
    b = NativeOs(io="procmem").process_by_pid(child.pid).memory
    r1, r2 = a.read_batch([child.buf, 0x10], [64, 8]), b.read_batch([child.buf, 0x10], [64, 8])
    assert r1.piece(0) == r2.piece(0)
    assert [f.index for f in r1.failures] == [f.index for f in r2.failures] == [1]


def test_modules_match_proc_maps(child):
    os_ = NativeOs()
    proc = os_.process_by_pid(child.pid)
    mods = proc.module_list()
    with open(f"/proc/{child.pid}/maps") as f:
        entries = procfs.parse_maps(f.read())
    files = {e.path for e in entries if e.path.startswith("/") and e.inode}
    assert {m.path for m in mods} == files
    for m in mods:
        spans = [e for e in entries if e.path == m.path]
        assert m.base == min(e.start for e in spans) and m.base + m.size == max(e.end for e in spans)
    libc = next(m for m in mods if m.name.startswith("libc.so") or m.name.startswith("libc-"))
    assert proc.module_by_name(libc.name) == libc
    regions = proc.maps()
    assert len(regions) == len(entries)
    assert any(r.kind == "stack" for r in regions)


def test_exports_and_sections(child):
    proc = NativeOs().process_by_pid(child.pid)
    libc = next(m for m in proc.module_list() if m.name.startswith("libc.so") or m.name.startswith("libc-"))
    exports = {e.name: e.address for e in proc.exports(libc)}
    assert exports["getpid"] == child.getpid
    assert libc.base <= exports["malloc"] < libc.base + libc.size
    secs = {s.name: s for s in proc.sections(libc)}
    assert ".text" in secs and libc.base <= secs[".text"].address < libc.base + libc.size
    # the bytes at the export are the function's code as mapped: same as the file's .text bytes
    text = secs[".text"]
    with ElfFile(libc.path) as elf:
        sh = next(s for s in elf.section_headers() if s.name == ".text")
        disk = elf.pread(sh.offset + (exports["getpid"] - text.address), 16, ".text")
    assert proc.read(exports["getpid"], 16) == disk


def test_writes_need_opt_in(child):
    with pytest.raises(ReadOnlyError):
        NativeOs().process_by_pid(child.pid).memory.write(child.buf, b"X")
    proc = NativeOs(writable=True).process_by_pid(child.pid)
    proc.memory.write(child.buf, b"WRITTEN!")
    assert child.echo().startswith("WRITTEN!")
    proc.memory.write(child.buf, child.marker.encode()[:8])
    assert child.echo() == child.marker


def test_plugin_spec():
    assert PLUGIN.kind == "os" and PLUGIN.name == "native"
    layer = PLUGIN.factory({"proc": "/proc", "writable": False, "io": "auto"}, None)
    assert layer.info()["os"] == "native"
    assert any(p.pid == os.getpid() for p in layer.process_info_list())


def test_cli_ps_native():
    try:
        import pymemflow.cli.main  # noqa: F401
    except ImportError:
        pytest.skip("CLI (pymemflow.cli.main) not in the tree yet")
    out = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "-o", "native", "ps"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and "ps" in out.stderr and "invalid choice" in out.stderr:
        pytest.skip("CLI has no ps command yet")
    assert out.returncode == 0, out.stderr
    assert str(os.getpid()) in out.stdout


# ---- the bounded ELF reader --------------------------------------------------------------------

def test_elf_reader_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x7fELF\x02\x01" + b"\0" * 10)
    with pytest.raises(FormatError, match="e_ident"):
        ElfFile(str(bad))
    real = open(sys.executable, "rb").read(64)
    trunc = tmp_path / "trunc"
    trunc.write_bytes(real)  # header claims program headers past the end
    with ElfFile(str(trunc)) as elf, pytest.raises(FormatError, match="e_phoff"):
        elf.program_headers()


_SMALL_ELF = os.path.realpath(shutil.which("true") or "/bin/true")
_HEAD = open(_SMALL_ELF, "rb").read(1 << 20)  # a whole small dynamic executable: sections reachable
_SHOFF = int.from_bytes(_HEAD[0x28:0x30], "little")
_OFFSETS = st.one_of(st.integers(0, 63), st.integers(_SHOFF, len(_HEAD) - 1), st.integers(0, len(_HEAD) - 1))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_OFFSETS, st.integers(0, 255)), max_size=12),
       st.one_of(st.just(len(_HEAD)), st.integers(64, len(_HEAD))))
def test_elf_reader_fuzz(tmp_path, flips, cut):
    data = bytearray(_HEAD[:cut])
    for off, val in flips:
        if off < len(data):
            data[off] = val
    p = tmp_path / "fuzz.elf"
    p.write_bytes(bytes(data))
    try:
        with ElfFile(str(p)) as elf:
            elf.program_headers()
            elf.section_headers()
            elf.symbols()
            elf.import_slots()
    except FormatError:
        pass


def test_imports_are_got_slots_bound_to_exports():
    p = subprocess.Popen([shutil.which("sleep") or "/bin/sleep", "30"])
    try:
        os_ = NativeOs()
        deadline = time.time() + 5
        while time.time() < deadline:  # wait until the dynamic loader has mapped libc
            proc = os_.process_by_pid(p.pid)
            mods = proc.module_list()
            if any(m.name.startswith("libc.so") for m in mods):
                break
            time.sleep(0.05)
        exe = mods[0]
        assert exe.path == os.path.realpath(shutil.which("sleep") or "/bin/sleep")
        libc = next(m for m in mods if m.name.startswith("libc.so"))
        exports = {e.name: e.address for e in proc.exports(libc)}
        imports = [i for i in proc.imports(exe) if i.module == libc.name and i.name in exports]
        assert len(imports) >= 10
        slots, ok = proc.memory.read_u64_many([i.address for i in imports])
        assert ok.all()
        by_name = dict(zip([i.name for i in imports], slots.tolist(), strict=True))
        assert by_name["__libc_start_main"] == exports["__libc_start_main"]  # GLOB_DAT: bound at load
        # JUMP_SLOTs are bound to the export, or (lazy binding) still point into the module's own PLT
        good = sum(1 for i in imports if by_name[i.name] == exports[i.name]
                   or exe.base <= by_name[i.name] < exe.base + exe.size)
        assert good >= 0.8 * len(imports)
    finally:
        p.kill()
        p.wait()


def test_reading_an_exited_process_is_a_clear_error():
    from pymemflow.live.procmem import ProcessGoneError

    p = subprocess.Popen([shutil.which("sleep") or "/bin/sleep", "30"])
    proc = NativeOs().process_by_pid(p.pid)
    stack = next(r for r in proc.maps() if r.kind == "stack")
    assert len(proc.read(stack.end - 16, 16)) == 16
    p.kill()
    p.wait()
    with pytest.raises(ProcessGoneError, match=str(p.pid)):
        proc.read(stack.end - 16, 16)
    with pytest.raises(ProcessGoneError):
        proc.memory.read_batch([stack.end - 16], [16])
