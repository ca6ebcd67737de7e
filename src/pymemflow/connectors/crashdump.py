"""Windows kernel crash dumps (``PAGEDUMP`` 32-bit, ``PAGEDU64`` 64-bit).

Layout (``DUMP_HEADER32/64`` as in volatility3's crash/crash64 symbol tables and the WDK's dump
headers): signature "PAGE", ValidDump "DUMP"/"DU64", then DirectoryTableBase, PfnDataBase,
PsLoadedModuleList, PsActiveProcessHead, MachineImageType, NumberProcessors, BugCheckCode and its
four parameters, KdDebuggerDataBlock, the PHYSICAL_MEMORY_DESCRIPTOR (runs of pages) and DumpType
(0xF88 / 0xF98). The header is one page (32-bit) or two (64-bit); then:

- DumpType 1 (full): the pages of each run, in run order;
- DumpType 2/5/6 with a summary header "SDMP"/"FDMP" after the dump header (HeaderSize = file offset
  of the first page, BitmapSize = bits, bitmap at +0x38): the pages whose bit is set, in pfn order;
- DumpType 4 (triage / kernel mini dump): no physical memory; the saved *virtual* ranges (data
  blocks, data page, call stack) become :attr:`CrashDump.virtual`, to be read with the header's DTB.

Header facts become hints (dtb, PsActiveProcessHead, PsLoadedModuleList, KdDebuggerDataBlock,
machine, nt_build, bugcheck).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadFailure
from ..mem.view import I64Array, MemoryView, U8Array, U64Array
from ..types import PluginSpec
from .formats.base import file_plugin_args
from .formats.bitmaps import bitmap_pfns
from .formats.runs import RunMap, RunMappedMemory
from .formats.source import FileSource

PAGE = 0x1000
SIGNATURE = b"PAGE"
VALID32 = b"DUMP"
VALID64 = b"DU64"
DUMP_FULL, DUMP_SUMMARY, DUMP_TRIAGE, DUMP_BITMAP_FULL, DUMP_BITMAP_KERNEL = 1, 2, 4, 5, 6
MACHINES = {0x14C: "x86", 0x8664: "x64", 0xAA64: "aarch64", 0x1C4: "arm"}
MAX_BITMAP_BITS = 1 << 40 >> 12  # 1 TiB of 4 KiB pages
MAX_TRIAGE_BLOCKS = 1 << 16


class _Layout:
    """Field offsets of DUMP_HEADER32 / DUMP_HEADER64."""

    def __init__(self, is64: bool) -> None:
        self.is64 = is64
        self.header_size = 0x2000 if is64 else 0x1000
        p = "Q" if is64 else "I"
        self.ptr = p
        if is64:
            self.dtb, self.pfn, self.mods, self.procs = 0x10, 0x18, 0x20, 0x28
            self.machine, self.ncpu, self.bugcheck, self.bugparams = 0x30, 0x34, 0x38, 0x40
            self.kddbg, self.pmd, self.dumptype, self.pae = 0x80, 0x88, 0xF98, None
            self.run_at, self.run_fmt, self.max_runs = 0x88 + 16, "<QQ", (0x348 - 0x98) // 16
            self.context = 0x348
        else:
            self.dtb, self.pfn, self.mods, self.procs = 0x10, 0x14, 0x18, 0x1C
            self.machine, self.ncpu, self.bugcheck, self.bugparams = 0x20, 0x24, 0x28, 0x2C
            self.kddbg, self.pmd, self.dumptype, self.pae = 0x60, 0x64, 0xF88, 0x5C
            self.run_at, self.run_fmt, self.max_runs = 0x64 + 8, "<II", (0x320 - 0x6C) // 8
            self.context = 0x320


class CrashDump(RunMappedMemory):
    """A Windows crash dump as physical memory (and, for triage dumps, saved virtual memory)."""

    name = "crashdump"
    format_name = "crashdump"

    def __init__(self, path: str | Path, source: FileSource | None = None) -> None:
        super().__init__(source or FileSource(path, self.format_name))
        src = self.source
        sig, valid = src.unpack("<4s4s", 0, "DUMP_HEADER.Signature/ValidDump")
        if sig != SIGNATURE:
            raise src.error(0, "DUMP_HEADER.Signature", f"bad signature {sig!r} (expected b'PAGE')")
        if valid not in (VALID32, VALID64):
            raise src.error(4, "DUMP_HEADER.ValidDump", f"bad value {valid!r} (expected b'DUMP' or b'DU64')")
        lay = _Layout(valid == VALID64)
        self.layout = lay
        src.check(0, lay.header_size, "DUMP_HEADER (header pages)")
        u = "<" + lay.ptr

        def ptr(off: int, field: str) -> int:
            return int(src.unpack(u, off, f"DUMP_HEADER.{field}")[0])

        major, minor = src.unpack("<II", 8, "DUMP_HEADER.MajorVersion/MinorVersion")
        dtb = ptr(lay.dtb, "DirectoryTableBase")
        machine, ncpu, bugcode = src.unpack("<III", lay.machine, "DUMP_HEADER.MachineImageType")
        params = src.unpack("<4" + lay.ptr, lay.bugparams, "DUMP_HEADER.BugCheckParameter")
        (dump_type,) = src.unpack("<I", lay.dumptype, "DUMP_HEADER.DumpType")
        self.dump_type = dump_type
        self.is64 = lay.is64
        self.pointer_size = 8 if lay.is64 else 4
        arch = MACHINES.get(machine, f"machine {machine:#x}")
        if arch == "x86" and lay.pae is not None and src.read(lay.pae, 1, "DUMP_HEADER.PaeEnabled")[0]:
            arch = "x86pae"
        self.virtual: TriageMemory | None = None
        if dump_type == DUMP_FULL:
            self._full(src, lay)
        elif dump_type in (DUMP_SUMMARY, DUMP_BITMAP_FULL, DUMP_BITMAP_KERNEL):
            self._bitmap(src, lay)
        elif dump_type == DUMP_TRIAGE:
            self._set_runs(RunMap(src, [], "triage"))
            self.virtual = TriageMemory(src, lay)
        else:
            raise src.error(lay.dumptype, "DUMP_HEADER.DumpType", f"unsupported dump type {dump_type}")
        self.hints.update({
            "dtb": dtb, "arch": arch, "machine": arch, "machine_type": machine,
            "PsActiveProcessHead": ptr(lay.procs, "PsActiveProcessHead"),
            "PsLoadedModuleList": ptr(lay.mods, "PsLoadedModuleList"),
            "PfnDataBase": ptr(lay.pfn, "PfnDataBase"),
            "KdDebuggerDataBlock": ptr(lay.kddbg, "KdDebuggerDataBlock"),
            "nt_build": minor, "nt_major": major, "number_processors": ncpu,
            "bugcheck": {"code": bugcode, "parameters": [int(p) for p in params]},
        })
        self.format_info.update({"bits": 64 if lay.is64 else 32, "dump_type": dump_type,
                                 "dump_type_name": {1: "full", 2: "kernel summary", 4: "triage",
                                                    5: "bitmap full", 6: "bitmap kernel"}[dump_type]})
        if self.virtual is not None:
            self.format_info["saved_virtual_ranges"] = len(self.virtual.runs)

    def _full(self, src: FileSource, lay: _Layout) -> None:
        (nruns,) = src.unpack("<I", lay.pmd, "PHYSICAL_MEMORY_DESCRIPTOR.NumberOfRuns")
        if nruns > lay.max_runs:
            raise src.error(lay.pmd, "PHYSICAL_MEMORY_DESCRIPTOR.NumberOfRuns",
                            f"{nruns} runs do not fit the header (at most {lay.max_runs})")
        st = struct.Struct(lay.run_fmt)
        runs: list[tuple[int, int, int]] = []
        where: list[int] = []
        fo = lay.header_size
        for i in range(nruns):
            at = lay.run_at + i * st.size
            base, count = src.unpack(st, at, f"PHYSICAL_MEMORY_RUN[{i}]")
            runs.append((base * PAGE, count * PAGE, fo))
            where.append(at)
            fo += count * PAGE
        self._set_runs(RunMap(src, runs, "PHYSICAL_MEMORY_RUN", where))

    def _bitmap(self, src: FileSource, lay: _Layout) -> None:
        at = lay.header_size
        sig, valid = src.unpack("<4s4s", at, "SUMMARY_DUMP.Signature")
        if sig not in (b"SDMP", b"FDMP") or valid != b"DUMP":
            raise src.error(at, "SUMMARY_DUMP.Signature", f"bad signature {sig!r}/{valid!r} (expected SDMP or FDMP / DUMP)")
        header_size, pages, bits = src.unpack("<QQQ", at + 0x20, "SUMMARY_DUMP.HeaderSize/Pages/BitmapSize")
        if bits > MAX_BITMAP_BITS:
            raise src.error(at + 0x30, "SUMMARY_DUMP.BitmapSize", f"absurd bitmap of {bits} bits")
        nbytes = (bits + 7) // 8
        bitmap = np.frombuffer(src.read(at + 0x38, nbytes, "SUMMARY_DUMP bitmap"), dtype=np.uint8)
        room = max(0, src.size - at) // PAGE
        pfns = bitmap_pfns(bitmap, bits, room, lambda n: src.error(
            at + 0x38, "SUMMARY_DUMP bitmap", f"{n} pages set but the file holds at most {room}"))
        if pages and pages != pfns.size:
            raise src.error(at + 0x28, "SUMMARY_DUMP.Pages", f"says {pages} pages but the bitmap has {pfns.size}")
        if header_size < at + 0x38 + nbytes:
            raise src.error(at + 0x20, "SUMMARY_DUMP.HeaderSize", f"{header_size:#x} points inside the bitmap")
        if pfns.size:
            brk = np.flatnonzero(np.diff(pfns) != 1) + 1
            first = np.concatenate(([0], brk))
            last = np.concatenate((brk, [pfns.size]))
            runs = np.stack([pfns[first].astype(object) * PAGE, (last - first).astype(object) * PAGE,
                             first.astype(object) * PAGE + header_size], axis=1)
        else:
            runs = np.zeros((0, 3), dtype=object)
        self._set_runs(RunMap(src, runs, "SUMMARY_DUMP bitmap / HeaderSize"))
        self.format_info["summary_signature"] = sig.decode()


class TriageMemory(MemoryView):
    """The virtual memory a triage (kernel mini) dump saved: data blocks, the data page and the stack.

    Addresses are virtual; ``dtb`` (the header's DirectoryTableBase) names the address space.
    """

    def __init__(self, src: FileSource, lay: _Layout) -> None:
        self.source = src
        t = lay.header_size
        self.pointer_size = 8 if lay.is64 else 4
        if lay.is64:
            (_sp, size_of_dump, valid_off, _ctx, _exc, _mm, _unl, _prcb, _proc, _thr, stack_off, stack_size,
             *_rest) = src.unpack("<16I", t, "TRIAGE_DUMP64")
            (top,) = src.unpack("<Q", t + 0x48, "TRIAGE_DUMP64.TopOfStack")
            dp_addr, dp_off, dp_size, _dd_off, _dd_size, blocks_off, nblocks = src.unpack(
                "<QIIIIII", t + 0x60, "TRIAGE_DUMP64.DataPage/DataBlocks")
            block = struct.Struct("<QII")
        else:
            (_sp, size_of_dump, valid_off, _ctx, _exc, _mm, _unl, _prcb, _proc, _thr, stack_off, stack_size,
             *_rest) = src.unpack("<16I", t, "TRIAGE_DUMP32")
            top, dp_addr, dp_off, dp_size, _dd_off, _dd_size, blocks_off, nblocks = src.unpack(
                "<8I", t + 0x48, "TRIAGE_DUMP32.TopOfStack/DataPage/DataBlocks")
            block = struct.Struct("<III")
        if nblocks > MAX_TRIAGE_BLOCKS:
            raise src.error(t + (0x7C if lay.is64 else 0x64), "TRIAGE_DUMP.DataBlocksCount",
                            f"absurd count {nblocks}")
        runs: list[tuple[int, int, int]] = []
        where: list[int] = []
        if stack_size and stack_off and top >= stack_size:
            runs.append((top - stack_size, stack_size, stack_off))
            where.append(t + 0x28)
        if dp_size and dp_off:
            runs.append((dp_addr, dp_size, dp_off))
            where.append(t + 0x60)
        for i in range(nblocks):
            at = blocks_off + i * block.size
            addr, off, size = src.unpack(block, at, f"TRIAGE_DATA_BLOCK[{i}]")
            runs.append((addr, size, off))
            where.append(at)
        self.runs = RunMap(src, _dedupe(runs), "TRIAGE_DATA_BLOCK", None)
        self._mem = _RunView(src, self.runs)

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        return self._mem._read_batch(addrs, lengths, out)

    def ranges(self) -> list[tuple[int, int]]:
        return self.runs.ranges()


def _dedupe(runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Triage dumps may save one range twice (a data block inside the data page): keep the first."""
    out: list[tuple[int, int, int]] = []
    for s, n, fo in sorted(runs):
        if out and s < out[-1][0] + out[-1][1]:
            ps, pn, _ = out[-1]
            over = ps + pn - s
            if over >= n:
                continue
            s, n, fo = s + over, n - over, fo + over
        out.append((s, n, fo))
    return out


class _RunView(RunMappedMemory):
    def __init__(self, src: FileSource, runs: RunMap) -> None:
        super().__init__(src)
        self._set_runs(runs)


def open_crashdump(args: dict[str, Any], _input: Any = None) -> CrashDump:
    return CrashDump(args["target"])


PLUGIN = PluginSpec("connector", "crashdump", "Windows crash dump (PAGEDUMP/PAGEDU64: full, bitmap, triage)",
                    open_crashdump, args=file_plugin_args())
