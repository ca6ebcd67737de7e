"""Handle tables of the synthetic machine: ``_EPROCESS.ObjectTable`` -> ``_HANDLE_TABLE`` whose
``TableCode`` (low two bits = levels) points at pages of ``_HANDLE_TABLE_ENTRY``s (one level) or at a
page of pointers to them (two levels: the service host with more handles than one page holds).

Entries are encoded as the kernel does: Windows 8.1+ x64 ``ObjectPointerBits`` (header address >> 4
in bits 20..63, ``Unlocked`` bit 0) and ``GrantedAccessBits``; Windows 7 an ``Object`` pointer to the
header with low flag bits and ``GrantedAccess``. Objects are pool blocks: pool header, optional name
info header (``InfoMask`` bit 2, found through ``ObpInfoMaskToOffset``), ``_OBJECT_HEADER`` with its
cookie-encoded ``TypeIndex``, body. Files name a device object (``\\Device\\HarddiskVolume2``).

Ground truth: ``facts["processes"][i]["handles"]`` (handle, type, name, object, access).
"""

from __future__ import annotations

import struct
from typing import Any

from .inject import InjectMixin
from .memory import PAGE, Bump
from .profiles import OBJECT_TYPES
from .structs import StructBuf, utf16

X86_OBP_INFO_MASK_RVA = 0x2F8E00
"""ObpInfoMaskToOffset of the x86 kernel (synthetic, like its other symbols; x64: the ISF's RVA)."""
VOLUME = "HarddiskVolume2"
BIG_TABLE_PROCESS = "svchost.exe"
# access masks as Windows grants them for these opens
ACCESS = {"Key": 0x20019, "File": 0x100020, "Event": 0x1F0003, "Mutant": 0x1F0001, "Section": 0x4, "Thread": 0x1FFFFF,
          "Process": 0x1FFFFF}
BODY_SIZE = {"Event": (0x18, 0x10), "Mutant": (0x38, 0x20), "Section": (0x40, 0x28), "Device": (0x150, 0xB8)}
TAGS = {"Event": b"Even", "Mutant": b"Muta", "Section": b"Sect", "File": b"File", "Device": b"Devi", "Key": b"Key "}
CM_KEY_BODY_TYPE = 0x6B793032  # 'ky02'
KEYS = ("MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion", "MACHINE\\SYSTEM\\ControlSet001\\Control\\Nls")


def type_index(name: str) -> int:
    return 2 + OBJECT_TYPES.index(name)


class HandleMixin(InjectMixin):
    device_object: int = 0
    kcbs: dict[str, int]
    eprocess_by_pid: dict[int, int]
    process_names: dict[int, str]

    # ---- kernel-wide ----------------------------------------------------------------------------
    def build_object_manager(self) -> None:
        """ObpInfoMaskToOffset in the kernel image and the volume's device object."""
        self.eprocess_by_pid = {}
        self.process_names = {}
        rva = self.o.get("ObpInfoMaskToOffset") if self.x64 else X86_OBP_INFO_MASK_RVA
        if rva is not None:
            sizes = self.info_header_sizes()
            table = bytes(sum(s for b, s in enumerate(sizes) if m >> b & 1) & 0xFF for m in range(256))
            self.map_image(self.kas, self.kbase, {rva: table}, [], user=False,
                           fixed_phys=None if self.x64 else self.kbase - 0x80000000)
            self.facts["symbol_rvas"]["ObpInfoMaskToOffset"] = rva
            self.facts["symbols"]["ObpInfoMaskToOffset"] = self.kbase + rva
        self.device_object = self.new_object("Device", name=VOLUME, pool=self.pool)
        self.kcbs = {"": self.control_block("REGISTRY", 0)}

    def control_block(self, name: str, parent: int) -> int:
        """A _CM_KEY_CONTROL_BLOCK with its compressed (ASCII) _CM_NAME_CONTROL_BLOCK."""
        o = self.o
        nb = StructBuf(o, "_CM_NAME_CONTROL_BLOCK", o["_CM_NAME_CONTROL_BLOCK.Name"] + len(name))
        nb.put(0, 1, 1)  # Compressed
        nb.set("NameLength", len(name), 2)
        nb.set_bytes("Name", name.encode("ascii"))
        kcb = StructBuf(o, "_CM_KEY_CONTROL_BLOCK")
        kcb.set("ParentKcb", parent)
        kcb.set("NameBlock", self.ppool.put(bytes(nb.buf), 16))
        return self.ppool.put(bytes(kcb.buf), 16)

    def key_object(self, path: str) -> int:
        """A key body whose control block chain spells ``path`` (control blocks shared by prefix)."""
        parent = self.kcbs[""]
        for i, part in enumerate(path.split("\\")):
            prefix = "\\".join(path.split("\\")[: i + 1])
            if prefix not in self.kcbs:
                self.kcbs[prefix] = self.control_block(part, parent)
            parent = self.kcbs[prefix]
        # builds whose offsets lack _CM_KEY_BODY: its head (u32 Type, KeyControlBlock) is fixed since NT 5
        body = StructBuf(self.o, "_CM_KEY_BODY", self.o.size("_CM_KEY_BODY") or (0x68 if self.x64 else 0x2C))
        body.put(self.o.get("_CM_KEY_BODY.Type") or 0, CM_KEY_BODY_TYPE, 4)
        body.put(self.o.get("_CM_KEY_BODY.KeyControlBlock") or self.ps, parent, "p")
        return self.new_object("Key", body=bytes(body.buf))

    def info_header_sizes(self) -> list[int]:
        """Sizes of the optional headers by InfoMask bit (creator, name, handle, quota, process, audit,
        extended, padding)."""
        o = self.o
        creator = o.size("_OBJECT_HEADER_CREATOR_INFO") or (0x20 if self.x64 else 0x10)
        name = o.size("_OBJECT_HEADER_NAME_INFO") or (0x20 if self.x64 else 0x10)
        return [creator, name, 0x10 if self.x64 else 8, 0x20 if self.x64 else 0x10, 0x10 if self.x64 else 8,
                0x10 if self.x64 else 8, 0x10 if self.x64 else 8, 4]

    def new_object(self, type_name: str, *, name: str | None = None, body: bytes | None = None,
                   pool: Bump | None = None) -> int:
        """A pool block [pool header][name info][object header][body]; returns the body's address."""
        o = self.o
        ph = 16 if self.x64 else 8
        hoff = o["_OBJECT_HEADER.Body"]
        name_size = self.info_header_sizes()[1] if name is not None else 0
        if body is None:
            body = bytes(BODY_SIZE[type_name][0 if self.x64 else 1])
        total = (ph + name_size + hoff + len(body) + ph - 1) // ph * ph
        pool = pool or self.ppool
        block = pool.alloc(total, ph)
        hdr = block + ph + name_size
        if name is not None:
            ni = StructBuf(o, "_OBJECT_HEADER_NAME_INFO", name_size)
            data = utf16(name)
            bva = self.ppool.put(data + b"\0\0", 8)
            base = ni.off("Name")
            ni.put(base, len(data), 2)
            ni.put(base + 2, len(data) + 2, 2)
            ni.put(base + o["_UNICODE_STRING.Buffer"], bva, "p")
            self.kas.write(hdr - name_size, bytes(ni.buf))
        oh = StructBuf(o, "_OBJECT_HEADER", hoff)
        oh.set("PointerCount", 1)
        oh.set("HandleCount", 1)
        ti = type_index(type_name)
        if self.ob_cookie is not None:
            ti ^= ((hdr >> 8) & 0xFF) ^ self.ob_cookie
        oh.set("TypeIndex", ti, 1)
        oh.set("InfoMask", 2 if name is not None else 0, 1)
        self.kas.write(hdr, bytes(oh.buf))
        self.kas.write(hdr + hoff, body)
        tag = TAGS[type_name]
        if self.x64:
            self.kas.write(block, struct.pack("<BBBB4s", 0, 0, total // 16, 2, tag))
        else:
            self.kas.write(block, struct.pack("<I4s", ((total // 8) << 16) | (1 << 25), tag))
        return hdr + hoff

    def file_object(self, path: str) -> int:
        fo = StructBuf(self.o, "_FILE_OBJECT")
        fo.put(0, 5, 2)  # Type = IO_TYPE_FILE
        fo.put(2, len(fo.buf), 2)
        fo.set("DeviceObject", self.device_object)
        self.unicode_string(fo, "FileName", path, self.ppool)
        return self.new_object("File", body=bytes(fo.buf))

    # ---- per process ----------------------------------------------------------------------------
    def handle_specs(self, s: dict[str, Any], pf: dict[str, Any]) -> list[dict[str, Any]]:
        """(type, name, object) of each handle of the process, in handle order."""
        pid = s["pid"]
        out: list[dict[str, Any]] = []

        def add(kind: str, obj: int, name: str) -> None:
            out.append({"type": kind, "object": obj, "name": name})

        def named(kind: str, name: str) -> None:
            add(kind, self.new_object(kind, name=name), name)

        def file(path: str) -> None:
            add("File", self.file_object(path), f"\\Device\\{VOLUME}{path}")

        if s["path"] is None:  # System / Registry: kernel handles
            file("\\pagefile.sys" if s["name"] == "System" else "\\Windows\\System32\\config\\SYSTEM")
            named("Event", "LowMemoryCondition")
        else:
            file("\\Windows\\System32")  # the current directory
            named("Mutant", f"SM0:{pid}:168:WilStaging_02")
            named("Event", f"TermSrvReadyEvent{pid}")
            named("Section", f"windows_shell_global_counters_{pid}")
            file(s["path"][2:] if s["path"][1:2] == ":" else s["path"].replace("\\SystemRoot", "\\Windows"))
            for key in KEYS:
                add("Key", self.key_object(key), key)
            if s["name"] == "notepad.exe":
                file("\\Users\\demo\\notes.txt")
        for t in pf["threads"][:1]:
            add("Thread", t["ethread"], f"Tid {t['tid']} Pid {pid}")
        parent = self.eprocess_by_pid.get(pf["ppid"])
        if parent is not None and pf["ppid"] != pid:
            add("Process", parent, f"{self.process_names[pf['ppid']]} Pid {pf['ppid']}")
        if s["name"] == BIG_TABLE_PROCESS and not self.facts.get("big_handle_table"):
            # more handles than one table page holds (255 x64 / 511 x86 usable entries): two levels
            per_page = PAGE // (16 if self.x64 else 8)
            events = [self.new_object("Event", name=f"DcomLaunchEvent{i}") for i in range(8)]
            for i in range(per_page + 40):
                add("Event", events[i % 8], f"DcomLaunchEvent{i % 8}")
            self.facts["big_handle_table"] = pid
        return out

    def build_handles(self, ep: StructBuf, eva: int, s: dict[str, Any], pf: dict[str, Any]) -> None:
        """The process's handle table (``_EPROCESS.ObjectTable``); the ground truth in ``pf["handles"]``."""
        self.eprocess_by_pid[s["pid"]] = eva
        self.process_names[s["pid"]] = s["name"][:15]
        specs = self.handle_specs(s, pf)
        per_page = PAGE // (16 if self.x64 else 8)
        hoff = self.o["_OBJECT_HEADER.Body"]
        pages: list[bytearray] = []
        handles = []
        slot = 1  # entry 0 of each page is never handed out
        for h in specs:
            if slot % per_page == 0:
                slot += 1
            page, idx = divmod(slot, per_page)
            while len(pages) <= page:
                pages.append(bytearray(PAGE))
            access = ACCESS.get(h["type"], 0x1F0001)
            header = h["object"] - hoff
            if self.x64 and self.modern:
                low = ((header & ((1 << 48) - 1)) >> 4) << 20 | 1
                struct.pack_into("<QQ", pages[page], idx * 16, low, access)
            elif self.x64:
                struct.pack_into("<QQ", pages[page], idx * 16, header | 1, access)
            else:
                struct.pack_into("<II", pages[page], idx * 8, header | 1, access)
            handles.append({"handle": slot * 4, **h, "access": access})
            slot += 1
        vas = [self.ppool.put(bytes(p), PAGE) for p in pages]
        if len(vas) == 1:
            table_code = vas[0]
        else:
            top = b"".join(self.pack_ptr(v) for v in vas)
            table_code = self.ppool.put(top.ljust(PAGE, b"\0"), PAGE) | 1
        ht = bytearray(0x80 if self.x64 else 0x40)
        struct.pack_into("<Q" if self.x64 else "<I", ht, 8 if self.modern else 0, table_code)
        ep.set("ObjectTable", self.pool.put(bytes(ht), 16))
        pf["handles"] = handles
        pf["handle_table_levels"] = table_code & 3
