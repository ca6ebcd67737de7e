"""The synthetic Windows machine: kernel, processes, modules, VADs, keyboard -- at real offsets.

Built deterministically from a seed. Everything an analysis tool reads is real data structures at
the offsets of the profile's kernel (x64: the 10.0.19041.804 ntkrnlmp ISF facts; x86-PAE: Windows 7
SP1 ntkrpamp facts), reached through real page tables from bare physical memory, as on a real box:
the low-1 MiB processor start block, a self-referencing top-level table, ntoskrnl with PE headers,
export table and CodeView record, KUSER_SHARED_DATA, PsActiveProcessHead / PsLoadedModuleList lists.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..offsets import Win32Offsets, resolve_offsets
from .memory import LARGE, NX, PAGE, US, AddressSpace, FrameAllocator, SparsePhys
from .pe import DATA, RDATA, TEXT, PeSpec, Section, build_pe
from .structs import StructBuf, bits_value


@dataclass(frozen=True)
class Profile:
    name: str
    arch: str
    guid_age: str
    pdb_name: str
    version: str
    build: int
    major: int
    minor: int
    default_size: int


PROFILES: dict[str, Profile] = {
    "win10-19041-x64": Profile("win10-19041-x64", "x64", "5278AFF86C341677D7D7835C85B7B8441", "ntkrnlmp.pdb",
                               "10.0.19041.804", 19041, 10, 0, 1 << 30),
    "win7-7601-x86pae": Profile("win7-7601-x86pae", "x86pae", "684DA42A30CC450F81C535B4D18944B12",
                                "ntkrpamp.pdb", "6.1.7601", 7601, 6, 1, 512 << 20),
}
ALIASES = {"win10": "win10-19041-x64", "win7": "win7-7601-x86pae"}

# Symbol RVAs of our x86 7601 kernel: no PDB/ISF for ntkrpamp 7601 is carried here, so this
# layout is synthetic (recorded in facts["symbols"]); the exported ones are found through exports.
X86_SYMBOLS = {"PsActiveProcessHead": 0x31F0C8, "PsLoadedModuleList": 0x31F850, "PsInitialSystemProcess": 0x357B38,
               "NtBuildNumber": 0x300D7C, "KdVersionBlock": 0x2FDA18, "MmPhysicalMemoryBlock": 0x31A6E8,
               "KiSystemStartup": 0x0E0E40, "KeNumberProcessors": 0x357B40}
# MM_* protection index -> PAGE_* value (Windows ABI; 8 base values, then NOCACHE, GUARD, WRITECOMBINE)
_PAGE_BASE = (0x01, 0x02, 0x10, 0x20, 0x04, 0x08, 0x40, 0x80)
MM_PROTECT_TO_VALUE = [v if i % 8 == 0 else v | m for m, start in ((0, 0), (0x200, 8), (0x100, 16), (0x400, 24))
                       for i, v in zip(range(start, start + 8), _PAGE_BASE, strict=True)]
KERNEL_EXPORTS = ("PsInitialSystemProcess", "PsLoadedModuleList", "NtBuildNumber", "KeNumberProcessors")

STATUS_PENDING = 0x103
FILETIME_2021 = 132_600_000_000_000_000  # 2021-03-11 in 100 ns units since 1601

MM_READONLY, MM_EXECUTE_READ, MM_READWRITE, MM_EXECUTE_WRITECOPY = 1, 3, 4, 7
VAD_NONE, VAD_IMAGE = 0, 2


@dataclass
class SyntheticImage:
    """Sparse physical memory (4 KiB pages) + ground truth ``facts``."""

    size: int
    pages: dict[int, bytearray]
    facts: dict[str, Any]

    def array(self) -> np.ndarray:
        """The whole memory as a uint8 array (anonymous mmap: untouched pages cost nothing)."""
        import mmap

        mm = mmap.mmap(-1, self.size)
        self.fill(mm)
        return np.frombuffer(mm, dtype=np.uint8)

    def fill(self, buf: Any) -> None:
        """Copy the pages into a writable buffer of ``size`` bytes (mmap, bytearray, ...)."""
        mv = memoryview(buf)
        for pa, pg in self.pages.items():
            mv[pa : pa + PAGE] = pg

    def to_bytes(self) -> bytes:
        b = bytearray(self.size)
        self.fill(b)
        return bytes(b)

    def write_raw(self, path: str) -> None:
        """A raw (flat) memory image; holes stay sparse on file systems that support it."""
        with open(path, "wb") as f:
            f.truncate(self.size)
            for pa in sorted(self.pages):
                f.seek(pa)
                f.write(self.pages[pa])

    def read(self, pa: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            o = pa & (PAGE - 1)
            k = min(PAGE - o, n)
            pg = self.pages.get(pa - o)
            out += pg[o : o + k] if pg is not None else bytes(k)
            pa, n = pa + k, n - k
        return bytes(out)


def utf16(s: str) -> bytes:
    return s.encode("utf-16-le")


class Bump:
    """A bump allocator over a virtual range of an address space, mapping pages on demand."""

    def __init__(self, aspace: AddressSpace, base: int, limit: int, *, user: bool, premapped: bool = False) -> None:
        self.a, self.base, self.cur, self.limit, self.user = aspace, base, base, limit, user
        self.premapped = premapped
        self.mapped_to = base

    def alloc(self, n: int, align: int = 16) -> int:
        self.cur = (self.cur + align - 1) & ~(align - 1)
        va = self.cur
        self.cur += max(n, 1)
        if self.cur > self.limit:
            raise MemoryError("synthetic pool exhausted")
        if not self.premapped:
            while self.mapped_to < self.cur:
                self.a.alloc_map(self.mapped_to, 1, user=self.user, nx=True)
                self.mapped_to += PAGE
        return va

    def put(self, data: bytes, align: int = 16) -> int:
        va = self.alloc(len(data), align)
        self.a.write(va, data)
        return va


@dataclass
class Module:
    name: str
    path: str
    base: int
    size: int
    arch: str
    exports: dict[str, int] = field(default_factory=dict)  # name -> VA


class MachineBuilder:
    def __init__(self, profile: Profile, seed: int, size: int, offsets: Win32Offsets | None = None) -> None:
        self.p = profile
        self.seed = seed
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.o = offsets or resolve_offsets(guid_age=profile.guid_age, arch=profile.arch,
                                            pdb_name=profile.pdb_name)
        # 32-bit layouts for WoW64 structures (PEB32 loader data are x86 structures)
        self.o32 = resolve_offsets(guid_age=PROFILES["win7-7601-x86pae"].guid_age, arch="x86pae") \
            if profile.arch == "x64" else self.o
        self.x64 = profile.arch == "x64"
        self.ps = 8 if self.x64 else 4
        self.modern = profile.build >= 9200
        self.phys = SparsePhys(size)
        self.runs = [(0x1000, 0x9F000), (0x100000, size)]
        self.dtb_pa = 0x1AD000 if self.x64 else 0x185000
        reserved = [(0, 0x1000), (0x9F000, 0x100000), (0x100000, 0x300000)]
        self.alloc = FrameAllocator(size, seed, reserved, self.runs)
        self.kas = AddressSpace(self.phys, self.alloc, profile.arch, root=self.dtb_pa)
        self.facts: dict[str, Any] = {"profile": profile.name, "arch": profile.arch, "version": profile.version,
                                      "build": profile.build, "guid_age": profile.guid_age,
                                      "pdb_name": profile.pdb_name, "seed": seed, "size": size,
                                      "dtb": self.dtb_pa, "phys_runs": [list(r) for r in self.runs],
                                      "transition_pages": [], "pagefile_pages": [], "large_pages": []}
        self.session_entries: dict[int, bytes] = {}

    # ---- small helpers --------------------------------------------------------------------------
    def rand(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi))

    def pack_ptr(self, v: int) -> bytes:
        return struct.pack("<Q" if self.ps == 8 else "<I", v)

    def sym(self, name: str) -> int:
        return self.kbase + self.symbols_rva[name]

    def write_list_links(self, aspace: AddressSpace, head: int, entries: list[int], ps: int | None = None) -> None:
        """Circular doubly linked LIST_ENTRY: head <-> e0 <-> e1 ... <-> head."""
        ps = ps or self.ps
        fmt = "<Q" if ps == 8 else "<I"
        chain = [head, *entries, head]
        for i, node in enumerate(chain[:-1]):
            nxt = chain[i + 1]
            aspace.write(node, struct.pack(fmt, nxt))
            aspace.write(nxt + ps, struct.pack(fmt, node))

    def unicode_string(self, buf: StructBuf, member: str, s: str, pool: Bump) -> int:
        """A native UNICODE_STRING member of ``buf`` pointing at a copy of ``s`` in ``pool``."""
        data = utf16(s)
        va = pool.put(data + b"\0\0", 8)
        base = buf.off(member)
        buf.put(base, len(data), 2)
        buf.put(base + 2, len(data) + 2, 2)
        buf.put(base + self.o["_UNICODE_STRING.Buffer"], va, "p")
        return va

    # ---- the whole machine -----------------------------------------------------------------------
    def build(self) -> SyntheticImage:
        self.layout()
        self.build_kernel_space()
        self.build_kernel_image()
        self.build_kuser()
        self.build_kernel_modules()
        self.build_processes()
        self.finish_kernel_globals()
        self.build_low_stub()
        return SyntheticImage(self.size, self.phys.pages, self.facts)

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
            self.kbase = 0x82800000 + (self.rand(0, 0x100) << 12)
            self.pool_va = 0x84000000 + (self.rand(0, 0x20) << 21)
            self.ppool_va = 0x8A000000 + (self.rand(0, 0x100) << 12)
            self.session_va = 0x98000000
            self.kuser_k = 0xFFDF0000
            self.self_ref = 3
            self.symbols_rva = dict(X86_SYMBOLS)
            self.ksize = 0x410000
        self.facts["kernel_base"] = self.kbase
        self.facts["kernel_size"] = self.ksize
        self.facts["self_ref_index"] = self.self_ref
        self.facts["symbols"] = {k: self.kbase + v for k, v in self.symbols_rva.items()}
        self.facts["symbol_rvas"] = dict(self.symbols_rva)

    def build_kernel_space(self) -> None:
        k = self.kas
        if self.x64:
            self.phys.put_u64(k.root + self.self_ref * 8, k.root | 0x63)  # P|RW|A|D, self map
        else:
            # PAE self map: the 4 page directories appear in PD[3] at 0xC0600000 (PD index 0x300..0x303)
            for i in range(4):
                k._table_for(i << 30, 1, False)
        # nonpaged pool: one 2 MiB large page (facts record it)
        big = self.alloc.large()
        k.map_large(self.pool_va, big)
        self.facts["large_pages"].append({"va": self.pool_va, "pa": big, "size": LARGE})
        self.pool = Bump(k, self.pool_va, self.pool_va + LARGE, user=False, premapped=True)
        self.ppool = Bump(k, self.ppool_va, self.ppool_va + (64 << 20), user=False)
        self.ppool.alloc(8)
        if not self.x64:
            self.pae_self_map(k)

    def pae_self_map(self, a: AddressSpace) -> None:
        """PAE: the page directory of 0xC0000000 maps the four page directories (PTE_BASE 0xC0000000)."""
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

    # ---- kernel image and modules --------------------------------------------------------------
    def map_image(self, aspace: AddressSpace, base: int, blobs: dict[int, bytes], extra_rvas: list[int],
                  user: bool, shared_from: AddressSpace | None = None) -> None:
        """Map (sparsely) the pages of an image that hold something and write the blobs."""
        pages: set[int] = set()
        for rva, data in blobs.items():
            for p in range(rva & ~0xFFF, rva + len(data), PAGE):
                pages.add(p)
        for rva in extra_rvas:
            pages.add(rva & ~0xFFF)
        for p in sorted(pages):
            if (base + p) >> 12 in aspace.vmap:
                continue
            if shared_from is not None:
                aspace.share(shared_from, base + p, 1, user=user, write=False, nx=False)
            else:
                aspace.alloc_map(base + p, 1, user=user, write=False, nx=False)
        if shared_from is None:
            for rva, data in blobs.items():
                aspace.write(base + rva, data)

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
        if "MmProtectToValue" in self.o:  # read by tools to print VAD protections
            blobs[self.o["MmProtectToValue"]] = struct.pack("<32i", *MM_PROTECT_TO_VALUE)
        self.map_image(self.kas, self.kbase, blobs,
                       [sr["PsActiveProcessHead"], sr["PsLoadedModuleList"], sr["PsInitialSystemProcess"],
                        sr["MmPhysicalMemoryBlock"]], user=False)
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
            if self.modern:
                e = StructBuf(self.o, "_KLDR_DATA_TABLE_ENTRY")
            else:
                e = StructBuf(self.o, "_LDR_DATA_TABLE_ENTRY")
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

    # ---- processes --------------------------------------------------------------------------------
    def process_specs(self) -> list[dict[str, Any]]:
        sysroot = "C:\\Windows\\System32"
        pids = iter(sorted({4 * self.rand(25, 2500) for _ in range(40)}))
        specs: list[dict[str, Any]] = []

        def add(name: str, path: str | None, cmd: str | None, parent: str | None, session: int | None,
                **kw: Any) -> None:
            specs.append({"name": name, "path": path, "cmd": cmd, "parent": parent, "session": session,
                          "pid": 4 if name == "System" else next(pids), **kw})

        add("System", None, None, None, None)
        if self.modern:
            add("Registry", None, None, "System", None)
        add("smss.exe", "\\SystemRoot\\System32\\smss.exe", "\\SystemRoot\\System32\\smss.exe", "System", None)
        add("csrss.exe", f"{sysroot}\\csrss.exe", "%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows "
            "SharedSection=1024,20480,768 Windows=On SubSystemType=Windows", "smss.exe", 0)
        add("wininit.exe", f"{sysroot}\\wininit.exe", "wininit.exe", "smss.exe", 0)
        add("services.exe", f"{sysroot}\\services.exe", f"{sysroot}\\services.exe", "wininit.exe", 0)
        add("lsass.exe", f"{sysroot}\\lsass.exe", f"{sysroot}\\lsass.exe", "wininit.exe", 0)
        add("svchost.exe", f"{sysroot}\\svchost.exe", f"{sysroot}\\svchost.exe -k DcomLaunch -p", "services.exe", 0)
        add("SearchIndexer.exe", f"{sysroot}\\SearchIndexer.exe", f"{sysroot}\\SearchIndexer.exe /Embedding",
            "services.exe", 0)
        add("csrss.exe", f"{sysroot}\\csrss.exe", "%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows",
            "smss.exe", 1)
        add("winlogon.exe", f"{sysroot}\\winlogon.exe", "winlogon.exe", "smss.exe", 1)
        add("explorer.exe", "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", "winlogon.exe", 1,
            transition=True)
        add("notepad.exe", f"{sysroot}\\notepad.exe", f'"{sysroot}\\notepad.exe" C:\\Users\\demo\\notes.txt',
            "explorer.exe", 1, pagefile=True)
        if self.x64:
            add("demo32.exe", "C:\\Program Files (x86)\\Demo\\demo32.exe",
                '"C:\\Program Files (x86)\\Demo\\demo32.exe" --synthetic', "explorer.exe", 1, wow64=True)
        add("cmd.exe", f"{sysroot}\\cmd.exe", f'"{sysroot}\\cmd.exe" /c exit 1', "explorer.exe", 1, dead=True)
        return specs

    def build_processes(self) -> None:
        specs = self.process_specs()
        by_name: dict[str, dict[str, Any]] = {}
        for s in specs:
            by_name.setdefault(s["name"], s)
        self.dlls: dict[str, tuple[AddressSpace, Module, dict[int, bytes]]] = {}
        eprocs: list[int] = []
        procs_facts = []
        for i, s in enumerate(specs):
            ppid = by_name[s["parent"]]["pid"] if s["parent"] else 0
            pf = self.build_process(s, ppid, i)
            eprocs.append(pf["eprocess"])
            procs_facts.append(pf)
        self.write_list_links(self.kas, self.sym("PsActiveProcessHead"),
                              [e + self.o["_EPROCESS.ActiveProcessLinks"] for e in eprocs])
        self.kas.write(self.sym("PsInitialSystemProcess"), self.pack_ptr(eprocs[0]))
        self.facts["processes"] = procs_facts

    def new_user_space(self) -> AddressSpace:
        a = AddressSpace(self.phys, self.alloc, self.p.arch)
        if self.x64:
            a.copy_top_entries(self.kas, 256, 512)
            self.phys.put_u64(a.root + self.self_ref * 8, a.root | 0x63)
        else:
            # PDPT[2] (kernel image, pools) is shared; the 0xC0000000 directory is per process
            a.copy_top_entries(self.kas, 2, 3)
            pd3 = self.alloc.frame()
            kpd3 = self.phys.u64(self.kas.root + 3 * 8) & 0xFFFFFFFFF000
            self.phys.write(pd3, self.phys.read(kpd3, PAGE))
            self.phys.put_u64(a.root + 3 * 8, pd3 | 1)
            self.pae_spaces.append(a)
        # kernel half: our builder map too (for writes through this space)
        for k, v in self.kas.vmap.items():
            a.vmap.setdefault(k, v)
        return a

    def build_process(self, s: dict[str, Any], ppid: int, index: int) -> dict[str, Any]:
        o = self.o
        name = s["name"]
        kernel_only = s["path"] is None
        if name == "System":
            aspace = self.kas
        else:
            aspace = self.new_user_space()
        ep = StructBuf(o, "_EPROCESS")
        pool_hdr = 0x80 if self.x64 else 0x40  # room for _POOL_HEADER + _OBJECT_HEADER before the body
        eva = self.pool.alloc(len(ep.buf) + pool_hdr, 64) + pool_hdr
        ep.set("Pcb", 3, 1)  # _DISPATCHER_HEADER.Type = ProcessObject
        ep.set("Pcb", len(ep.buf) // 4 & 0xFF, 1, add=2)
        ep.put(o["_EPROCESS.Pcb"] + o["_KPROCESS.DirectoryTableBase"], aspace.root, "p")
        user_dtb = 0
        if self.x64 and not kernel_only and name != "System":
            # KVA shadow: a user-mode top table with the lower half only (what CR3 holds in user mode)
            ua = AddressSpace(self.phys, self.alloc, "x64")
            user_dtb = ua.root
            self.user_spaces.append((aspace, ua))
            ep.put(o["_EPROCESS.Pcb"] + o["_KPROCESS.UserDirectoryTableBase"], user_dtb, "p")
        ep.set("UniqueProcessId", s["pid"])
        ep.set("InheritedFromUniqueProcessId", ppid)
        ep.set_bytes("ImageFileName", name.encode()[:15])
        create = FILETIME_2021 + index * 10_000_000 * 7
        ep.set("CreateTime", create, 8)
        ep.set("ExitStatus", 0 if s.get("dead") else STATUS_PENDING, 4)
        if s.get("dead"):
            ep.set("ExitTime", create + 50_000_000, 8)
        ep.set("ActiveThreads", 0 if s.get("dead") else 1, 4)
        session_id = s["session"]
        if session_id is not None:
            ss = StructBuf(o, "_MM_SESSION_SPACE", 0x40)
            ss.set("SessionId", session_id, 4)
            if session_id not in self.sessions:
                self.sessions[session_id] = self.pool.put(bytes(ss.buf), 64)
            ep.set("Session", self.sessions[session_id])
        full_path = None
        if s["path"]:
            nt_path = s["path"].replace("C:", "\\Device\\HarddiskVolume2") if s["path"].startswith("C:") else \
                s["path"].replace("\\SystemRoot", "\\Device\\HarddiskVolume2\\Windows")
            full_path = nt_path
            oni = StructBuf(o, "_OBJECT_NAME_INFORMATION", 2 * self.ps)
            oni.buf[:] = bytes(2 * self.ps)
            data = utf16(nt_path)
            bva = self.ppool.put(data + b"\0\0", 8)
            struct.pack_into("<HH", oni.buf, 0, len(data), len(data) + 2)
            oni.put(o["_UNICODE_STRING.Buffer"], bva, "p")
            ep.set("SeAuditProcessCreationInfo", self.ppool.put(bytes(oni.buf), 16))
        pf: dict[str, Any] = {"pid": s["pid"], "ppid": ppid, "name": name, "image_file_name": name[:15],
                              "path": s["path"] or "", "nt_path": full_path or "", "command_line": s["cmd"] or "",
                              "eprocess": eva, "dtb": aspace.root, "user_dtb": user_dtb,
                              "wow64": bool(s.get("wow64")), "alive": not s.get("dead"),
                              "exit_status": 0 if s.get("dead") else STATUS_PENDING, "create_time": create,
                              "session": session_id, "peb": 0, "peb32": 0, "modules": [], "modules32": [],
                              "vads": [], "threads": []}
        if not kernel_only and not s.get("dead"):
            self.build_user_space(s, aspace, ep, pf)
        if self.x64 and session_id is not None and session_id >= 1 and not s.get("dead"):
            self.build_session_space(aspace)
            if "keyboard" in self.facts:
                self.facts["keyboard"]["session_pids"].append(s["pid"])
        # one thread per live process
        if not s.get("dead"):
            self.build_thread(ep, eva, s["pid"], pf)
        else:
            self.write_list_links(self.kas, eva + o["_EPROCESS.ThreadListHead"], [])
            self.write_list_links(self.kas, eva + o["_EPROCESS.Pcb"] + o["_KPROCESS.ThreadListHead"], [])
        # pool header + object header in front of the body (tag 'Proc')
        hdr = bytearray(pool_hdr)
        hdr[4:8] = b"Proc"
        self.kas.write(eva - pool_hdr, bytes(hdr))
        # list links are written later (PsActiveProcessHead); thread links were written into ep.buf
        links = o["_EPROCESS.ActiveProcessLinks"]
        thl = o["_EPROCESS.ThreadListHead"]
        kthl = o["_EPROCESS.Pcb"] + o["_KPROCESS.ThreadListHead"]
        cur = self.kas.read(eva, len(ep.buf))
        merged = bytearray(ep.buf)
        for off in (thl, kthl):
            merged[off : off + 2 * self.ps] = cur[off : off + 2 * self.ps]
        merged[links : links + 2 * self.ps] = cur[links : links + 2 * self.ps]
        self.kas.write(eva, bytes(merged))
        return pf

    def build_thread(self, ep: StructBuf, eva: int, pid: int, pf: dict[str, Any]) -> None:
        o = self.o
        th = StructBuf(o, "_ETHREAD")
        tva = self.pool.alloc(len(th.buf) + 0x40, 64) + 0x40
        tid = pid + 4
        th.set("Cid", pid, "p")
        th.set("Cid", tid, "p", add=self.ps)
        th.put(o["_ETHREAD.Tcb"] + o["_KTHREAD.Teb"], pf.get("teb", 0), "p")
        th.put(o["_ETHREAD.Tcb"] + 0, 6, 1)  # ThreadObject
        self.kas.write(tva, bytes(th.buf))
        self.write_list_links(self.kas, eva + o["_EPROCESS.ThreadListHead"], [tva + o["_ETHREAD.ThreadListEntry"]])
        self.write_list_links(self.kas, eva + o["_EPROCESS.Pcb"] + o["_KPROCESS.ThreadListHead"],
                              [tva + o["_ETHREAD.Tcb"] + o["_KTHREAD.ThreadListEntry"]])
        pf["threads"].append({"tid": tid, "ethread": tva, "teb": pf.get("teb", 0)})

    # ---- user space -------------------------------------------------------------------------------
    def user_layout(self, wow: bool) -> dict[str, int]:
        if wow:  # everything the 32-bit side sees lies below 4 GiB
            return {"exe": 0x00C20000 + (self.rand(0, 0x40) << 16), "peb": 0x002C0000 + (self.rand(0, 0x10) << 12),
                    "heap": 0x00500000 + (self.rand(0, 0x10) << 16), "stack": 0x00100000}
        if self.x64:
            return {"exe": 0x7FF600000000 + (self.rand(0x100, 0xFFFF) << 16),
                    "peb": (self.rand(0x10, 0xFF) << 32) + (self.rand(0x100, 0xFFF) << 12),
                    "heap": (self.rand(0x100, 0x2FF) << 32) + (self.rand(0x10, 0xFF) << 20),
                    "stack": (self.rand(0x10, 0xFF) << 28)}
        return {"exe": 0x00400000 + (self.rand(0, 0x40) << 16), "peb": 0x7FFD0000 + (self.rand(0, 0xC) << 12),
                "heap": 0x00250000 + (self.rand(0, 0x8) << 12), "stack": 0x00100000}

    def dll_specs(self, wow32: bool) -> list[tuple[str, str, int, int, dict[str, int]]]:
        if self.x64 and not wow32:
            d = "C:\\Windows\\SYSTEM32"
            return [("ntdll.dll", f"{d}\\ntdll.dll", 0x7FFE6A2E0000, 0x1F5000,
                     {"NtClose": 0x9D4A0, "NtReadFile": 0x9CE40, "RtlGetVersion": 0x3A2C0, "LdrLoadDll": 0x2DD90}),
                    ("KERNEL32.DLL", "C:\\Windows\\System32\\KERNEL32.DLL", 0x7FFE68DA0000, 0xBD000,
                     {"CreateFileW": 0x24B60, "ReadFile": 0x24F00, "CloseHandle": 0x24A20, "GetProcAddress": 0x1AFB0,
                      "LoadLibraryW": 0x1E7F0, "ExitProcess": 0x1E0D0}),
                    ("KERNELBASE.dll", "C:\\Windows\\System32\\KERNELBASE.dll", 0x7FFE67E00000, 0x2C8000,
                     {"CreateFileW": 0x46E90, "VirtualAlloc": 0x5D2B0}),
                    ("USER32.dll", "C:\\Windows\\System32\\USER32.dll", 0x7FFE69140000, 0x1A0000,
                     {"MessageBoxW": 0x78B70, "GetAsyncKeyState": 0x2AD60})]
        d = "C:\\Windows\\SysWOW64" if wow32 else "C:\\Windows\\system32"
        return [("ntdll.dll", f"{d}\\ntdll.dll", 0x77A10000, 0x1A3000,
                 {"NtClose": 0x72A70, "NtReadFile": 0x72690, "RtlGetVersion": 0x4F6D0, "LdrLoadDll": 0x3C9E0}),
                ("KERNEL32.DLL" if wow32 else "kernel32.dll", f"{d}\\kernel32.dll", 0x76C40000, 0xF0000,
                 {"CreateFileW": 0x1B9C0, "ReadFile": 0x1BC60, "CloseHandle": 0x1B8E0, "GetProcAddress": 0x1C220,
                  "LoadLibraryW": 0x1E3B0, "ExitProcess": 0x1E160}),
                ("KERNELBASE.dll", f"{d}\\KERNELBASE.dll", 0x75AB0000, 0x213000,
                 {"CreateFileW": 0x21A10, "VirtualAlloc": 0x1FD80}),
                ("USER32.dll" if wow32 else "user32.dll", f"{d}\\user32.dll", 0x76E90000, 0x190000,
                 {"MessageBoxW": 0x6EA70, "GetAsyncKeyState": 0x24BB0})]

    def map_dll(self, aspace: AddressSpace, spec: tuple[str, str, int, int, dict[str, int]], arch: str) -> Module:
        name, path, base, size, exports = spec
        key = f"{arch}:{path.lower()}"
        if key not in self.dlls:
            pe = PeSpec(name, arch, base, size, [Section(".text", 0x1000, 0x1000, TEXT),
                                                  Section(".rdata", 0x2000, size - 0x2000, RDATA)],
                        entry_rva=0x1010, exports=exports, subsystem=3, dll=True, meta_rva=0x2000)
            blobs = build_pe(pe)
            blobs[0x1000] = b"\xcc" * 16 + b"\xc3"
            self.map_image(aspace, base, blobs, [], user=True)
            self.dlls[key] = (aspace, Module(name, path, base, size, arch, {n: base + r for n, r in exports.items()}), blobs)
        else:
            owner, _, blobs = self.dlls[key]
            self.map_image(aspace, base, blobs, [], user=True, shared_from=owner)
        return self.dlls[key][1]

    def build_user_space(self, s: dict[str, Any], a: AddressSpace, ep: StructBuf, pf: dict[str, Any]) -> None:
        o = self.o
        wow = bool(s.get("wow64"))
        lay = self.user_layout(wow)
        arch_native = "x64" if self.x64 else "x86"
        # KUSER_SHARED_DATA user mapping (same physical page, read-only)
        a.map_page(0x7FFE0000, self.kuser_pa, user=True, write=False, nx=True)
        vads: list[dict[str, Any]] = []
        # the executable
        exe_arch = "x86" if wow else arch_native
        exe_base = lay["exe"]
        exe_size = 0x38000 + (self.rand(0, 0x40) << 12)
        native_dlls = self.dll_specs(False)
        k32 = self.map_dll(a, native_dlls[1], arch_native) if not wow else None
        imports = {"KERNEL32.dll": [(f, k32.exports[f]) for f in ("CreateFileW", "CloseHandle", "ExitProcess")]} \
            if k32 else {}
        exe = PeSpec(s["name"], exe_arch, exe_base, exe_size,
                     [Section(".text", 0x1000, 0x1000, TEXT), Section(".rdata", 0x2000, 0x2000, RDATA),
                      Section(".data", 0x4000, exe_size - 0x4000, DATA)],
                     entry_rva=0x1000, imports=imports, subsystem=2, dll=False, meta_rva=0x2000)
        blobs = build_pe(exe)
        blobs[0x1000] = b"\x90" * 8 + b"\xc3"
        self.map_image(a, exe_base, blobs, [0x4000], user=True)
        exe_mod = Module(s["name"], s["path"], exe_base, exe_size, exe_arch)
        vads.append({"start": exe_base, "end": exe_base + exe_size - 1, "protection": MM_EXECUTE_WRITECOPY,
                     "private": False, "type": VAD_IMAGE, "file": s["path"]})
        # native modules (64-bit on x64 -- also in WoW64 processes: ntdll + the wow64 layer)
        if wow:
            nd = native_dlls[0]
            w = "C:\\Windows\\System32"
            mods64 = [self.map_dll(a, nd, "x64")] + [
                self.map_dll(a, (n, f"{w}\\{n}", b, sz, {}), "x64")
                for n, b, sz in (("wow64.dll", 0x7FFE69F50000, 0x59000), ("wow64win.dll", 0x7FFE69EE0000, 0x6F000),
                                 ("wow64cpu.dll", 0x7FFE6A2A0000, 0xA000))]
        else:
            assert k32 is not None
            mods64 = [self.map_dll(a, native_dlls[0], arch_native), k32,
                      self.map_dll(a, native_dlls[2], arch_native)]
            if s["session"] and s["session"] >= 1:
                mods64.append(self.map_dll(a, native_dlls[3], arch_native))
        mods32: list[Module] = []
        if wow:
            d32 = self.dll_specs(True)
            mods32 = [self.map_dll(a, d32[i], "x86") for i in range(4)]
        for m in [*mods64, *mods32]:
            vads.append({"start": m.base, "end": m.base + m.size - 1, "protection": MM_EXECUTE_WRITECOPY,
                         "private": False, "type": VAD_IMAGE, "file": m.path})
        # heap (private): loader data, strings, process parameters
        heap = Bump(a, lay["heap"], lay["heap"] + 0x100000, user=True)
        # PEB (+ TEB) page
        peb_va = lay["peb"]
        a.alloc_map(peb_va, 2 if not wow else 4, user=True, nx=True)
        teb_va = peb_va + PAGE
        vads.append({"start": peb_va, "end": peb_va + (2 if not wow else 4) * PAGE - 1, "protection": MM_READWRITE,
                     "private": True, "type": VAD_NONE, "file": None})
        peb = StructBuf(o, "_PEB")
        peb.set("ImageBaseAddress", exe_base)
        peb.set("BeingDebugged", 0, 1)
        ldr_va = self.build_ldr(a, heap, [Module(s["name"], s["path"], exe_base, exe_size, exe_arch), *mods64],
                                o, self.ps, pf["modules"])
        peb.set("Ldr", ldr_va)
        peb.set("ProcessParameters", self.build_params(a, heap, s, o, self.ps))
        if "_PEB.OSMajorVersion" in o:
            peb.set("OSMajorVersion", self.p.major, 4)
            peb.set("OSMinorVersion", self.p.minor, 4)
            peb.set("OSBuildNumber", self.p.build, 2)
        a.write(peb_va, bytes(peb.buf))
        teb = StructBuf(o, "_TEB", 0x100)
        teb.set("ProcessEnvironmentBlock", peb_va)
        a.write(teb_va, bytes(teb.buf))
        pf["teb"] = teb_va
        ep.set("Peb", peb_va)
        ep.set("SectionBaseAddress", exe_base)
        pf["peb"] = peb_va
        if wow:
            o32 = self.o32
            peb32_va = peb_va + 2 * PAGE
            peb32 = StructBuf(self.o, "_PEB32")
            peb32.set("ImageBaseAddress", exe_base, 4)
            ldr32 = self.build_ldr(a, heap, [exe_mod, *mods32], o32, 4, pf["modules32"])
            peb32.set("Ldr", ldr32, 4)
            peb32.set("ProcessParameters", self.build_params(a, heap, s, o32, 4), 4)
            peb32.set("OSMajorVersion", self.p.major, 4)
            peb32.set("OSMinorVersion", self.p.minor, 4)
            a.write(peb32_va, bytes(peb32.buf))
            wp = StructBuf(o, "_EWOW64PROCESS")
            wp.set("Peb", peb32_va)
            wp.set("Machine", 0x14C, 2)
            ep.set("WoW64Process", self.pool.put(bytes(wp.buf), 16))
            pf["peb32"] = peb32_va
        else:
            pf["modules32"] = []
        # a stack region (private, mostly reserved) and the heap itself
        stack = lay["stack"]
        a.alloc_map(stack + 0xFD000, 3, user=True, nx=True)
        vads.append({"start": stack, "end": stack + 0xFFFFF, "protection": MM_READWRITE, "private": True,
                     "type": VAD_NONE, "file": None})
        # special pages: one transition page (explorer) and one paged-out page (notepad) in the heap
        heap_end = heap.alloc(0x10, 16)
        extra = (heap_end + 2 * PAGE) & ~0xFFF
        if s.get("transition"):
            f = self.alloc.frame()
            marker = f"TRANSITION PAGE pid={s['pid']}".encode().ljust(64, b".")
            self.phys.write(f, marker)
            pte = (f & ~0xFFF) | bits_value(o, {"_MMPTE_TRANSITION.Transition": 1, "_MMPTE_TRANSITION.Protection": 4})
            pte_pa = a.map_page(extra, f, user=True, pte_value=pte)
            self.facts["transition_pages"].append({"pid": s["pid"], "va": extra, "pa": f, "pte": pte,
                                                   "pte_pa": pte_pa, "marker": marker.decode()})
        if s.get("pagefile"):
            pte = bits_value(o, {"_MMPTE_SOFTWARE.PageFileLow": 1, "_MMPTE_SOFTWARE.Protection": 4,
                                 "_MMPTE_SOFTWARE.PageFileHigh": 0x1234})
            pte_pa = a.map_page(extra, 0, user=True, pte_value=pte)
            self.facts["pagefile_pages"].append({"pid": s["pid"], "va": extra, "pte": pte, "pte_pa": pte_pa,
                                                 "pagefile": 1, "page_offset": 0x1234})
        vads.append({"start": lay["heap"], "end": lay["heap"] + 0xFFFFF, "protection": MM_READWRITE,
                     "private": True, "type": VAD_NONE, "file": None})
        vads.sort(key=lambda v: v["start"])
        root, count = self.build_vad_tree(vads)
        if self.modern:
            ep.set("VadRoot", root)
            ep.set("VadCount", count)
            ep.set("VadHint", root)
        else:
            # _MM_AVL_TABLE embedded: BalancedRoot.RightChild is the tree
            ep.set("VadRoot", root, "p", add=self.o["_MM_AVL_TABLE.BalancedRoot"] + self.o["_MMADDRESS_NODE.RightChild"])
            ep.set("VadRoot", count << 8, "p", add=self.o["_MM_AVL_TABLE.NumberGenericTableElements"])
        pf["vads"] = vads
        pf["modules"] = pf["modules"]

    def build_ldr(self, a: AddressSpace, heap: Bump, mods: list[Module], o: Win32Offsets, ps: int,
                  out: list[dict[str, Any]]) -> int:
        ldr = StructBuf(o, "_PEB_LDR_DATA", 0x58 if ps == 8 else 0x30)
        ldr.set("Length", len(ldr.buf), 4)
        ldr.set("Initialized", 1, 1)
        ldr_va = heap.alloc(len(ldr.buf), 16)
        a.write(ldr_va, bytes(ldr.buf))
        entries = []
        for m in mods:
            e = StructBuf(o, "_LDR_DATA_TABLE_ENTRY", None if ps == self.ps else 0xB0)
            e.ps = ps
            e.set("DllBase", m.base, ps)
            e.set("EntryPoint", m.base + 0x1000, ps)
            e.set("SizeOfImage", m.size, 4)
            for member, text in (("FullDllName", m.path), ("BaseDllName", m.name)):
                data = utf16(text)
                bva = heap.put(data + b"\0\0", 8)
                base = e.off(member)
                e.put(base, len(data), 2)
                e.put(base + 2, len(data) + 2, 2)
                e.put(base + (8 if ps == 8 else 4), bva, ps)
            if "_LDR_DATA_TABLE_ENTRY.LoadTime" in o:
                e.set("LoadTime", FILETIME_2021, 8)
            va = heap.alloc(len(e.buf), 16)
            a.write(va, bytes(e.buf))
            entries.append(va)
            out.append({"name": m.name, "path": m.path, "base": m.base, "size": m.size, "arch": m.arch,
                        "ldr_entry": va})
        for lst, links, skip_exe in (("InLoadOrderModuleList", "InLoadOrderLinks", False),
                                     ("InMemoryOrderModuleList", "InMemoryOrderLinks", False),
                                     ("InInitializationOrderModuleList", "InInitializationOrderLinks", True)):
            es = entries[1:] if skip_exe else entries
            self.write_list_links(a, ldr_va + o[f"_PEB_LDR_DATA.{lst}"],
                                  [e + o[f"_LDR_DATA_TABLE_ENTRY.{links}"] for e in es], ps)
        return ldr_va

    def build_params(self, a: AddressSpace, heap: Bump, s: dict[str, Any], o: Win32Offsets, ps: int) -> int:
        pp = StructBuf(o, "_RTL_USER_PROCESS_PARAMETERS")
        pp.ps = ps
        pp.set("MaximumLength", len(pp.buf), 4)
        pp.set("Length", len(pp.buf), 4)
        pp.set("Flags", 1, 4)  # normalized: buffers are pointers
        for member, text in (("ImagePathName", s["path"]), ("CommandLine", s["cmd"]),
                             ("CurrentDirectory", "C:\\Windows\\system32\\")):
            data = utf16(text)
            bva = heap.put(data + b"\0\0", 8)
            base = pp.off(member)
            pp.put(base, len(data), 2)
            pp.put(base + 2, len(data) + 2, 2)
            pp.put(base + (8 if ps == 8 else 4), bva, ps)
        va = heap.alloc(len(pp.buf), 16)
        a.write(va, bytes(pp.buf))
        return va

    def build_vad_tree(self, vads: list[dict[str, Any]]) -> tuple[int, int]:
        """A balanced binary tree of VAD nodes (AVL shape) in the pool; returns (root VA, count)."""
        o = self.o
        nodes: list[int] = []
        bufs: list[StructBuf] = []
        for v in vads:
            image = v["type"] == VAD_IMAGE
            b = StructBuf(o, "_MMVAD" if image else "_MMVAD_SHORT")
            core = "_MMVAD_SHORT"
            flags_off = o[f"{core}.u"]
            sv, ev = v["start"] >> 12, v["end"] >> 12
            b.put(o[f"{core}.StartingVpn"], sv & 0xFFFFFFFF, 4 if self.modern else "p")
            b.put(o[f"{core}.EndingVpn"], ev & 0xFFFFFFFF, 4 if self.modern else "p")
            if self.modern:
                b.put(o[f"{core}.StartingVpnHigh"], sv >> 32, 1)
                b.put(o[f"{core}.EndingVpnHigh"], ev >> 32, 1)
            b.set_bits("_MMVAD_FLAGS.Protection", v["protection"], flags_off)
            b.set_bits("_MMVAD_FLAGS.VadType", v["type"], flags_off)
            b.set_bits("_MMVAD_FLAGS.PrivateMemory", 1 if v["private"] else 0, flags_off)
            if image and v["file"]:
                fo = StructBuf(o, "_FILE_OBJECT")
                fo.put(0, 5, 2)  # Type = IO_TYPE_FILE
                # FILE_OBJECT.FileName is the path on its volume: no drive letter (facts: file_name)
                fname = v["file"][2:] if v["file"][1:2] == ":" else v["file"]
                v["file_name"] = fname
                data = utf16(fname)
                bva = self.ppool.put(data + b"\0\0", 8)
                base = fo.off("FileName")
                fo.put(base, len(data), 2)
                fo.put(base + 2, len(data) + 2, 2)
                fo.put(base + o["_UNICODE_STRING.Buffer"], bva, "p")
                fva = self.pool.put(bytes(fo.buf), 16)
                ca = StructBuf(o, "_CONTROL_AREA")
                ca.set("FilePointer", fva | (3 if self.modern else 0))  # _EX_FAST_REF low bits: ref count
                cva = self.pool.put(bytes(ca.buf), 16)
                sub = StructBuf(o, "_SUBSECTION")
                sub.set("ControlArea", cva)
                sva = self.pool.put(bytes(sub.buf), 16)
                b.set("Subsection", sva)
                v["file_object"] = fva
            # a pool allocation: _POOL_HEADER (16 bytes x64, 8 x86) with the tag Windows uses
            hdr = 16 if self.x64 else 8
            va = self.pool.alloc(len(b.buf) + hdr, 16) + hdr
            blocks = (len(b.buf) + hdr + 15) // 16 if self.x64 else (len(b.buf) + hdr + 7) // 8
            ph = struct.pack("<HH4s", 0, (blocks & 0xFF) | (0x02 << 8) if self.x64 else blocks & 0x1FF,
                             b"Vad " if image else b"VadS")
            self.kas.write(va - hdr, ph)
            nodes.append(va)
            bufs.append(b)
            v["node"] = va

        def link(lo: int, hi: int, parent: int) -> int:
            if lo > hi:
                return 0
            mid = (lo + hi) // 2
            b = bufs[mid]
            left = link(lo, mid - 1, nodes[mid])
            right = link(mid + 1, hi, nodes[mid])
            if self.modern:
                b.put(o["_MMVAD_SHORT.VadNode"] + o["_RTL_BALANCED_NODE.Left"], left, "p")
                b.put(o["_MMVAD_SHORT.VadNode"] + o["_RTL_BALANCED_NODE.Right"], right, "p")
                b.put(o["_MMVAD_SHORT.VadNode"] + o["_RTL_BALANCED_NODE.ParentValue"], parent, "p")
            else:
                b.put(o["_MMADDRESS_NODE.LeftChild"], left, "p")
                b.put(o["_MMADDRESS_NODE.RightChild"], right, "p")
                b.put(o["_MMADDRESS_NODE.u1"], parent, "p")
            return nodes[mid]

        root = link(0, len(nodes) - 1, 0)
        for va, b in zip(nodes, bufs, strict=True):
            self.kas.write(va, bytes(b.buf))
        return root, len(nodes)

    # ---- finishing -----------------------------------------------------------------------------
    def finish_kernel_globals(self) -> None:
        # KVA-shadow user tables: copy the lower half now that user mappings exist
        for full, user in self.user_spaces:
            user.copy_top_entries(full, 0, 256)
        for a in self.pae_spaces:
            self.pae_self_map(a)

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

    user_spaces: list[tuple[AddressSpace, AddressSpace]]
    sessions: dict[int, int]
    session_vmap: dict[int, int]
    session_blobs: tuple[int, dict[int, bytes], list[int]]
    pae_spaces: list[AddressSpace]


def build_image(profile: str = "win10-19041-x64", seed: int = 0, size: int | None = None,
                offsets: Win32Offsets | None = None) -> SyntheticImage:
    """Build a synthetic Windows machine's physical memory and its ground truth, deterministically."""
    p = PROFILES.get(ALIASES.get(profile, profile))
    if p is None:
        raise ValueError(f"unknown synthetic profile {profile!r} (known: {', '.join([*PROFILES, *ALIASES])})")
    b = MachineBuilder(p, seed, size or p.default_size, offsets)
    b.user_spaces = []
    b.sessions = {}
    b.pae_spaces = []
    return b.build()


_ = (NX, US)
