"""The kernel log from the lockless printk ring buffer (5.10+): ``prb`` -> descriptor ring + data ring.

Offsets come from VMCOREINFO (the kernel publishes them for exactly this purpose), so it works without
BTF too. Records are read in three bulk reads (descriptors, infos, text ring) and decoded locally.
"""

from __future__ import annotations

import struct

from ...errors import NotFoundError
from ...mem.view import MemoryView
from ..base import LogRecord
from .kread import read_obj, read_ptr
from .vmcoreinfo import VmcoreInfo

MAX_COUNT_BITS = 20
"""CONFIG_LOG_BUF_SHIFT is at most 25 and count_bits = size_bits - PRB_AVGBITS (5)."""
MAX_DATA_BITS = 25


def read_log(kmem: MemoryView, vi: VmcoreInfo) -> list[LogRecord]:
    o, s = vi.offsets, vi.sizes
    prb_sym = vi.symbols.get("prb")
    need = ["printk_ringbuffer.desc_ring", "prb_desc_ring.descs", "printk_info.text_len",
            "prb_data_ring.data", "prb_data_blk_lpos.begin"]
    if prb_sym is None or any(k not in o for k in need):
        raise NotFoundError("linux: this kernel's VMCOREINFO does not describe the printk ring buffer "
                            "(needs 5.10+ with SYMBOL(prb) and its OFFSETs)")
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
    descs = kmem.read(descs_at, count * desc_sz, zero_fill=True)
    infos = kmem.read(infos_at, count * info_sz, zero_fill=True)
    data = kmem.read(data_at, dsize, zero_fill=True)
    sv_off, lpos_off = o.get("prb_desc.state_var", 0), o.get("prb_desc.text_blk_lpos", ps)
    begin_off, next_off = o["prb_data_blk_lpos.begin"], o.get("prb_data_blk_lpos.next", ps)
    seq_off, ts_off, tl_off = o.get("printk_info.seq", 0), o.get("printk_info.ts_nsec", 8), o["printk_info.text_len"]
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
        txt = data[start + ps: start + ps + ln].decode("utf-8", "replace")
        seq = struct.unpack_from("<Q", infos, ib + seq_off)[0]
        ts = struct.unpack_from("<Q", infos, ib + ts_off)[0]
        fl = infos[ib + tl_off + 3]
        out.append(LogRecord(seq, ts / 1e9, fl >> 5, infos[ib + tl_off + 2], txt))
    out.sort(key=lambda r: r.seq)
    return out
