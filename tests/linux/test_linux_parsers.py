"""Parsers of the Linux layer on hand-built and hostile input: VMCOREINFO text, BTF, kallsyms tables,
System.map, list and maple-tree walks. Every failure must be a clear FormatError/NotFoundError and
every walk must end (cycles, huge counts, truncation)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymemflow.errors import FormatError, NotFoundError, ReadFailure
from pymemflow.mem.view import MemoryView
from pymemflow.os.linux import btf, kallsyms, maps, vmcoreinfo
from pymemflow.os.linux.kread import walk_list

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class BytesView(MemoryView):
    """Memory at ``base`` .. ``base + len(buf)``; everything else fails (reported, zero-filled)."""

    def __init__(self, buf: bytes | bytearray, base: int = 0, pointer_size: int = 8) -> None:
        self.buf = bytes(buf)
        self.base = base
        self.pointer_size = pointer_size

    def _read_batch(self, addrs, lengths, out):  # type: ignore[no-untyped-def]
        fails = []
        pos = 0
        for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)):
            lo = a - self.base
            if lo < 0 or lo + n > len(self.buf):
                out[pos:pos + n] = 0
                fails.append(ReadFailure(i, a, n, "outside the buffer"))
            else:
                out[pos:pos + n] = np.frombuffer(self.buf, dtype=np.uint8, count=n, offset=lo)
            pos += n
        return fails


VMCI = """OSRELEASE=6.1.0-56-amd64
BUILD-ID=eb4fbcd037e7253717950bf2b93bd5566f47c56f
PAGESIZE=4096
SYMBOL(swapper_pg_dir)=ffffffff96010000
SYMBOL(_stext)=ffffffff94600000
OFFSET(list_head.next)=0
SIZE(list_head)=16
NUMBER(phys_base)=-178257920
NUMBER(pgtable_l5_enabled)=1
KERNELOFFSET=13600000
CONFIG_X86_PAE=y
"""


def test_vmcoreinfo_fields() -> None:
    v = vmcoreinfo.parse(VMCI)
    assert (v.osrelease, v.page_size, v.kerneloffset) == ("6.1.0-56-amd64", 4096, 0x13600000)
    assert v.symbols["swapper_pg_dir"] == 0xFFFFFFFF96010000 and v.phys_base == -178257920
    assert v.pgtable_l5 and v.pae and v.is_64bit and v.offsets["list_head.next"] == 0
    assert v.build_id.startswith("eb4f")


def test_vmcoreinfo_missing_pieces_are_named() -> None:
    with pytest.raises(FormatError, match="OSRELEASE"):
        vmcoreinfo.parse("PAGESIZE=4096\n")
    with pytest.raises(FormatError, match="swapper_pg_dir"):
        vmcoreinfo.parse("OSRELEASE=6.1\n")


def test_vmcoreinfo_scan_finds_copy_and_skips_format_string() -> None:
    mem = bytearray(3 << 20)
    mem[0x1000:0x1000 + 13] = b"OSRELEASE=%s\n"
    at = (2 << 20) - 5  # straddles a chunk boundary
    mem[at:at + len(VMCI)] = VMCI.encode()
    found = list(vmcoreinfo.scan(BytesView(mem), len(mem), chunk=1 << 20))
    assert [f.location for f in found] == [at]


@FUZZ
@given(st.text(max_size=400))
def test_vmcoreinfo_fuzz(text: str) -> None:
    try:
        vmcoreinfo.parse(text)
    except FormatError:
        pass


# ---- BTF ---------------------------------------------------------------------------------------

def build_btf() -> bytes:
    """int(1), ptr->int(2), struct inner{int a; int b;}(3), union anon{inner; long}(4),
    struct outer{int x; union anon; char name[16]; ptr p}(5), array char[16](6), char(7)."""
    strs = b"\0int\0inner\0a\0b\0outer\0x\0name\0p\0char\0"
    off = {s: strs.index(b"\0" + s.encode() + b"\0") + 1 for s in ["int", "inner", "a", "b", "outer", "x", "name", "p", "char"]}
    t = b""
    t += struct.pack("<III", off["int"], 1 << 24, 4) + struct.pack("<I", 32)                 # 1 int
    t += struct.pack("<III", 0, 2 << 24, 1)                                                  # 2 ptr
    t += struct.pack("<III", off["inner"], (4 << 24) | 2, 8) + struct.pack("<III", off["a"], 1, 0) \
        + struct.pack("<III", off["b"], 1, 32)                                              # 3 inner
    t += struct.pack("<III", 0, (5 << 24) | 2, 8) + struct.pack("<III", 0, 3, 0) + struct.pack("<III", 0, 1, 0)  # 4 union
    t += struct.pack("<III", off["outer"], (4 << 24) | 4, 40) + struct.pack("<III", off["x"], 1, 0) \
        + struct.pack("<III", 0, 4, 64) + struct.pack("<III", off["name"], 6, 128) + struct.pack("<III", off["p"], 2, 256)
    t += struct.pack("<III", 0, 3 << 24, 0) + struct.pack("<III", 7, 1, 16)                 # 6 char[16]
    t += struct.pack("<III", off["char"], 1 << 24, 1) + struct.pack("<I", 8)                 # 7 char
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(t), len(t), len(strs))
    return hdr + t + strs


def test_btf_offsets_through_anonymous_members() -> None:
    b = btf.Btf(build_btf())
    assert len(b) == 7 and b.size_of("outer") == 40
    assert b.offset_of("outer", "x") == 0 and b.offset_of("outer", "a") == 8 and b.offset_of("outer", "b") == 12
    assert b.offset_of("outer", "name") == 16 and b.array_len("outer", "name") == 16
    assert b.offset_of("outer", "p") == 32 and b.size(b.member_type("outer", "p")) == 8
    with pytest.raises(NotFoundError, match="no member 'zz'"):
        b.offset_of("outer", "zz")
    isf = btf.to_isf(b, ["outer"])
    assert isf["user_types"]["outer"]["fields"]["name"]["type"] == {  # type: ignore[index]
        "kind": "array", "count": 16, "subtype": {"kind": "base", "name": "char"}}


def test_btf_truncated_everywhere_is_a_format_error() -> None:
    blob = build_btf()
    for n in range(len(blob)):
        with pytest.raises(FormatError):
            btf.Btf(blob[:n])


@FUZZ
@given(st.data())
def test_btf_fuzz_mutations(data: st.DataObject) -> None:
    blob = bytearray(build_btf())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    try:
        b = btf.Btf(bytes(blob))
        for name in ("outer", "inner"):
            b.offset_of(name, "a")
            b.size_of(name)
    except (FormatError, NotFoundError):
        pass


# ---- kallsyms ------------------------------------------------------------------------------------

def build_kallsyms(base: int = 0xFFFFFFFF81000000) -> tuple[bytes, kallsyms.KallsymsTables, list[tuple[str, int]]]:
    syms = [("T_stext", 0x0), ("Tstart_kernel", 0x1234), ("Dinit_task", 0x200000), ("Ta_really_long_name_" + "x" * 140, 0x300)]
    tokens = [bytes([i]) if 32 <= i < 127 else b"" for i in range(256)]
    tokens[1] = b"start_"
    names = b""
    for s, _a in syms:
        enc = s.encode().replace(b"start_", b"\x01")
        n = len(enc)
        names += (bytes([n]) if n < 128 else bytes([0x80 | (n & 0x7F), n >> 7])) + enc
    tok_table = b"".join(t + b"\0" for t in tokens)
    idx, pos = [], 0
    for t in tokens:
        idx.append(pos)
        pos += len(t) + 1
    offsets = struct.pack(f"<{len(syms)}i", *[-(a + 1) for _s, a in syms])  # absolute-percpu style
    layout = {"offsets": 0, "names": 0x100, "token_table": 0x100 + len(names) + 8}
    layout["token_index"] = layout["token_table"] + len(tok_table) + 8
    mem = bytearray(layout["token_index"] + 512 + 64)
    mem[0:len(offsets)] = offsets
    mem[0x100:0x100 + len(names)] = names
    mem[layout["token_table"]:layout["token_table"] + len(tok_table)] = tok_table
    mem[layout["token_index"]:layout["token_index"] + 512] = struct.pack("<256H", *idx)
    tabs = kallsyms.KallsymsTables(names=base + 0x100, num_syms=len(syms), token_table=base + layout["token_table"],
                                   token_index=base + layout["token_index"], offsets=base, relative_base=base)
    return bytes(mem), tabs, [(s[1:], base + a) for s, a in syms]


def test_kallsyms_decode_and_check() -> None:
    base = 0xFFFFFFFF81000000
    mem, tabs, want = build_kallsyms(base)
    table = kallsyms.decode(BytesView(mem, base), tabs, check={"_stext": base})
    assert [(n, a) for n, _t, a in table.items()] == want
    assert table.types[:3] == ["T", "T", "D"]
    assert table.symbolize(base + 0x1240) == ("start_kernel", 0xC)
    with pytest.raises(FormatError, match="no offset convention"):
        kallsyms.decode(BytesView(mem, base), tabs, check={"_stext": base + 1})


@FUZZ
@given(st.data())
def test_kallsyms_fuzz(data: st.DataObject) -> None:
    base = 0xFFFFFFFF81000000
    mem, tabs, _want = build_kallsyms(base)
    buf = bytearray(mem)
    for _ in range(data.draw(st.integers(1, 16))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    tabs.num_syms = data.draw(st.sampled_from([tabs.num_syms, 0, 10**9, 3]))
    try:
        kallsyms.decode(BytesView(buf, base), tabs)
    except FormatError:
        pass


def test_system_map_stub_is_rejected(tmp_path: Path) -> None:
    stub = tmp_path / "System.map"
    stub.write_text("ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n")
    with pytest.raises(FormatError, match="not a usable System.map"):
        kallsyms.load_system_map(str(stub))
    good = tmp_path / "good.map"
    good.write_text("ffffffff81000000 T _stext\nffffffff82000000 D init_task\n0000000000000000 A __per_cpu_start\n")
    t = kallsyms.load_system_map(str(good), 0x1000000)
    assert t["init_task"] == 0xFFFFFFFF83000000 and t["__per_cpu_start"] == 0


# ---- walks -----------------------------------------------------------------------------------------

def test_list_walk_stops_at_cycles_and_limits() -> None:
    base = 0x1000
    mem = bytearray(0x100)
    # head(0x1000) -> 0x1010 -> 0x1020 -> 0x1010 (cycle not through head)
    struct.pack_into("<QQQ", mem, 0, base + 0x10, 0, base + 0x20)
    struct.pack_into("<Q", mem, 0x20, base + 0x10)
    w = walk_list(BytesView(mem, base), base)
    assert w.entries == [base + 0x10, base + 0x20]
    assert len(w.warnings) == 1 and "loop" in w.warnings[0]
    chain = bytearray(0x1000)
    for i in range(0, 0x1000 - 8, 8):
        struct.pack_into("<Q", chain, i, base + i + 8)
    w = walk_list(BytesView(chain, base), base, limit=100)
    assert len(w.entries) == 100 and "cap" in w.warnings[0]


def test_maple_walk_ends_on_self_referencing_nodes() -> None:
    off = maps.VmaOffsets(start=0, end=8, flags=16, file=24, pgoff=32, next=None, mm_mmap=None, mm_mt_root=0,
                          r64_pivot=8, r64_slot=128, r64_slots=16, a64_pivot=8, a64_slot=80, a64_slots=10,
                          mm_start_stack=0, mm_start_brk=0, mm_brk=0)
    base = 0x10000
    mem = bytearray(0x1000)
    node = base  # arange_64 node whose slots point at itself (as an encoded child) and at a leaf
    enc_self = node | (3 << 3)
    leaf = base + 0x100
    struct.pack_into("<Q", mem, 8, 0x1000)             # pivot[0]
    struct.pack_into("<Q", mem, 8 + 8, (1 << 64) - 1)  # pivot[1] = max
    struct.pack_into("<QQ", mem, 80, enc_self, leaf | (1 << 3))
    struct.pack_into("<Q", mem, 0x100 + 8, (1 << 64) - 1)  # leaf pivot[0] = max
    struct.pack_into("<Q", mem, 0x100 + 128, 0xFFFF888000001000)  # one "VMA"
    got = maps.maple_entries(BytesView(mem, base), enc_self | 2, off, (1 << 64) - 1)
    assert got == [0xFFFF888000001000]


def test_memory_without_vmcoreinfo_names_what_is_missing(tmp_path: Path) -> None:
    from pymemflow.connectors.raw import RawFileMemory
    from pymemflow.errors import OsLayerError
    from pymemflow.os.linux.layer import LinuxOs

    f = tmp_path / "zeros.ram"
    with open(f, "wb") as fh:
        fh.truncate(64 << 20)
    with pytest.raises(OsLayerError, match=r"no VMCOREINFO text .*CONFIG_CRASH_CORE"):
        LinuxOs(RawFileMemory(f))
    blob = bytearray(64 << 20)
    blob[0x5000:0x5000 + len(VMCI)] = VMCI.encode()  # a copy whose page tables do not check out
    f.write_bytes(bytes(blob))
    with pytest.raises(OsLayerError, match=r"1 VMCOREINFO copy found but none gives page tables"):
        LinuxOs(RawFileMemory(f))
