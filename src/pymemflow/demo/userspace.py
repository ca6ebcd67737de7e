"""User space of a process: executable and DLL images, PEB (and PEB32 for WoW64) with loader
lists and process parameters, heap, stack, the special PTEs (transition, pagefile)."""

from __future__ import annotations

from typing import Any

from ..os.win32.offsets import Win32Offsets
from .image import Module
from .memory import PAGE, AddressSpace, Bump
from .pe import DATA, RDATA, TEXT, PeSpec, Section, build_pe
from .profiles import FILETIME_2021, MM_EXECUTE_WRITECOPY, MM_READWRITE, VAD_IMAGE, VAD_NONE
from .structs import StructBuf, bits_value, utf16
from .vad import VadMixin


class UserSpaceMixin(VadMixin):
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
            if o.size("_EWOW64PROCESS") is not None:  # Windows 10+: WoW64Process -> _EWOW64PROCESS.Peb
                wp = StructBuf(o, "_EWOW64PROCESS")
                wp.set("Peb", peb32_va)
                if "_EWOW64PROCESS.Machine" in o:  # 1607 .. 1909 (later builds: NtdllType)
                    wp.set("Machine", 0x14C, 2)
                ep.set("WoW64Process", self.pool.put(bytes(wp.buf), 16))
            else:  # Windows 7 / 8.1: Wow64Process (void *) is the address of the PEB32 itself
                ep.set("Wow64Process", peb32_va)
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
        vads += self.extra_user_vads(s, a, pf)  # demo/threads.py, demo/inject.py: TEBs, injected code
        vads.sort(key=lambda v: v["start"])
        root, count = self.build_vad_tree(vads)
        if "_MMVAD_SHORT.VadNode" in o:  # _RTL_AVL_TREE (Windows 8.1+)
            ep.set("VadRoot", root)
            ep.set("VadCount", count)
            ep.set("VadHint", root)
        else:
            # _MM_AVL_TABLE embedded: BalancedRoot.RightChild is the tree
            ep.set("VadRoot", root, "p", add=self.o["_MM_AVL_TABLE.BalancedRoot"] + self.o["_MMADDRESS_NODE.RightChild"])
            ep.set("VadRoot", count << 8, "p", add=self.o["_MM_AVL_TABLE.NumberGenericTableElements"])
        pf["vads"] = vads
        pf["modules"] = pf["modules"]

    def extra_user_vads(self, s: dict[str, Any], a: AddressSpace, pf: dict[str, Any]) -> list[dict[str, Any]]:
        """More regions of the process (mapped by the override, VADs returned): TEBs (demo/threads.py), injected code
        (demo/inject.py)."""
        return []

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
