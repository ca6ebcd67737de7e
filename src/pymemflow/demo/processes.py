"""Processes: EPROCESS objects on ActiveProcessLinks, address spaces, threads, sessions."""

from __future__ import annotations

import struct
from typing import Any

from .handles import HandleMixin
from .image import Module
from .kernel import KernelMixin
from .memory import PAGE, AddressSpace
from .profiles import FILETIME_2021, PROCESS_TYPE_INDEX, STATUS_PENDING
from .structs import StructBuf, utf16


class ProcessMixin(KernelMixin, HandleMixin):
    def process_specs(self) -> list[dict[str, Any]]:
        sysroot = "C:\\Windows\\System32"
        pids = iter(sorted({4 * self.rand(25, 2500) for _ in range(40)}))
        specs: list[dict[str, Any]] = []

        def add(name: str, path: str | None, cmd: str | None, parent: str | None, session: int | None,
                **kw: Any) -> None:
            pid = kw.pop("pid", None) or (4 if name == "System" else next(pids))
            specs.append({"name": name, "path": path, "cmd": cmd, "parent": parent, "session": session,
                          "pid": pid, **kw})

        add("System", None, None, None, None)
        if self.p.build >= 17134:  # the Registry process exists since Windows 10 1803
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
        # the `processes=N` knob: more service hosts until there are N (pids above the random ones)
        for i in range(max(0, self.min_processes - len(specs))):
            add("svchost.exe", f"{sysroot}\\svchost.exe", f"{sysroot}\\svchost.exe -k demo{i} -p", "services.exe", 0,
                pid=10_004 + 4 * i)
        # unlinked from ActiveProcessLinks (DKOM): only pool scanning (psscan) finds it
        add("backdoor.exe", "C:\\Users\\demo\\AppData\\Local\\Temp\\backdoor.exe",
            "C:\\Users\\demo\\AppData\\Local\\Temp\\backdoor.exe -connect", "explorer.exe", 1, hidden=True)
        return specs

    def build_processes(self) -> None:
        specs = self.process_specs()
        by_name: dict[str, dict[str, Any]] = {}
        for s in specs:
            by_name.setdefault(s["name"], s)
        self.dlls: dict[str, tuple[AddressSpace, Module, dict[int, bytes]]] = {}
        eprocs: list[int] = []
        procs_facts = []
        hidden = []
        for i, s in enumerate(specs):
            ppid = by_name[s["parent"]]["pid"] if s["parent"] else 0
            pf = self.build_process(s, ppid, i)
            if s.get("hidden"):
                hidden.append(pf)
                continue
            eprocs.append(pf["eprocess"])
            procs_facts.append(pf)
        self.write_list_links(self.kas, self.sym("PsActiveProcessHead"),
                              [e + self.o["_EPROCESS.ActiveProcessLinks"] for e in eprocs])
        for pf in hidden:  # as the FU rootkit leaves it: the links point at the entry itself
            links = pf["eprocess"] + self.o["_EPROCESS.ActiveProcessLinks"]
            self.kas.write(links, self.pack_ptr(links) * 2)
        self.kas.write(self.sym("PsInitialSystemProcess"), self.pack_ptr(eprocs[0]))
        self.facts["processes"] = procs_facts
        self.facts["unlinked_processes"] = hidden

    def new_user_space(self) -> AddressSpace:
        a = AddressSpace(self.phys, self.alloc, self.p.arch)
        if self.x64:
            a.copy_top_entries(self.kas, 256, 512)
            self.phys.put_u64(a.root + self.self_ref * 8, a.root | 0x63)
        elif self.p.arch == "x86":
            # the kernel half's page-directory entries, and the self-map at PDE 0x300
            a.copy_top_entries(self.kas, 0x200, 0x400)
            self.phys.put_entry(a.root + 0x300 * 4, a.root | 0x63, 4)
            self.pae_spaces.append(a)  # x86 spaces are finished at the end too (kernel PDEs made later)
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
        # a pool block: _POOL_HEADER, _OBJECT_HEADER (no optional headers), then the EPROCESS body;
        # the body ends the block, so both top-down (Windows 8+) and bottom-up carving find it
        ph = 16 if self.x64 else 8
        prefix = ph + o["_OBJECT_HEADER.Body"]
        # the body is pool-aligned and padded to the alignment (as ExAllocatePool leaves it), so it is
        # both right after the header and at block end - round_up(sizeof EPROCESS)
        total = prefix + (len(ep.buf) + ph - 1) // ph * ph
        block = self.pool.alloc(total, 16 if self.x64 else 8)
        eva = block + prefix
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
        if not s.get("dead"):  # threads and handles: demo/threads.py, demo/handles.py
            self.build_threads(ep, eva, s, pf, create, aspace)
            self.build_handles(ep, eva, s, pf)
        else:
            self.write_list_links(self.kas, eva + o["_EPROCESS.ThreadListHead"], [])
            self.write_list_links(self.kas, eva + o["_EPROCESS.Pcb"] + o["_KPROCESS.ThreadListHead"], [])
        self.write_object_headers(block, eva, total, b"Proc" if self.modern else b"Pro\xe3", PROCESS_TYPE_INDEX)
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

    def write_object_headers(self, block: int, body: int, total: int, tag: bytes, type_index: int) -> None:
        """_POOL_HEADER at ``block`` and _OBJECT_HEADER right before ``body`` (TypeIndex encoded with
        ObHeaderCookie and the header address on Windows 10, as the kernel does)."""
        o = self.o
        hoff = o["_OBJECT_HEADER.Body"]
        oh = StructBuf(o, "_OBJECT_HEADER", hoff)
        oh.set("PointerCount", 2)
        oh.set("HandleCount", 1)
        hdr_va = body - hoff
        ti = type_index ^ ((hdr_va >> 8) & 0xFF) ^ self.ob_cookie if self.ob_cookie is not None else type_index
        oh.set("TypeIndex", ti, 1)
        oh.set("InfoMask", 0, 1)
        self.kas.write(hdr_va, bytes(oh.buf))
        if self.x64:
            ph = struct.pack("<BBBB4sQ", 0, 0, total // 16, 2, tag, 0)
        else:
            ph = struct.pack("<I4s", ((total // 8) << 16) | (2 << 25), tag)
        self.kas.write(block, ph)

    def finish_kernel_globals(self) -> None:
        # KVA-shadow user tables: copy the lower half now that user mappings exist
        for full, user in self.user_spaces:
            user.copy_top_entries(full, 0, 256)
        for a in self.pae_spaces:
            self.pae_self_map(a)
