"""Windows kernel crash dumps (``PAGEDUMP`` 32-bit, ``PAGEDU64`` 64-bit).

Layout (``DUMP_HEADER32/64`` as in volatility3's crash/crash64 symbol tables and the WDK's dump
headers): signature "PAGE", ValidDump "DUMP"/"DU64", then DirectoryTableBase, PfnDataBase,
PsLoadedModuleList, PsActiveProcessHead, MachineImageType, NumberProcessors, BugCheckCode and its
four parameters, KdDebuggerDataBlock, the PHYSICAL_MEMORY_DESCRIPTOR (runs of pages) and DumpType
(0xF88 / 0xF98). The header is one page (32-bit) or two (64-bit); then:

- DumpType 1 (full): the pages of each run, in run order;
- DumpType 2/5/6 with a summary header "SDMP"/"FDMP" after the dump header (HeaderSize = file offset
  of the first page, BitmapSize = bits, bitmap at +0x38): the pages whose bit is set, in pfn order;
- DumpType 4 (triage / kernel mini dump): no physical memory (reads of it say so). The TRIAGE_DUMP
  header follows the dump header; :attr:`CrashDump.triage` (:class:`TriageDump`) holds its fields,
  the driver list (DUMP_DRIVER_ENTRY + string pool), the copied process/thread/PRCB blocks, and the
  saved *virtual* ranges (data blocks, data page, KDBG copy, call stack) as :attr:`CrashDump.virtual`,
  addressed in the header's DTB's address space. Layout as the WDK's ntiodump.h/triage.h and the
  readers of rizin and Ghidra take it.

Header facts become hints (dtb, PsActiveProcessHead, PsLoadedModuleList, KdDebuggerDataBlock,
machine, nt_build, bugcheck).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, ReadFailure
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
        self.triage: TriageDump | None = None
        if dump_type == DUMP_FULL:
            self._full(src, lay)
        elif dump_type in (DUMP_SUMMARY, DUMP_BITMAP_FULL, DUMP_BITMAP_KERNEL):
            self._bitmap(src, lay)
        elif dump_type == DUMP_TRIAGE:
            self._set_runs(RunMap(src, [], "triage"))
            self.triage = TriageDump(src, lay, ptr(lay.kddbg, "KdDebuggerDataBlock"))
            self.virtual = self.triage.memory
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
        if self.triage is not None:
            self.format_info["saved_virtual_ranges"] = len(self.triage.runs)
            self.format_info["triage_drivers"] = len(self.triage.drivers)
            self.format_info["note"] = self.no_physical_memory()

    def no_physical_memory(self) -> str:
        """What a triage dump is, for errors of anything that needs physical memory."""
        n = len(self.triage.runs) if self.triage is not None else 0
        return f"this is a triage dump: it holds no physical memory, only {n} saved block{'s' * (n != 1)} of virtual memory"

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        if self.triage is None:
            return super()._read_batch(addrs, lengths, out)
        out[:] = 0
        why = self.no_physical_memory()
        return [ReadFailure(i, int(a), int(n), why)
                for i, (a, n) in enumerate(zip(addrs.tolist(), lengths.tolist(), strict=True)) if n]

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


TRIAGE_VALID = b"TRGD"
"""TRIAGE_DUMP_VALID ('DGRT' as a little-endian ULONG) at ValidOffset: the writer finished the dump."""
MAX_TRIAGE_DRIVERS = 1 << 14
MAX_DRIVER_NAME = 1024
"""Characters of one DUMP_STRING (a driver's file name)."""
MAX_TRIAGE_BLOCK = 0x4000
"""Bytes of a copied kernel structure (EPROCESS, ETHREAD, KPRCB ...) handed out: the format stores no size."""
TRIAGE_FIELDS = ("ServicePackBuild", "SizeOfDump", "ValidOffset", "ContextOffset", "ExceptionOffset", "MmOffset",
                 "UnloadedDriversOffset", "PrcbOffset", "ProcessOffset", "ThreadOffset", "CallStackOffset",
                 "SizeOfCallStack", "DriverListOffset", "DriverCount", "StringPoolOffset", "StringPoolSize",
                 "BrokenDriverOffset", "TriageOptions")
"""The ULONGs that open TRIAGE_DUMP32/64, in order."""


@dataclass
class TriageDriver:
    """One DUMP_DRIVER_ENTRY: the driver's file name (from the string pool) and its KLDR_DATA_TABLE_ENTRY."""

    name: str
    base: int
    size: int
    timestamp: int = 0
    checksum: int = 0
    entry_point: int = 0


class DriverLayout:
    """DUMP_DRIVER_ENTRY32/64: DriverNameOffset, then a KLDR_DATA_TABLE_ENTRY (the layout the dump
    format froze: DllBase, EntryPoint, SizeOfImage, CheckSum, TimeDateStamp at fixed offsets)."""

    def __init__(self, is64: bool) -> None:
        if is64:  # name offset + 4 bytes alignment; the entry starts at +8
            self.size, self.dll_base, self.entry_point, self.size_of_image = 0x90, 0x38, 0x40, 0x48
            self.checksum, self.timestamp, self.ptr = 0x80, 0x88, "<Q"
        else:  # the entry starts at +4
            self.size, self.dll_base, self.entry_point, self.size_of_image = 0x4C, 0x1C, 0x20, 0x24
            self.checksum, self.timestamp, self.ptr = 0x44, 0x48, "<I"


class TriageDump:
    """The TRIAGE_DUMP header after a triage dump's DUMP_HEADER, and what it points at: the driver
    list (names from the string pool), the copies of the faulting process, thread and processor
    block, the call stack and the saved data blocks (virtual address, bytes).

    ``fields`` holds the header's values by their WDK names; ``block(name)`` the bytes a ``*Offset``
    field points at (up to the next thing in the file, at most :data:`MAX_TRIAGE_BLOCK`)."""

    def __init__(self, src: FileSource, lay: _Layout, kd_debugger_data_block: int) -> None:
        self.source = src
        t = self.at = lay.header_size
        self.is64 = lay.is64
        name = "TRIAGE_DUMP64" if lay.is64 else "TRIAGE_DUMP32"
        self.fields: dict[str, int] = dict(zip(TRIAGE_FIELDS, src.unpack("<18I", t, name), strict=True))
        self._where = {f: t + 4 * i for i, f in enumerate(TRIAGE_FIELDS)}
        names: tuple[str, ...]
        sizes: tuple[int, ...]
        if lay.is64:
            (self.fields["TopOfStack"],) = src.unpack("<Q", t + 0x48, f"{name}.TopOfStack")
            names, fmt, at = ("DataPageAddress", "DataPageOffset", "DataPageSize", "DebuggerDataOffset",
                              "DebuggerDataSize", "DataBlocksOffset", "DataBlocksCount"), "<QIIIIII", t + 0x60
            sizes = (8, 4, 4, 4, 4, 4, 4)
            self.block_struct = struct.Struct("<QII")
        else:
            names, fmt, at = ("TopOfStack", "DataPageAddress", "DataPageOffset", "DataPageSize",
                              "DebuggerDataOffset", "DebuggerDataSize", "DataBlocksOffset", "DataBlocksCount"), \
                "<8I", t + 0x48
            sizes = (4,) * 8
            self.block_struct = struct.Struct("<III")
        self.fields.update(zip(names, src.unpack(fmt, at, f"{name}.{names[0]}..DataBlocksCount"), strict=True))
        for f, n in zip(names, sizes, strict=True):
            self._where[f] = at
            at += n
        self.name = name
        self._check_size()
        self.drivers = self._drivers(DriverLayout(lay.is64))
        runs, where = _dedupe(*self._saved_runs(kd_debugger_data_block))
        self.runs = RunMap(src, runs, "TRIAGE_DATA_BLOCK", where)
        self.memory = TriageMemory(src, self.runs, self.pointer_size)

    @property
    def pointer_size(self) -> int:
        return 8 if self.is64 else 4

    def field_error(self, fld: str, message: str) -> FormatError:
        return self.source.error(self._where.get(fld, self.at), f"{self.name}.{fld}", message)

    def _check_size(self) -> None:
        size = self.fields["SizeOfDump"]
        if size and size > self.source.size:
            raise self.field_error("SizeOfDump", f"says the dump holds {size:#x} bytes but the file has "
                                   f"{self.source.size:#x} (truncated)")
        valid = self.fields["ValidOffset"]
        if valid:
            got = self.source.read(valid, 4, f"{self.name}.ValidOffset (TRIAGE_DUMP_VALID)") \
                if valid + 4 <= self.source.size else None
            if got not in (TRIAGE_VALID, TRIAGE_VALID[::-1]):  # either byte order, as other readers accept
                raise self.field_error("ValidOffset", f"points at {valid:#x}, which holds {got!r} instead of "
                                       f"TRIAGE_DUMP_VALID {TRIAGE_VALID!r} (unfinished or damaged dump)")

    def _drivers(self, dl: DriverLayout) -> list[TriageDriver]:
        n, at = self.fields["DriverCount"], self.fields["DriverListOffset"]
        if n > MAX_TRIAGE_DRIVERS:
            raise self.field_error("DriverCount", f"absurd count {n} (at most {MAX_TRIAGE_DRIVERS})")
        if not n:
            return []
        src = self.source
        if at + n * dl.size > src.size:
            raise self.field_error("DriverListOffset", f"{n} DUMP_DRIVER_ENTRY records at {at:#x} need bytes up to "
                                   f"{at + n * dl.size:#x} but the file ends at {src.size:#x}")
        pool, pool_size = self.fields["StringPoolOffset"], self.fields["StringPoolSize"]
        if pool_size and pool + pool_size > src.size:
            raise self.field_error("StringPoolSize", f"string pool {pool:#x}+{pool_size:#x} ends past the file "
                                   f"({src.size:#x})")
        out: list[TriageDriver] = []
        for i in range(n):
            e = at + i * dl.size
            what = f"DUMP_DRIVER_ENTRY[{i}]"
            (name_off,) = src.unpack("<I", e, f"{what}.DriverNameOffset")
            (base,) = src.unpack(dl.ptr, e + dl.dll_base, f"{what}.LdrEntry.DllBase")
            (entry,) = src.unpack(dl.ptr, e + dl.entry_point, f"{what}.LdrEntry.EntryPoint")
            (size,) = src.unpack("<I", e + dl.size_of_image, f"{what}.LdrEntry.SizeOfImage")
            (checksum,) = src.unpack("<I", e + dl.checksum, f"{what}.LdrEntry.CheckSum")
            (stamp,) = src.unpack("<I", e + dl.timestamp, f"{what}.LdrEntry.TimeDateStamp")
            if pool_size and not pool <= name_off < pool + pool_size:
                raise src.error(e, f"{what}.DriverNameOffset", f"{name_off:#x} is outside the string pool "
                                f"{pool:#x}+{pool_size:#x}")
            (chars,) = src.unpack("<I", name_off, f"DUMP_STRING[{i}].Length")
            if chars > MAX_DRIVER_NAME:
                raise src.error(name_off, f"DUMP_STRING[{i}].Length", f"absurd length {chars} characters "
                                f"(at most {MAX_DRIVER_NAME})")
            raw = src.read(name_off + 4, 2 * chars, f"DUMP_STRING[{i}].Buffer")
            out.append(TriageDriver(raw.decode("utf-16-le", "replace"), int(base), int(size), int(stamp),
                                    int(checksum), int(entry)))
        return out

    def _saved_runs(self, kddbg: int) -> tuple[list[tuple[int, int, int]], list[int]]:
        f = self.fields
        runs: list[tuple[int, int, int]] = []
        where: list[int] = []
        top, stack_off, stack_size = f["TopOfStack"], f["CallStackOffset"], f["SizeOfCallStack"]
        if stack_size and stack_off:
            if top < stack_size:
                raise self.field_error("TopOfStack", f"{top:#x} is below the {stack_size:#x}-byte call stack")
            runs.append((top - stack_size, stack_size, stack_off))
            where.append(self._where["CallStackOffset"])
        if f["DataPageSize"] and f["DataPageOffset"]:
            runs.append((f["DataPageAddress"], f["DataPageSize"], f["DataPageOffset"]))
            where.append(self._where["DataPageAddress"])
        if f["DebuggerDataSize"] and f["DebuggerDataOffset"] and kddbg:
            runs.append((kddbg, f["DebuggerDataSize"], f["DebuggerDataOffset"]))
            where.append(self._where["DebuggerDataOffset"])
        nblocks, at = f["DataBlocksCount"], f["DataBlocksOffset"]
        if nblocks > MAX_TRIAGE_BLOCKS:
            raise self.field_error("DataBlocksCount", f"absurd count {nblocks} (at most {MAX_TRIAGE_BLOCKS})")
        if nblocks and at + nblocks * self.block_struct.size > self.source.size:
            raise self.field_error("DataBlocksOffset", f"{nblocks} TRIAGE_DATA_BLOCK records at {at:#x} end past "
                                   f"the file ({self.source.size:#x})")
        self.data_blocks: list[tuple[int, int]] = []
        for i in range(nblocks):
            e = at + i * self.block_struct.size
            addr, off, size = self.source.unpack(self.block_struct, e, f"TRIAGE_DATA_BLOCK[{i}]")
            runs.append((addr, size, off))
            where.append(e)
            self.data_blocks.append((int(addr), int(size)))
        return runs, where

    def block(self, fld: str) -> bytes:
        """The bytes ``fields[fld]`` (a ``*Offset``) points at, up to the next thing the header places
        in the file; empty when the field is 0."""
        off = self.fields.get(fld, 0)
        if not off:
            return b""
        if off >= self.source.size:
            raise self.field_error(fld, f"{off:#x} is past the end of the file ({self.source.size:#x})")
        later = [v for k, v in self.fields.items() if k.endswith("Offset") and v > off]
        later += [fo for fo in self.runs.file_offsets.tolist() if fo > off]
        end = min([self.source.size, off + MAX_TRIAGE_BLOCK, *later])
        return self.source.read(off, end - off, f"{self.name}.{fld}")

    def info(self) -> dict[str, Any]:
        return {"drivers": len(self.drivers), "saved_blocks": len(self.runs),
                "saved_bytes": int(sum(self.runs.lengths.tolist())) if len(self.runs) else 0}


class TriageMemory(MemoryView):
    """The virtual memory a triage (kernel mini) dump saved: data blocks, the data page, the debugger
    data block and the call stack. Addresses are virtual (the header's DirectoryTableBase names the
    address space); everything else reads as missing."""

    def __init__(self, src: FileSource, runs: RunMap, pointer_size: int) -> None:
        self.source = src
        self.pointer_size = pointer_size
        self.runs = runs
        self._mem = _RunView(src, runs)

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        n = len(self.runs)
        why = f"not among the triage dump's {n} saved block{'s' * (n != 1)}"
        return [ReadFailure(f.index, f.address, f.length, why) for f in self._mem._read_batch(addrs, lengths, out)]

    def ranges(self) -> list[tuple[int, int]]:
        return self.runs.ranges()


def _dedupe(runs: list[tuple[int, int, int]], where: list[int]) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Triage dumps may save one range twice (a data block inside the data page): keep the first."""
    out: list[tuple[int, int, int]] = []
    at: list[int] = []
    for (s, n, fo), w in sorted(zip(runs, where, strict=True)):
        if not n:
            continue
        if out and s < out[-1][0] + out[-1][1]:
            ps, pn, _ = out[-1]
            over = ps + pn - s
            if over >= n:
                continue
            s, n, fo = s + over, n - over, fo + over
        out.append((s, n, fo))
        at.append(w)
    return out, at


class _RunView(RunMappedMemory):
    def __init__(self, src: FileSource, runs: RunMap) -> None:
        super().__init__(src)
        self._set_runs(runs)


def open_crashdump(args: dict[str, Any], _input: Any = None) -> CrashDump:
    return CrashDump(args["target"])


PLUGIN = PluginSpec("connector", "crashdump", "Windows crash dump (PAGEDUMP/PAGEDU64: full, bitmap, triage)",
                    open_crashdump, args=file_plugin_args())
