"""Windows timeline sources: process create/exit (carved by psscan when the layer has it, else the
process list's EPROCESS CreateTime/ExitTime), thread create/exit, module load times from the loader
entries (``_LDR_DATA_TABLE_ENTRY.LoadTime``, Windows 8+) and socket create times (the default)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ...errors import PymemflowError
from ..forensics import TimelineEvent, iso_from_filetime
from ..timeline import Source, carved_process_events, socket_events, thread_events
from .fields import user_layout
from .listwalk import walk_list
from .modules import MAX_MODULES, parse_ustr, read_unicode_strings

if TYPE_CHECKING:
    from .kernel import Win32Kernel


def process_events(k: Win32Kernel) -> Iterable[TimelineEvent]:
    """Carved processes (psscan: unlinked ones too) when the layer carves, else the listed ones."""
    try:
        return list(carved_process_events(k))
    except NotImplementedError:
        return list(listed_process_events(k))


def listed_process_events(k: Win32Kernel) -> Iterable[TimelineEvent]:
    off = k.offsets
    ct, et = off.get("_EPROCESS.CreateTime"), off.get("_EPROCESS.ExitTime")
    infos = [i for i in k.process_info_list() if i.address]
    if ct is None or not infos:
        return
    res = k.kmem.read_batch([i.address + ct for i in infos], 8)
    ends = k.kmem.read_batch([i.address + et for i in infos], 8) if et is not None else None
    bad = {f.index for f in res.failures}
    bad_end = {f.index for f in ends.failures} if ends is not None else set()
    for n, i in enumerate(infos):
        what = f"{i.name} (pid {i.pid}, ppid {i.ppid})"
        created = None if n in bad else iso_from_filetime(struct.unpack("<q", res.piece(n))[0])
        if created:
            yield TimelineEvent(created, "process", "created", what, i.pid, i.address)
        if ends is not None and n not in bad_end and i.state == "dead":
            exited = iso_from_filetime(struct.unpack("<q", ends.piece(n))[0])
            if exited:
                yield TimelineEvent(exited, "process", "exited", f"{what} exit code {i.exit_code}", i.pid, i.address)


def module_load_events(k: Win32Kernel) -> Iterable[TimelineEvent]:
    """``LoadTime`` of every native loader entry of every process (where the build's entry has one)."""
    off = k.offsets
    load = off.get("_LDR_DATA_TABLE_ENTRY.LoadTime")
    if load is None:
        return
    lay = user_layout(off)
    fmt = "<Q" if lay.ptr == 8 else "<I"
    span = max(lay.entry_span, load + 8)
    warnings: list[str] = []
    for proc in k.process_list():
        peb = proc.info.extra.get("peb", 0)
        if not peb:
            continue
        mem = proc.memory
        try:
            ldr = struct.unpack(fmt, mem.read(peb + lay.peb_ldr, lay.ptr))[0]
        except PymemflowError as e:
            warnings.append(f"pid {proc.info.pid}: PEB {peb:#x} unreadable: {e}")
            continue
        if not ldr:
            continue
        walk = walk_list(mem, ldr + lay.ldr_list, ptr_size=lay.ptr, cap=MAX_MODULES,
                         what=f"pid {proc.info.pid} PEB.Ldr", span=span)
        warnings += walk.warnings
        if not walk.entries:
            continue
        res = mem.read_batch(walk.entries, span)
        bad = {f.index for f in res.failures}
        rows = [(e, res.piece(i)) for i, e in enumerate(walk.entries) if i not in bad]
        names = read_unicode_strings(mem, [parse_ustr(raw, lay.entry_full, lay.ptr, lay.ustr_buffer)
                                           for _, raw in rows], warnings)
        for (entry, raw), name in zip(rows, names, strict=True):
            when = iso_from_filetime(struct.unpack_from("<q", raw, load)[0])
            base = struct.unpack_from(fmt, raw, lay.entry_base)[0]
            if when:
                yield TimelineEvent(when, "module", "loaded", f"{name or '?'} at {base:#x} in {proc.info.name}",
                                    proc.info.pid, entry)
    k._warn(warnings)


def win32_timeline_sources(k: Win32Kernel) -> list[Source]:
    return [lambda: process_events(k), lambda: thread_events(k), lambda: module_load_events(k),
            lambda: socket_events(k)]
