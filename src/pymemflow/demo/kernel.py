"""Kernel space: page-table roots, pools, ntoskrnl image and globals, KUSER_SHARED_DATA, drivers,
session space with the keyboard state, and the x64 processor start block."""

from __future__ import annotations

import struct

from .base import BuilderBase
from .image import Module
from .memory import LARGE, PAGE, AddressSpace, Bump
from .pe import DATA, RDATA, TEXT, PeSpec, Section, build_pe
from .profiles import FILETIME_2021, KERNEL_EXPORTS, MM_PROTECT_TO_VALUE, OBJECT_TYPES, X86_SYMBOLS
from .structs import StructBuf, utf16


class KernelMixin(BuilderBase):
    def layout(self) -> None:
        if self.x64:
            self.kbase = 0xFFFFF80000000000 + (self.rand(0x100, 0x3F0) << 21)
            self.pool_va = 0xFFFFCC0000000000 + (self.rand(0x10, 0x400) << 21)
            self.ppool_va = 0xFFFFB00000000000 + (self.rand(0x10, 0x400) << 21)
            self.session_va = 0xFFFFF96000000000 + (self.rand(0, 0x40) << 21)
            self.kuser_k = 0xFFFFF78000000000
            used = {(v >> 39) & 511 for v in (self.kbase, self.pool_va, self.ppool_va, self.session_va, self.kuser_k)}
            choices = [i for i in range(0x100, 0x1FF) if i not in used]
            self.self_ref = choices[self.rand(0, len(choices))]
            self.symbols_rva = {k: self.o[k] for k in ("PsActiveProcessHead", "PsLoadedModuleList",
                                                        "PsInitialSystemProcess", "NtBuildNumber", "KdVersionBlock",
                                                        "MmPhysicalMemoryBlock", "KiSystemStartup",
                                                        "KeNumberProcessors")}
            self.ksize = 0x1046000
        else:
            # x86 loads the kernel at physical = virtual - 0x80000000 (volatility's "fixed mapping")
            kphys = 0x02800000 if self.size >= 96 << 20 else 0x00C00000
            self.kbase = 0x80000000 + kphys + (self.rand(0, 0x100) << 12)
            self.pool_va = 0x84000000 + (self.rand(0, 0x20) << 21)
            self.ppool_va = 0x8A000000 + (self.rand(0, 0x100) << 12)
            self.session_va = 0x98000000
            self.kuser_k = 0xFFDF0000
            self.self_ref = 3
            self.symbols_rva = dict(X86_SYMBOLS)
            self.ksize = 0x410000
            self.alloc.reserve(self.kbase - 0x80000000, self.kbase - 0x80000000 + self.ksize)
        self.facts["kernel_base"] = self.kbase
        self.facts["kernel_size"] = self.ksize
        self.facts["self_ref_index"] = self.self_ref
        self.facts["symbols"] = {k: self.kbase + v for k, v in self.symbols_rva.items()}
        self.facts["symbol_rvas"] = dict(self.symbols_rva)

    def build_kernel_space(self) -> None:
        k = self.kas
        if self.x64:
            self.phys.put_u64(k.root + self.self_ref * 8, k.root | 0x63)  # P|RW|A|D, self map
        elif self.p.arch == "x86":
            self.phys.put_entry(k.root + 0x300 * 4, k.root | 0x63, 4)  # PDE 0x300 maps the PD at 0xC0000000
        else:
            # PAE: the PDPT page is followed by its four page directories (as Windows 7 lays them out);
            # PD[3] maps the four directories at 0xC0000000 (PDE_BASE 0xC0600000 is PD[3] itself)
            for i in range(4):
                pd = k.root + PAGE * (i + 1)
                self.phys.page(pd)
                self.phys.put_u64(k.root + i * 8, pd | 1)
        # nonpaged pool: one 2 MiB large page (facts record it)
        big = self.alloc.large()
        k.map_large(self.pool_va, big)
        if self.p.arch != "x86":  # x86 without PAE: the block is mapped with 4 KiB pages (large = 4 MiB)
            self.facts["large_pages"].append({"va": self.pool_va, "pa": big, "size": LARGE})
        self.pool = Bump(k, self.pool_va, self.pool_va + LARGE, user=False, premapped=True)
        self.ppool = Bump(k, self.ppool_va, self.ppool_va + (64 << 20), user=False)
        self.ppool.alloc(8)
        if not self.x64:
            self.pae_self_map(k)

    def pae_self_map(self, a: AddressSpace) -> None:
        """PAE: the page directory of 0xC0000000 maps the four page directories (PTE_BASE 0xC0000000).
        x86 without PAE: a process's directory gets the kernel half's entries made since it was created."""
        if self.p.arch == "x86":
            if a is not self.kas:
                for i in range(0x200, 0x400):
                    e = self.phys.entry(self.kas.root + i * 4, 4)
                    if i != 0x300 and e:
                        self.phys.put_entry(a.root + i * 4, e, 4)
            return
        pd3 = self.phys.u64(a.root + 3 * 8) & 0xFFFFFFFFF000
        for i in range(4):
            e = self.phys.u64(a.root + i * 8)
            if e & 1:
                self.phys.put_u64(pd3 + i * 8, (e & 0xFFFFFFFFF000) | 0x63)

    def build_kuser(self) -> None:
        f = self.kas.alloc_map(self.kuser_k, 1, write=True, nx=True)[0]
        self.kuser_pa = f
        b = StructBuf(self.o, "_KUSER_SHARED_DATA")
        b.set("NtMajorVersion", self.p.major, 4)
        b.set("NtMinorVersion", self.p.minor, 4)
        if "_KUSER_SHARED_DATA.NtBuildNumber" in self.o:
            b.set("NtBuildNumber", self.p.build, 4)
        b.set("NtProductType", 1, 4)
        b.set("ProductTypeIsValid", 1, 1)
        b.set("ImageNumberLow", 0x8664 if self.x64 else 0x14C, 2)
        b.set("ImageNumberHigh", 0x8664 if self.x64 else 0x14C, 2)
        b.set_bytes("NtSystemRoot", utf16("C:\\Windows"))
        b.set("NumberOfPhysicalPages", sum(e - s for s, e in self.runs) // PAGE, 4)
        b.set("SystemTime", FILETIME_2021 + 36_000_000_000, 8)
        b.set("ActiveConsoleId", 1, 4)
        self.phys.write(f, bytes(b.buf))
        self.facts["kuser_pa"] = f

    def build_kernel_image(self) -> None:
        sr = self.symbols_rva
        text_end = (sr["KiSystemStartup"] + 0x100000) & ~0xFFFF
        data_start = (min(sr[k] for k in sr if k != "KiSystemStartup") - 0x10000) & ~0xFFFF
        data_start = max(data_start, text_end)
        sections = [Section(".rdata", 0x1000, 0xF000, RDATA), Section(".text", 0x10000, text_end - 0x10000, TEXT),
                    Section(".data", data_start, self.ksize - data_start, DATA)]
        exports = {n: sr[n] for n in KERNEL_EXPORTS}
        exports.update({"KeBugCheckEx": 0x12340, "ExAllocatePoolWithTag": 0x15670, "IoCreateDevice": 0x19A10,
                        "ObReferenceObjectByHandle": 0x1C2B0, "ZwClose": 0x1E8F0})
        guid = self.p.guid_age[:32]
        age = int(self.p.guid_age[32:], 16)
        spec = PeSpec("ntoskrnl.exe", "x64" if self.x64 else "x86", self.kbase, self.ksize, sections,
                      entry_rva=sr["KiSystemStartup"], exports=exports, pdb_name=self.p.pdb_name, pdb_guid=guid,
                      pdb_age=age, subsystem=1, dll=False, meta_rva=0x1000)
        blobs = build_pe(spec)
        # code bytes at the start routine and the exported functions (int3 padding + ret)
        for rva in [sr["KiSystemStartup"], 0x12340, 0x15670, 0x19A10, 0x1C2B0, 0x1E8F0]:
            blobs[rva] = b"\x48\x83\xec\x28\xcc\xc3" if self.x64 else b"\x8b\xff\x55\x8b\xec\xc3"
        ver = StructBuf(self.o, "_DBGKD_GET_VERSION64", 40)
        ver.set("MajorVersion", 0xF, 2)
        ver.set("MinorVersion", self.p.build, 2)
        ver.set("MachineType", 0x8664 if self.x64 else 0x14C, 2)
        ver.set("KernBase", self.kbase, 8)
        ver.set("PsLoadedModuleList", self.sym("PsLoadedModuleList"), 8)
        blobs[sr["KdVersionBlock"]] = bytes(ver.buf)
        blobs[sr["NtBuildNumber"]] = struct.pack("<I", 0xF0000000 | self.p.build)
        blobs[sr["KeNumberProcessors"]] = struct.pack("<I", 2)
        tit = sr.get("ObTypeIndexTable", self.o.get("ObTypeIndexTable"))
        if tit is not None:
            blobs[tit] = self.object_type_table()
        # ObHeaderCookie (Windows 10): object headers store TypeIndex ^ cookie ^ address byte
        self.ob_cookie = None
        if "ObHeaderCookie" in self.o:
            self.ob_cookie = self.rand(1, 256)
            blobs[self.o["ObHeaderCookie"]] = bytes([self.ob_cookie])
            self.facts["ob_header_cookie"] = self.ob_cookie
        mp = sr.get("MmProtectToValue", self.o.get("MmProtectToValue"))
        if mp is not None:  # read by tools to print VAD protections
            blobs[mp] = struct.pack("<32i", *MM_PROTECT_TO_VALUE)
        self.map_image(self.kas, self.kbase, blobs,
                       [sr["PsActiveProcessHead"], sr["PsLoadedModuleList"], sr["PsInitialSystemProcess"],
                        sr["MmPhysicalMemoryBlock"]], user=False,
                       fixed_phys=None if self.x64 else self.kbase - 0x80000000)
        self.nt = Module("ntoskrnl.exe", "\\SystemRoot\\system32\\ntoskrnl.exe", self.kbase, self.ksize,
                         self.p.arch, {n: self.kbase + r for n, r in exports.items()})
        # MmPhysicalMemoryBlock -> _PHYSICAL_MEMORY_DESCRIPTOR
        ps = self.ps
        d = StructBuf(self.o, "_PHYSICAL_MEMORY_DESCRIPTOR", self.o["_PHYSICAL_MEMORY_DESCRIPTOR.Run"] + 2 * ps * len(self.runs))
        d.set("NumberOfRuns", len(self.runs), 4)
        d.set("NumberOfPages", sum(e - s for s, e in self.runs) // PAGE)
        for i, (s, e) in enumerate(self.runs):
            d.set("Run", s // PAGE, "p", add=2 * ps * i)
            d.set("Run", (e - s) // PAGE, "p", add=2 * ps * i + ps)
        va = self.pool.put(bytes(d.buf))
        self.kas.write(self.sym("MmPhysicalMemoryBlock"), self.pack_ptr(va))

    def object_type_table(self) -> bytes:
        """ObTypeIndexTable contents: pointers to _OBJECT_TYPE objects (in the pool) named as Windows does."""
        ptrs = [0, 0xBAD0B0B0]
        for i, name in enumerate(OBJECT_TYPES, start=2):
            t = StructBuf(self.o, "_OBJECT_TYPE")
            self.unicode_string(t, "Name", name, self.ppool)
            t.set("Index", i, 1)
            ptrs.append(self.pool.put(bytes(t.buf), 16))
        ptrs.append(0)
        return b"".join(self.pack_ptr(p) for p in ptrs)

    def kernel_module_specs(self) -> list[tuple[str, str, int, dict[str, int]]]:
        mods = [("hal.dll", 0x103000, {"HalDispatchTable": 0x5000, "KeQueryPerformanceCounter": 0x2000}),
                ("kdcom.dll", 0xB000, {"KdD0Transition": 0x1100}),
                ("ACPI.sys", 0xE0000, {}), ("Ntfs.sys", 0x2F3000, {}), ("tcpip.sys", 0x2BD000, {}),
                ("disk.sys", 0x20000, {})]
        if self.x64:
            mods.append(("win32kbase.sys", 0x2A6000, {"gafAsyncKeyState": 0x26E340, "W32GetSessionState": 0x2000}))
        else:
            mods.append(("win32k.sys", 0x2F6000, {}))
        return [(n, f"\\SystemRoot\\system32\\drivers\\{n}" if n.endswith(".sys") and not n.startswith("win32k")
                 else f"\\SystemRoot\\system32\\{n}", s, e) for n, s, e in mods]

    def build_kernel_modules(self) -> None:
        self.kmods: list[Module] = [self.nt]
        next_base = self.kbase + ((self.ksize + 0x1FFFFF) & ~0x1FFFFF)
        for name, path, size, exports in self.kernel_module_specs():
            session = name.startswith("win32k")
            base = self.session_va if session else next_base
            if not session:
                next_base = (next_base + size + 0xFFFF) & ~0xFFFF
            spec = PeSpec(name, "x64" if self.x64 else "x86", base, size,
                          [Section(".rdata", 0x1000, 0x1000, RDATA), Section(".text", 0x2000, size - 0x2000, TEXT)],
                          entry_rva=0x2000, exports=exports, subsystem=1, dll=name.endswith(".dll"))
            blobs = build_pe(spec)
            if session:
                self.session_blobs = (base, blobs, list(exports.values()))
            else:
                self.map_image(self.kas, base, blobs, [], user=False)
            self.kmods.append(Module(name, path, base, size, self.p.arch, {n: base + r for n, r in exports.items()}))
        entries = []
        for m in self.kmods:
            # _KLDR_DATA_TABLE_ENTRY where the build has it (Windows 10+), else the loader's own entry
            kind = "_KLDR_DATA_TABLE_ENTRY" if self.o.size("_KLDR_DATA_TABLE_ENTRY") else "_LDR_DATA_TABLE_ENTRY"
            e = StructBuf(self.o, kind)
            e.set("DllBase", m.base)
            e.set("SizeOfImage", m.size, 4)
            e.set("EntryPoint", m.base + 0x2000)
            self.unicode_string(e, "FullDllName", m.path, self.ppool)
            self.unicode_string(e, "BaseDllName", m.name, self.ppool)
            va = self.pool.alloc(len(e.buf), 16)
            self.kas.write(va, bytes(e.buf))
            entries.append(va)  # InLoadOrderLinks is at 0 in both layouts
        self.write_list_links(self.kas, self.sym("PsLoadedModuleList"), entries)
        self.facts["kernel_modules"] = [{"name": m.name, "path": m.path, "base": m.base, "size": m.size,
                                         "ldr_entry": va} for m, va in zip(self.kmods, entries, strict=True)]

    def build_session_space(self, aspace: AddressSpace) -> None:
        """win32kbase.sys lives in session space: mapped only in processes of an interactive session."""
        if not self.x64:
            return
        idx = (self.session_va >> 39) & 511
        if idx in self.session_entries:
            self.phys.write(aspace.root + idx * 8, self.session_entries[idx])
            base, _, _ = self.session_blobs
            for va_page, pa in self.session_vmap.items():
                aspace.vmap[va_page] = pa
            return
        base, blobs, extra = self.session_blobs
        self.map_image(aspace, base, blobs, extra, user=False)
        # keyboard state: gafAsyncKeyState (2 bits per virtual key; "down" is the even bit)
        pressed = sorted({0x10, 0x41 + self.rand(0, 26), 0x30 + self.rand(0, 10), 0x5B})
        state = bytearray(64)
        for vk in pressed:
            state[vk // 4] |= 1 << ((vk % 4) * 2)
        ks = base + 0x26E340
        aspace.write(ks, bytes(state))
        self.facts["keyboard"] = {"module": "win32kbase.sys", "export": "gafAsyncKeyState", "address": ks,
                                  "pressed": pressed, "session_pids": []}
        self.session_entries[idx] = self.phys.read(aspace.root + idx * 8, 8)
        self.session_vmap = {k: v for k, v in aspace.vmap.items() if (k << 12) >> 39 & 511 == idx}

    def build_low_stub(self) -> None:
        """x64: the processor start block in the low 1 MiB (jmp + completion flag, LmTarget, CR3)."""
        if not self.x64:
            return
        pa = 0x1000 * self.rand(1, 0x10)
        blk = bytearray(0x100)
        struct.pack_into("<Q", blk, 0, 0x00000001000600E9)
        struct.pack_into("<Q", blk, 0x70, self.sym("KiSystemStartup"))
        struct.pack_into("<Q", blk, 0xA0, self.dtb_pa)
        self.phys.write(pa, bytes(blk))
        self.facts["low_stub_pa"] = pa
