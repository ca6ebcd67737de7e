"""State and helpers shared by the parts of the machine builder (kernel, processes, user space, VADs)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ..os.win32.offsets import Win32Offsets, resolve_offsets
from .image import Module
from .memory import PAGE, AddressSpace, Bump, FrameAllocator, SparsePhys
from .profiles import PROFILES, Profile
from .structs import StructBuf, utf16


class BuilderBase:
    # set by the kernel part
    kbase: int
    ksize: int
    pool_va: int
    ppool_va: int
    session_va: int
    kuser_k: int
    kuser_pa: int
    self_ref: int
    symbols_rva: dict[str, int]
    pool: Bump
    ppool: Bump
    nt: Module
    kmods: list[Module]
    # set by the process / user-space parts
    dlls: dict[str, tuple[AddressSpace, Module, dict[int, bytes]]]
    user_spaces: list[tuple[AddressSpace, AddressSpace]]
    min_processes: int = 0
    """At least this many processes (the demo connector's ``processes=N``)."""
    sessions: dict[int, int]
    session_vmap: dict[int, int]
    session_blobs: tuple[int, dict[int, bytes], list[int]]
    pae_spaces: list[AddressSpace]
    ob_cookie: int | None

    def __init__(self, profile: Profile, seed: int, size: int, offsets: Win32Offsets | None = None) -> None:
        self.p = profile
        self.seed = seed
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.o = offsets or resolve_offsets(guid_age=profile.guid_age, arch=profile.arch,
                                            pdb_name=profile.pdb_name, build=profile.version)
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

    def map_image(self, aspace: AddressSpace, base: int, blobs: dict[int, bytes], extra_rvas: list[int],
                  user: bool, shared_from: AddressSpace | None = None, fixed_phys: int | None = None) -> None:
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
            elif fixed_phys is not None:
                self.phys.page(fixed_phys + p)
                aspace.map_page(base + p, fixed_phys + p, user=user, write=False, nx=False)
            else:
                aspace.alloc_map(base + p, 1, user=user, write=False, nx=False)
        if shared_from is None:
            for rva, data in blobs.items():
                aspace.write(base + rva, data)
