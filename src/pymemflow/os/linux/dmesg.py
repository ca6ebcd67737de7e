"""The kernel log from the lockless printk ring buffer (5.10+): ``prb`` -> descriptor ring + data ring.

Offsets come from VMCOREINFO (the kernel publishes them for exactly this purpose), so it works without
BTF too. Records are read in three bulk reads (descriptors, infos, text ring) and decoded locally.
"""

from __future__ import annotations

import struct

from ...errors import NotFoundError
from ...mem.view import MemoryView
from ..base import LogRecord
from .kread import outside, read_obj, read_ptr
from .vmcoreinfo import VmcoreInfo

MAX_COUNT_BITS = 20
"""CONFIG_LOG_BUF_SHIFT is at most 25 and count_bits = size_bits - PRB_AVGBITS (5)."""
MAX_DATA_BITS = 25
MAX_RECORD = 1024
"""Bytes of one descriptor or printk_info (real ones: 24 and 88); a larger SIZE() is corrupt."""


def _bulk(kmem: MemoryView, addr: int, n: int, what: str, lost: list[str] | None
          ) -> tuple[bytes, list[tuple[int, int]]]:
    """``n`` bytes at ``addr`` (unreadable parts zero) and the unreadable ``(start, end)`` offsets,
    noted in ``lost``: records there are dropped, not shown as NULs."""
    if outside(kmem, addr, n):
        if lost is not None:
            lost.append(f"printk ring: {what} at {addr:#x} (+{n:#x}) is not a kernel address; its records are lost")
        return bytes(n), [(0, n)]
    res = kmem.read_batch([addr], [n])
    holes = [(f.address - addr, f.address - addr + f.length) for f in res.failures]
    if holes and lost is not None:
        bad = sum(e - b for b, e in holes)
        lost.append(f"printk ring: {bad:#x} of {n:#x} bytes of {what} unreadable; records there are lost")
    return res.data.tobytes(), holes


def read_log(kmem: MemoryView, vi: VmcoreInfo, warnings: list[str] | None = None) -> list[LogRecord]:
    """The log records, oldest first; unreadable parts of the ring are noted in ``warnings``."""
    o, s = vi.offsets, vi.sizes
    prb_sym = vi.symbols.get("prb")
    need = ["printk_ringbuffer.desc_ring", "printk_ringbuffer.text_data_ring", "prb_desc_ring.descs",
            "prb_desc_ring.infos", "prb_desc_ring.count_bits", "printk_info.text_len", "prb_data_ring.data",
            "prb_data_ring.size_bits", "prb_data_blk_lpos.begin"]  # every o[...] below (a torn copy lacks some)
    if prb_sym is None or any(k not in o for k in need):
        missing = [k for k in need if k not in o] or ["SYMBOL(prb)"]
        raise NotFoundError(f"linux: this kernel's VMCOREINFO does not describe the printk ring buffer (no "
                            f"{missing[0]}; needs 5.10+ with SYMBOL(prb) and its OFFSETs)")
    ps = kmem.pointer_size
    prb = read_ptr(kmem, prb_sym) or prb_sym
    dr = prb + o["printk_ringbuffer.desc_ring"]
    tr = prb + o["printk_ringbuffer.text_data_ring"]
    d = read_obj(kmem, dr, s.get("prb_desc_ring", 48))
    t = read_obj(kmem, tr, s.get("prb_data_ring", 32))
    count_bits = d.u32(o["prb_desc_ring.count_bits"])
    size_bits = t.u32(o["prb_data_ring.size_bits"])
    if not 0 < count_bits <= MAX_COUNT_BITS or not 0 < size_bits <= MAX_DATA_BITS:
        raise NotFoundError(f"linux: printk ring buffer sizes look corrupt (count_bits={count_bits}, "
                            f"size_bits={size_bits})")
    count, dsize = 1 << count_bits, 1 << size_bits
    descs_at, infos_at = d.ptr(o["prb_desc_ring.descs"]), d.ptr(o["prb_desc_ring.infos"])
    data_at = t.ptr(o["prb_data_ring.data"])
    desc_sz, info_sz = s.get("prb_desc", 3 * ps), s.get("printk_info", 88)
    descs, _ = _bulk(kmem, descs_at, count * desc_sz, "the descriptors", warnings)  # zeros: not committed
    infos, info_holes = _bulk(kmem, infos_at, count * info_sz, "the record infos", warnings)
    data, text_holes = _bulk(kmem, data_at, dsize, "the text ring", warnings)
    sv_off, lpos_off = o.get("prb_desc.state_var", 0), o.get("prb_desc.text_blk_lpos", ps)
    begin_off, next_off = o["prb_data_blk_lpos.begin"], o.get("prb_data_blk_lpos.next", ps)
    seq_off, ts_off, tl_off = o.get("printk_info.seq", 0), o.get("printk_info.ts_nsec", 8), o["printk_info.text_len"]
    if (not 0 < desc_sz <= MAX_RECORD or not 0 < info_sz <= MAX_RECORD
            or min(sv_off, lpos_off, begin_off, next_off, seq_off, ts_off, tl_off) < 0
            or max(sv_off, lpos_off + begin_off, lpos_off + next_off) + ps > desc_sz
            or max(seq_off + 8, ts_off + 8, tl_off + 4) > info_sz):
        raise NotFoundError("linux: VMCOREINFO's printk offsets do not fit its record sizes (corrupt?)")
    fmt = "<Q" if ps == 8 else "<I"
    shift = 8 * ps - 2
    out: list[LogRecord] = []
    for i in range(count):
        db = i * desc_sz
        sv = struct.unpack_from(fmt, descs, db + sv_off)[0]
        if (sv >> shift) & 3 not in (1, 2):  # committed or finalized
            continue
        begin = struct.unpack_from(fmt, descs, db + lpos_off + begin_off)[0]
        nxt = struct.unpack_from(fmt, descs, db + lpos_off + next_off)[0]
        if begin & 1 or nxt & 1 or begin == nxt:
            continue
        if begin >> size_bits == nxt >> size_bits:
            start, ln = begin & (dsize - 1), nxt - begin
        elif (begin + dsize) >> size_bits == nxt >> size_bits:
            start, ln = 0, nxt & (dsize - 1)
        else:
            continue
        ib = i * info_sz
        text_len = struct.unpack_from("<H", infos, ib + tl_off)[0]
        ln = min(ln - ps, text_len)
        if ln < 0 or start + ps + ln > dsize:
            continue
        if any(b < start + ps + ln and start < e for b, e in text_holes) or \
                any(b < ib + info_sz and ib < e for b, e in info_holes):
            continue
        txt = data[start + ps: start + ps + ln].decode("utf-8", "replace")
        seq = struct.unpack_from("<Q", infos, ib + seq_off)[0]
        ts = struct.unpack_from("<Q", infos, ib + ts_off)[0]
        fl = infos[ib + tl_off + 3]
        out.append(LogRecord(seq, ts / 1e9, fl >> 5, infos[ib + tl_off + 2], txt))
    out.sort(key=lambda r: r.seq)
    return out
