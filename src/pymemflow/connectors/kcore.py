"""``kcore`` connector: the local host's physical memory through ``/proc/kcore``.

/proc/kcore is an ELF core of the running kernel's address space. Each ``PT_LOAD`` segment has the
kernel virtual address (``p_vaddr``) and, for RAM in the direct map, the physical address
(``p_paddr``; the kernel writes -1 for vmalloc/module/vmemmap segments that have no single physical
address). We keep the segments with a physical address, drop overlaps (the kernel-text segment
duplicates a piece of the direct map), and read with ``pread`` at the file offset.

Limits (see docs/live.md): needs root (CAP_SYS_RAWIO) and a kernel built with CONFIG_PROC_KCORE and
not in lockdown mode; only RAM the kernel maps in its direct map is visible (no MMIO, no memory
hidden from the kernel); pages being written by the running system are read without any pause.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any

import numpy as np

from ..errors import FormatError, PluginError, ReadFailure
from ..live.elf import PT_LOAD, ElfFile
from ..live.rangemap import HostRange, HostRangeMap
from ..mem.phys import PhysicalMemory, PhysicalMetadata
from ..mem.view import I64Array, U8Array, U64Array
from ..types import ArgSpec, PluginSpec

PT_NOTE = 4
NO_PADDR = (1 << 64) - 1
NO_PADDR32 = (1 << 32) - 1



class KcoreConnector(PhysicalMemory):
    """Physical memory from an ELF core whose program headers carry physical addresses
    (/proc/kcore, and likewise a QEMU ``dump-guest-memory`` ELF)."""

    name = "kcore"

    def __init__(self, path: str = "/proc/kcore") -> None:
        super().__init__()
        self.path = path
        try:
            self.elf = ElfFile(path)
        except FileNotFoundError:
            raise PluginError(f"kcore: {path} does not exist (kernel built without CONFIG_PROC_KCORE?)") from None
        except PermissionError as e:
            raise PluginError(f"kcore: cannot open {path}: {os.strerror(e.errno or errno.EACCES)} -- needs root "
                              "with CAP_SYS_RAWIO, and a kernel not in lockdown (integrity/confidentiality) "
                              "mode") from None
        ranges: list[HostRange] = []
        taken: list[tuple[int, int]] = []
        self.segments = self.elf.program_headers()
        for ph in sorted((p for p in self.segments if p.type == PT_LOAD and p.filesz),
                         key=lambda p: (p.paddr, -p.filesz)):
            if ph.paddr in (NO_PADDR, NO_PADDR32):
                continue
            start, end = ph.paddr, ph.paddr + ph.filesz
            if any(a < end and start < b for a, b in taken):
                continue  # kernel text etc. alias part of the direct map
            taken.append((start, end))
            ranges.append(HostRange(start, ph.filesz, ph.offset))
        if not ranges:
            self.elf.close()
            raise FormatError(path, self.elf.phoff, "p_paddr", "no PT_LOAD segment has a physical address")
        self.map = HostRangeMap(ranges)
        self.metadata = PhysicalMetadata(max_address=self.map.max_address, real_size=self.map.real_size,
                                         readonly=True, ideal_batch_size=256)
        self.hints["arch"] = {"x64": "x64", "x86": "x86", "aarch64": "aarch64"}.get(self.elf.arch, self.elf.arch)
        self.hints["live"] = path.startswith("/proc/")
        if self.hints["live"]:
            self.hints["cache_time"] = 0.1  # the running host changes under us: short cache validity
        vmci = self._vmcoreinfo()
        if vmci:
            self.hints["vmcoreinfo"] = vmci

    def _vmcoreinfo(self) -> str | None:
        """The VMCOREINFO note (kcore has one since Linux 4.19; QEMU dumps with -device vmcoreinfo too)."""
        e = self.elf.e
        for ph in self.segments:
            if ph.type != PT_NOTE or not 0 < ph.filesz <= 1 << 20:
                continue
            try:
                data = self.elf.pread(ph.offset, ph.filesz, "PT_NOTE")
            except (FormatError, OSError):
                continue
            pos = 0
            while pos + 12 <= len(data):
                namesz, descsz, _ = struct.unpack_from(e + "III", data, pos)
                name_end = pos + 12 + namesz
                desc = pos + 12 + ((namesz + 3) & ~3)
                if desc + descsz > len(data):
                    break
                if data[pos + 12 : name_end].rstrip(b"\0") == b"VMCOREINFO":
                    return data[desc : desc + descsz].decode("utf-8", errors="replace")
                pos = desc + ((descsz + 3) & ~3)
        return None

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        offsets = np.zeros(lengths.shape[0], dtype=np.uint64)
        if lengths.shape[0] > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        plan = self.map.split(addrs, lengths, offsets)
        fails = self.map.hole_failures(plan, out) if plan.holes else []
        fd = self.elf.fd
        mv = memoryview(out)  # type: ignore[arg-type]
        for k in range(plan.host.shape[0]):
            o, n, fo = int(plan.out_offset[k]), int(plan.length[k]), int(plan.host[k])
            try:
                got = os.preadv(fd, [mv[o : o + n]], fo)
            except OSError as e:
                got, reason = 0, os.strerror(e.errno or errno.EIO)
            else:
                reason = "short read"
            if got < n:
                out[o + got : o + n] = 0
                i = int(plan.index[k])
                gpa = int(addrs[i]) + (o - int(offsets[i])) + got
                fails.append(ReadFailure(i, gpa, n - got, f"{self.path}: {reason}"))
        return fails

    def info(self) -> dict[str, Any]:
        d = super().info()
        d["path"] = self.path
        d["ranges"] = [{"base": r.base, "size": r.size} for r in self.map.ranges]
        if "vmcoreinfo" in d["hints"]:
            d["hints"]["vmcoreinfo"] = f"<{len(d['hints']['vmcoreinfo'])} bytes>"
        return d

    def close(self) -> None:
        self.elf.close()


def _factory(args: dict[str, Any], input: Any) -> KcoreConnector:
    return KcoreConnector(args.get("target") or "/proc/kcore")


PLUGIN = PluginSpec(
    kind="connector",
    name="kcore",
    description="Physical memory of this Linux host through /proc/kcore (root, CAP_SYS_RAWIO)",
    factory=_factory,
    args=[ArgSpec("target", "path of the kcore file", default="/proc/kcore")],
)
