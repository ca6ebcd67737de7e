"""Kernel pool allocations as Windows lays them out: a _POOL_HEADER (tag, block size, pool type)
right before the body, so pool-tag scanners (volatility3's poolscanner, pymemflow's psscan/netscan)
carve them from memory as they do on a real machine."""

from __future__ import annotations

import struct

from .memory import AddressSpace, Bump

NONPAGED = 2
"""_POOL_HEADER.PoolType of an in-use non-paged block on Vista and later (the type + 1, shifted)."""


def header_size(x64: bool) -> int:
    return 16 if x64 else 8


def pool_header(x64: bool, block_bytes: int, tag: bytes, pool_type: int = NONPAGED) -> bytes:
    """The _POOL_HEADER bytes: x64 PreviousSize/PoolIndex/BlockSize/PoolType bytes (16-byte units),
    x86 a 9/7/9/7-bit packed ULONG (8-byte units), then the 4-byte tag."""
    if x64:
        return struct.pack("<BBBB4sQ", 0, 0, block_bytes // 16, pool_type, tag, 0)
    return struct.pack("<I4s", ((block_bytes // 8) << 16) | (pool_type << 25), tag)


def pool_alloc(pool: Bump, kas: AddressSpace, x64: bool, tag: bytes, body: bytes) -> int:
    """Allocate one tagged block holding ``body`` right after its header; returns the body's address."""
    ph = header_size(x64)
    total = (ph + len(body) + ph - 1) // ph * ph
    block = pool.alloc(total, ph)
    kas.write(block, pool_header(x64, total, tag) + body)
    return block + ph
