"""VAD trees: balanced trees of _MMVAD / _MMVAD_SHORT pool allocations (Windows 8+: _RTL_BALANCED_NODE;
Windows 7: _MMADDRESS_NODE), image VADs naming their file through Subsection -> ControlArea."""

from __future__ import annotations

import struct
from typing import Any

from .base import BuilderBase
from .profiles import VAD_IMAGE
from .structs import StructBuf, utf16


class VadMixin(BuilderBase):
    def build_vad_tree(self, vads: list[dict[str, Any]]) -> tuple[int, int]:
        """A balanced binary tree of VAD nodes (AVL shape) in the pool; returns (root VA, count)."""
        o = self.o
        avl = "_MMVAD_SHORT.VadNode" in o  # Windows 8.1+: _RTL_BALANCED_NODE; Windows 7: _MMADDRESS_NODE
        # Windows 8.1+: 32-bit VPNs plus a high byte each; Windows 7 x64: pointer-wide VPNs, no high byte
        high = "_MMVAD_SHORT.StartingVpnHigh" in o
        nodes: list[int] = []
        bufs: list[StructBuf] = []
        for v in vads:
            image = v["type"] == VAD_IMAGE
            b = StructBuf(o, "_MMVAD" if image else "_MMVAD_SHORT")
            core = "_MMVAD_SHORT"
            flags_off = o[f"{core}.u"]
            sv, ev = v["start"] >> 12, v["end"] >> 12
            b.put(o[f"{core}.StartingVpn"], sv & 0xFFFFFFFF if high else sv, 4 if high else "p")
            b.put(o[f"{core}.EndingVpn"], ev & 0xFFFFFFFF if high else ev, 4 if high else "p")
            if high:
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
            if avl:
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
