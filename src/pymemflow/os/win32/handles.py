"""Handle tables: ``_EPROCESS.ObjectTable`` -> ``_HANDLE_TABLE.TableCode``; its low two bits are the
number of levels above the entry pages (0: one page of ``_HANDLE_TABLE_ENTRY``; 1: a page of pointers
to entry pages; 2: a page of pointers to such pages). Entry ``i`` of entry page ``p`` is handle
``(p * entries_per_page + i) * 4``.

Entry decoding per build (facts of the published layouts):

- 64-bit Windows 8+: ``ObjectPointerBits`` = bits 20..63 of the first quadword; header address =
  those bits << 4 with the kernel's top 16 bits set; ``GrantedAccessBits`` = low 25 bits of the second.
- 32-bit Windows 8+: header = first dword & ~7 (``InfoTable``); access = low 25 bits of the second.
- Windows 7: ``Object`` = header with the three attribute bits below it, ``GrantedAccess`` after it.

Object names as volatility prints them: files ``\\Device\\<volume><FileName>``, processes
``<ImageFileName> Pid N``, threads ``Tid T Pid P``, keys their path from the key control block chain
(``MACHINE\\SOFTWARE\\...``), everything else its name info header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import NotFoundError, PymemflowError
from ..base import Process
from ..forensics import HandleInfo
from .fields import maybe
from .modules import read_unicode_strings
from .objects import ObjectLayout, ObjectTypes

if TYPE_CHECKING:
    from .kernel import Win32Kernel

MAX_ENTRY_PAGES = 1 << 16
"""Entry pages per table at most (16M handles: the per-process limit of Windows)."""
PAGE = 0x1000
PAGES_PER_READ = 1024
"""Entry pages per batched read (4 MiB)."""
ACCESS_MASK = (1 << 25) - 1
KEY_HIVE_ENTRY = 0x4


@dataclass(frozen=True)
class HandleLayout:
    table_code: int
    entry_size: int
    pointer_bits: bool
    """Windows 8+ x64 entries (ObjectPointerBits)."""
    ptr: int

    @classmethod
    def for_kernel(cls, k: Win32Kernel) -> HandleLayout:
        off = k.offsets
        ptr = off.pointer_size
        modern = k.facts.build >= 9200
        tc = maybe(off, "_HANDLE_TABLE.TableCode")
        if tc is None:
            tc = 8 if modern else 0  # NextHandleNeedingPool + ExtraInfoPages precede it since Windows 8
        return cls(tc, 2 * ptr, modern and ptr == 8, ptr)

    def decode(self, raw: bytes, at: int) -> tuple[int, int] | None:
        """(object header address, granted access) of the entry at ``raw[at:]``, None when free."""
        if self.ptr == 8:
            low, high = struct.unpack_from("<QQ", raw, at)
            if self.pointer_bits:
                bits = low >> 20
                return (((bits << 4) | 0xFFFF000000000000), high & ACCESS_MASK) if bits else None
            obj = low & ~7  # Windows 7: OBJ_HANDLE_ATTRIBUTES (lock, inherit, audit) in the low 3 bits
        else:
            low, high = struct.unpack_from("<II", raw, at)
            obj = low & ~7
        return (obj, high & ACCESS_MASK) if obj else None


def entry_pages(k: Win32Kernel, table_code: int, lay: HandleLayout, what: str,
                warnings: list[str]) -> list[tuple[int, int]]:
    """(page index, page address) of every entry page under ``table_code`` (levels resolved, bounded)."""
    levels = table_code & 3
    if levels > 2:
        warnings.append(f"{what}: TableCode {table_code:#x} has {levels} levels (at most 2 exist); skipped")
        return []
    fmt = "<Q" if lay.ptr == 8 else "<I"
    per = PAGE // lay.ptr
    pages = [(0, table_code & ~3)]
    for _ in range(levels):
        res = k.kmem.read_batch([a for _, a in pages], PAGE)
        bad = {f.index for f in res.failures}
        nxt = []
        for j, (idx, addr) in enumerate(pages):
            if j in bad:
                warnings.append(f"{what}: handle table page {addr:#x} unreadable")
                continue
            ptrs = struct.unpack(f"<{per}{fmt[1]}", res.piece(j))
            nxt += [(idx * per + i, p) for i, p in enumerate(ptrs) if p]
        first: dict[int, int] = {}  # page -> its first index
        for i, p in nxt:
            first.setdefault(p, i)
        unique = [(i, p) for p, i in first.items()]
        if len(unique) < len(nxt):
            warnings.append(f"{what}: {len(nxt) - len(unique)} table pointers repeat a page (smeared?); read once")
            nxt = unique
        if len(nxt) > MAX_ENTRY_PAGES:
            warnings.append(f"{what}: more than {MAX_ENTRY_PAGES} handle pages; capped")
            nxt = nxt[:MAX_ENTRY_PAGES]
        pages = nxt
    return pages


def process_handles(k: Win32Kernel, proc: Process, types: ObjectTypes, olay: ObjectLayout,
                    warnings: list[str]) -> list[HandleInfo]:
    info = proc.info
    lay = HandleLayout.for_kernel(k)
    what = f"pid {info.pid} handle table"
    try:
        table = k.kmem.read_ptr(info.address + k.offsets["_EPROCESS.ObjectTable"])
        if not table:
            return []  # exited processes have none
        table_code = k.kmem.read_ptr(table + lay.table_code)
    except PymemflowError as e:
        warnings.append(f"{what}: unreadable ({e})")
        return []
    pages = entry_pages(k, table_code, lay, what, warnings)
    if not pages:
        return []
    per = PAGE // lay.entry_size
    found: list[tuple[int, int, int]] = []  # (handle, header, access)
    for c in range(0, len(pages), PAGES_PER_READ):  # bounded memory per batch
        chunk = pages[c : c + PAGES_PER_READ]
        res = k.kmem.read_batch([a for _, a in chunk], PAGE)
        bad = {f.index for f in res.failures}
        for j, (idx, addr) in enumerate(chunk):
            if j in bad:
                warnings.append(f"{what}: entry page {addr:#x} unreadable")
                continue
            raw = res.piece(j)
            for i in range(1, per):  # entry 0 of a page is never a handle
                got = lay.decode(raw, i * lay.entry_size)
                if got is not None:
                    found.append(((idx * per + i) * 4, got[0], got[1]))
    if not found:
        return []
    hdr_span = olay.body
    hres = k.kmem.read_batch([h for _, h, _ in found], hdr_span)
    hbad = {f.index for f in hres.failures}
    out: list[HandleInfo] = []
    name_infos: list[tuple[int, int]] = []  # (row, name info address)
    unreadable = [(handle, header) for j, (handle, header, _) in enumerate(found) if j in hbad]
    if unreadable:  # one warning per table: a smeared page would otherwise give hundreds
        handle, header = unreadable[0]
        warnings.append(f"{what}: {len(unreadable)} handles with an unreadable object header (first: handle "
                        f"{handle:#x}, header {header:#x}); skipped")
    for j, (handle, header, access) in enumerate(found):
        if j in hbad:
            continue
        raw = hres.piece(j)
        kind = types.type_of(header, raw[olay.type_index])
        h = HandleInfo(info.pid, handle, kind, "", header + olay.body, access)
        ni = olay.name_info(header, raw[olay.info_mask])
        if ni is not None:
            name_infos.append((len(out), ni))
        out.append(h)
    _name_from_headers(k, olay, out, name_infos)
    _special_names(k, out, warnings)
    return out


def _read_ustrs(k: Win32Kernel, addrs: list[int], ptr: int, buf_off: int) -> list[str]:
    """UNICODE_STRINGs at ``addrs`` (two batched reads)."""
    if not addrs:
        return []
    res = k.kmem.read_batch(addrs, buf_off + ptr)
    bad = {f.index for f in res.failures}
    fmt = "<Q" if ptr == 8 else "<I"
    strings = []
    for j in range(len(addrs)):
        if j in bad:
            strings.append((0, 0))
            continue
        raw = res.piece(j)
        strings.append((struct.unpack_from("<H", raw, 0)[0], struct.unpack_from(fmt, raw, buf_off)[0]))
    return read_unicode_strings(k.kmem, strings)


def _name_from_headers(k: Win32Kernel, olay: ObjectLayout, rows: list[HandleInfo],
                       name_infos: list[tuple[int, int]]) -> None:
    names = _read_ustrs(k, [a + olay.name for _, a in name_infos], olay.ptr, olay.ustr_buffer)
    for (row, _), name in zip(name_infos, names, strict=True):
        rows[row].name = name


def _special_names(k: Win32Kernel, rows: list[HandleInfo], warnings: list[str]) -> None:
    """Files, processes and threads are named from their bodies (volatility's names)."""
    off = k.offsets
    ptr = k.kmem.pointer_size
    fmt = "<Q" if ptr == 8 else "<I"
    files = [h for h in rows if h.type == "File"]
    fn, dev = off.get("_FILE_OBJECT.FileName"), off.get("_FILE_OBJECT.DeviceObject")
    if files and fn is not None:
        paths = _read_ustrs(k, [h.address + fn for h in files], ptr, off.get("_UNICODE_STRING.Buffer") or ptr)
        devices = ["" for _ in files]
        if dev is not None:
            res = k.kmem.read_batch([h.address + dev for h in files], ptr)
            bad = {f.index for f in res.failures}
            ptrs = [0 if j in bad else struct.unpack(fmt, res.piece(j))[0] for j in range(len(files))]
            devices = _device_names(k, ptrs)
        for h, path, device in zip(files, paths, devices, strict=True):
            h.name = (f"\\Device\\{device}" if device else "") + path
    procs = [h for h in rows if h.type == "Process"]
    pid_off, name_off = off.get("_EPROCESS.UniqueProcessId"), off.get("_EPROCESS.ImageFileName")
    if procs and pid_off is not None and name_off is not None:
        span = max(pid_off + ptr, name_off + 15)
        res = k.kmem.read_batch([h.address for h in procs], span)
        bad = {f.index for f in res.failures}
        for j, h in enumerate(procs):
            if j not in bad:
                raw = res.piece(j)
                image = bytes(raw[name_off : name_off + 15]).split(b"\0", 1)[0].decode("latin-1")
                h.name = f"{image} Pid {struct.unpack_from(fmt, raw, pid_off)[0]}"
    keys = [h for h in rows if h.type == "Key"]
    if keys:
        _key_names(k, keys, warnings)
    threads = [h for h in rows if h.type == "Thread"]
    cid = off.get("_ETHREAD.Cid")
    if threads and cid is not None:
        res = k.kmem.read_batch([h.address + cid for h in threads], 2 * ptr)
        bad = {f.index for f in res.failures}
        for j, h in enumerate(threads):
            if j not in bad:
                pid, tid = struct.unpack(f"<2{fmt[1]}", res.piece(j))
                h.name = f"Tid {tid} Pid {pid}"


def _key_names(k: Win32Kernel, keys: list[HandleInfo], warnings: list[str]) -> None:
    """``_CM_KEY_BODY.KeyControlBlock`` -> the ``ParentKcb`` chain; each control block's ``NameBlock``
    names one path element (the root's, REGISTRY, is left out, as volatility prints them). Windows 10
    1607+ adds hive-entry control blocks (flag KEY_HIVE_ENTRY) whose name is skipped."""
    off = k.offsets
    ptr = k.kmem.pointer_size
    parent, block = off.get("_CM_KEY_CONTROL_BLOCK.ParentKcb"), off.get("_CM_KEY_CONTROL_BLOCK.NameBlock")
    nlen, name = off.get("_CM_NAME_CONTROL_BLOCK.NameLength"), off.get("_CM_NAME_CONTROL_BLOCK.Name")
    if parent is None or block is None or nlen is None or name is None:
        warnings.append(f"key names need _CM_KEY_CONTROL_BLOCK/_CM_NAME_CONTROL_BLOCK offsets; {off.source} "
                        "lacks them")
        return
    body_kcb = off.get("_CM_KEY_BODY.KeyControlBlock") or ptr  # after the u32 Type since NT 5
    flag_bits = off.bits("_CM_KEY_CONTROL_BLOCK.Flags")
    flag_plain = off.get("_CM_KEY_CONTROL_BLOCK.Flags") if flag_bits is None else None
    skip_hive_entries = k.facts.build >= 14393

    def flags_of(raw: bytes) -> int:
        if flag_bits is not None:
            o, pos, ln = flag_bits
            return (int.from_bytes(raw[o : o + 4], "little") >> pos) & ((1 << ln) - 1)
        return int.from_bytes(raw[flag_plain : flag_plain + 2], "little") if flag_plain is not None else 0

    span = max(parent, block, (flag_bits or (0, 0, 0))[0] + 4, (flag_plain or 0) + 2) + ptr
    cache: dict[int, tuple[int, int, int]] = {}  # kcb -> (parent, name block, flags)
    names: dict[int, str] = {}

    def kcb(addr: int) -> tuple[int, int, int] | None:
        if addr not in cache:
            try:
                raw = k.kmem.read(addr, span)
            except PymemflowError:
                return None
            cache[addr] = (int.from_bytes(raw[parent : parent + ptr], "little"),
                           int.from_bytes(raw[block : block + ptr], "little"), flags_of(raw))
        return cache[addr]

    def element(nb: int) -> str | None:
        if nb not in names:
            try:
                head = k.kmem.read(nb, name)
                length = min(int.from_bytes(head[nlen : nlen + 2], "little"), 0x200)
                raw = k.kmem.read(nb + name, length)
            except PymemflowError:
                return None
            compressed = head[0] & 1
            names[nb] = raw.decode("latin-1") if compressed else raw.decode("utf-16-le", errors="replace")
        return names[nb]

    res = k.kmem.read_batch([h.address + body_kcb for h in keys], ptr)
    bad = {f.index for f in res.failures}
    for j, h in enumerate(keys):
        if j in bad:
            continue
        cur = int.from_bytes(res.piece(j), "little")
        parts: list[str] = []
        seen: set[int] = set()
        while cur and len(parts) <= 128:
            node = kcb(cur)
            if node is None or node[0] in seen:
                warnings.append(f"pid {h.pid} key handle {h.handle:#x}: control block chain broken at {cur:#x}")
                break
            if not node[0]:
                break  # the root (REGISTRY) is not printed
            seen.add(node[0])
            if skip_hive_entries and node[2] & KEY_HIVE_ENTRY:
                cur = node[0]
                node = kcb(cur)
                if node is None:
                    break
            text = element(node[1])
            if text is None:
                break
            parts.append(text)
            cur = node[0]
        h.name = "\\".join(reversed(parts))


def _device_names(k: Win32Kernel, devices: list[int]) -> list[str]:
    """Names of device objects (their name info headers), cached per device."""
    olay = ObjectLayout.from_offsets(k.offsets)
    uniq = sorted({d for d in devices if d})
    if not uniq:
        return ["" for _ in devices]
    res = k.kmem.read_batch([d - olay.body for d in uniq], olay.body)
    bad = {f.index for f in res.failures}
    where = []
    for j, d in enumerate(uniq):
        ni = None if j in bad else olay.name_info(d - olay.body, res.piece(j)[olay.info_mask])
        where.append((d, ni))
    named = [(d, ni) for d, ni in where if ni is not None]
    names = dict(zip([d for d, _ in named],
                     _read_ustrs(k, [ni + olay.name for _, ni in named], olay.ptr, olay.ustr_buffer), strict=True))
    return [names.get(d, "") for d in devices]


def all_handles(k: Win32Kernel, proc: Process | None, type_name: str | None) -> list[HandleInfo]:
    if k.offsets.get("_EPROCESS.ObjectTable") is None:
        raise NotFoundError(f"handles need _EPROCESS.ObjectTable; offsets {k.offsets.source} lack it")
    olay = ObjectLayout.from_offsets(k.offsets)
    types = ObjectTypes.load(k)
    procs = [proc] if proc is not None else k.process_list()
    warnings: list[str] = []
    out: list[HandleInfo] = []
    for p in procs:
        if p.info.extra.get("kernel") or not p.info.address:
            continue
        out += process_handles(k, p, types, olay, warnings)
    k._warn(warnings)
    if type_name:
        low = type_name.lower()
        out = [h for h in out if h.type.lower() == low]
    return out
