"""Threads of the synthetic machine: ETHREAD objects (pool + object header) on both thread lists of
their process, with client ids, start addresses inside real modules, states, create/exit times and
one TEB each (extra TEBs get their own private VAD, as on Windows).

Ground truth: ``facts["processes"][i]["threads"]`` (tid, ethread, teb, start_address,
win32_start_address, state, create_time, exit_time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .memory import PAGE, AddressSpace
from .profiles import MM_READWRITE, OBJECT_TYPES, VAD_NONE
from .structs import StructBuf
from .userspace import UserSpaceMixin

THREAD_TYPE_INDEX = 2 + OBJECT_TYPES.index("Thread")
KTHREAD_STATE = {"Ready": 1, "Running": 2, "Terminated": 4, "Waiting": 5}
TID_BASE = 40_000
"""Thread ids come from a range of their own, so no tid equals a pid of the demo machine."""

# (start module, rva) of user threads beyond the main one; the main thread starts at the exe entry
WORKER_STARTS = (("ntdll.dll", 0x34A40), ("KERNELBASE.dll", 0x5D2B0), ("ntdll.dll", 0x2DD90))


class ThreadMixin(UserSpaceMixin):
    tid_counter: int = 0
    write_object_headers: Callable[[int, int, int, bytes, int], None]  # processes.py

    def thread_plan(self, s: dict[str, Any]) -> list[str]:
        """States of the threads a process gets (first = main thread)."""
        if s["name"] == "System":
            return ["Running", "Waiting", "Waiting", "Ready"]
        if s["name"] == "explorer.exe":
            return ["Waiting", "Running", "Terminated", "Waiting"]
        if s["path"] is None:  # Registry: kernel threads only
            return ["Waiting"]
        return ["Waiting", "Waiting"]

    def extra_user_vads(self, s: dict[str, Any], a: AddressSpace, pf: dict[str, Any]) -> list[dict[str, Any]]:
        """TEBs of the threads beyond the main one (below the PEB, one page and one VAD each)."""
        vads: list[dict[str, Any]] = []
        tebs: list[int] = []
        for k in range(1, len(self.thread_plan(s))):
            teb = pf["peb"] - (2 * k) * PAGE
            a.alloc_map(teb, 1, user=True, nx=True)
            t = StructBuf(self.o, "_TEB", 0x100)
            t.set("ProcessEnvironmentBlock", pf["peb"])
            a.write(teb, bytes(t.buf))
            tebs.append(teb)
            vads.append({"start": teb, "end": teb + PAGE - 1, "protection": MM_READWRITE, "private": True,
                         "type": VAD_NONE, "file": None})
        pf["extra_tebs"] = tebs
        return vads

    def thread_starts(self, s: dict[str, Any], pf: dict[str, Any], n: int) -> list[tuple[int, int]]:
        """(StartAddress, Win32StartAddress) per thread: kernel threads start in ntoskrnl/drivers; user
        threads in RtlUserThreadStart with the routine (exe entry, ntdll worker ...) as Win32 start."""
        if s["path"] is None or not pf["modules"]:
            drivers = [m for m in self.kmods if m.name != "ntoskrnl.exe" and not m.name.startswith("win32k")]
            out = []
            for k in range(n):
                m = self.nt if k % 2 == 0 else drivers[k % len(drivers)]
                addr = m.base + 0x2000 + 0x40 * (k + 1) if m is not self.nt else m.base + 0x10000 + 0x1A0 * (k + 1)
                out.append((addr, addr))
            return out
        mods = {m["name"].lower(): m for m in pf["modules"]}
        ntdll = mods["ntdll.dll"]
        user_start = ntdll["base"] + 0x7C8A0  # RtlUserThreadStart
        out = [(user_start, pf["modules"][0]["base"] + 0x1000)]
        for k in range(1, n):
            mod, rva = WORKER_STARTS[(k - 1) % len(WORKER_STARTS)]
            m = mods.get(mod.lower(), ntdll)
            out.append((user_start, m["base"] + rva))
        if pf.get("injected"):  # a thread of the injected code: its start lies in no module
            out[-1] = (user_start, pf["injected"]["start"] + 0x10)
        return out

    def build_threads(self, ep: StructBuf, eva: int, s: dict[str, Any], pf: dict[str, Any], create: int,
                      aspace: AddressSpace) -> None:
        o = self.o
        plan = self.thread_plan(s)
        tebs = [pf.get("teb", 0), *pf.get("extra_tebs", [])] if s["path"] is not None else [0] * len(plan)
        starts = self.thread_starts(s, pf, len(plan))
        ph = 16 if self.x64 else 8
        prefix = ph + o["_OBJECT_HEADER.Body"]
        size = o.size("_ETHREAD") or 0
        links, klinks = [], []
        for k, state in enumerate(plan):
            th = StructBuf(o, "_ETHREAD")
            total = (prefix + size + ph - 1) // ph * ph
            block = self.pool.alloc(total, 16 if self.x64 else 8)
            tva = block + prefix if self.modern or self.x64 else block + total - size  # x64: 16-aligned header
            self.tid_counter += 1
            tid = TID_BASE + 4 * self.tid_counter
            tcb = o["_ETHREAD.Tcb"]
            th.set("Cid", s["pid"], "p")
            th.set("Cid", tid, "p", add=self.ps)
            teb = tebs[k] if k < len(tebs) else 0
            th.put(tcb + o["_KTHREAD.Teb"], teb, "p")
            th.put(tcb + o["_KTHREAD.Process"], eva, "p")
            th.put(tcb + 0, 6, 1)  # _DISPATCHER_HEADER.Type = ThreadObject
            th.put(tcb + o["_KTHREAD.State"], KTHREAD_STATE[state], 1)
            start, win32_start = starts[k]
            th.set("StartAddress", start)
            th.set("Win32StartAddress", win32_start)
            t_create = create + 10_000 * (k + 1)  # 1 ms apart
            th.set("CreateTime", t_create, 8)
            t_exit = t_create + 30_000_000 if state == "Terminated" else 0
            th.set("ExitTime", t_exit, 8)
            if teb:
                self.write_teb_client_id(aspace, s["pid"], teb, tid)
            self.kas.write(tva, bytes(th.buf))
            self.write_object_headers(block, tva, total, b"Thre" if self.modern else b"Thr\xe5", THREAD_TYPE_INDEX)
            links.append(tva + o["_ETHREAD.ThreadListEntry"])
            klinks.append(tva + tcb + o["_KTHREAD.ThreadListEntry"])
            pf["threads"].append({"tid": tid, "pid": s["pid"], "ethread": tva, "teb": teb, "start_address": start,
                                  "win32_start_address": win32_start, "state": state, "create_time": t_create,
                                  "exit_time": t_exit})
        self.set_load_times(aspace, pf, create)
        self.write_list_links(self.kas, eva + o["_EPROCESS.ThreadListHead"], links)
        self.write_list_links(self.kas, eva + o["_EPROCESS.Pcb"] + o["_KPROCESS.ThreadListHead"], klinks)
        ep.set("ActiveThreads", sum(1 for st in plan if st != "Terminated"), 4)

    def set_load_times(self, aspace: AddressSpace, pf: dict[str, Any], create: int) -> None:
        """Loader entries' LoadTime (Windows 7+): the exe and its DLLs load in the process's first second."""
        off = self.o.get("_LDR_DATA_TABLE_ENTRY.LoadTime")
        if off is None:
            return
        for k, m in enumerate(pf["modules"]):
            m["load_time"] = create + 1_000_000 * (k + 1)  # 100 ms apart
            aspace.write(m["ldr_entry"] + off, m["load_time"].to_bytes(8, "little"))

    def write_teb_client_id(self, aspace: AddressSpace, pid: int, teb: int, tid: int) -> None:
        """_TEB.ClientId (UniqueProcess, UniqueThread) in the process's own address space."""
        cid = self.o.get("_TEB.ClientId")
        if cid is not None:
            aspace.write(teb + cid, self.pack_ptr(pid) + self.pack_ptr(tid))
