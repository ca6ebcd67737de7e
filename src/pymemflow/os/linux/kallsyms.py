"""Decode the kernel's compressed symbol table (kallsyms) straight from its memory.

Layout (scripts/kallsyms.c): ``kallsyms_names`` is a run of entries ``len, token...`` (``len`` takes two
bytes when its top bit is set, 6.1+), each token indexes ``kallsyms_token_table`` (NUL-terminated strings,
located through the u16 ``kallsyms_token_index``); the first expanded character is the nm-style type.
Addresses come from the s32 ``kallsyms_offsets`` relative to ``kallsyms_relative_base`` (x86-64 keeps
per-cpu symbols absolute: non-negative offsets are absolute values, negative ones count down from the
base). Everything is bounded by the tables' own extents, so a corrupt image cannot make us loop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import FormatError
from ...mem.view import MemoryView

if TYPE_CHECKING:
    import numpy as np
else:
    from ...mem.lazynp import np

MAX_SYMS = 2_000_000
MAX_NAMES_BYTES = 64 << 20


@dataclass
class KallsymsTables:
    names: int
    num_syms: int
    token_table: int
    token_index: int
    offsets: int
    relative_base: int
    markers: int | None = None


class SymbolTable:
    """Name -> address (and type), plus address -> name for ``symbolize``."""

    def __init__(self, names: list[str], types: list[str], addrs: list[int], source: str) -> None:
        self.names = names
        self.types = types
        self.addrs = addrs
        self.source = source
        self._by_name: dict[str, int] = {}
        for n, a in zip(names, addrs, strict=False):
            self._by_name.setdefault(n, a)
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self.lost = 0
        """Symbols the table should hold but could not be decoded (damaged pages)."""

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str) -> int | None:
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> int:
        return self._by_name[name]

    def merged(self, other: SymbolTable) -> SymbolTable:
        """This table plus the names only ``other`` has (e.g. an ISF's data symbols next to kallsyms)."""
        extra = [(n, t, a) for n, t, a in other.items() if n not in self._by_name]
        return SymbolTable(self.names + [e[0] for e in extra], self.types + [e[1] for e in extra],
                           self.addrs + [e[2] for e in extra], f"{self.source}+{other.source}" if extra else self.source)

    def items(self) -> list[tuple[str, str, int]]:
        return list(zip(self.names, self.types, self.addrs, strict=True))

    def symbolize(self, addr: int) -> tuple[str, int] | None:
        """Nearest symbol at or below ``addr`` and the distance to it."""
        if self._sorted is None:
            a = np.array(self.addrs, dtype=np.uint64)
            order = np.argsort(a, kind="stable")
            self._sorted = (a[order], order)
        a, order = self._sorted
        i = int(np.searchsorted(a, np.uint64(addr), side="right")) - 1
        if i < 0:
            return None
        return self.names[int(order[i])], addr - int(a[i])


def _read(kmem: MemoryView, addr: int, n: int, what: str) -> bytes:
    data, failures = kmem._read_single(addr, n)
    if failures:
        raise FormatError("kernel memory", addr, what, f"{len(failures)} unreadable piece(s) in {n} bytes")
    return data


def _read_tolerant(kmem: MemoryView, addr: int, n: int) -> tuple[bytes, np.ndarray]:
    """``n`` bytes (unreadable parts zero) and a per-byte mask of what could not be read."""
    res = kmem.read_batch([addr], [n])
    bad = np.zeros(n, dtype=bool)
    for f in res.failures:
        lo = f.address - addr
        bad[max(lo, 0): max(lo + f.length, 0)] = True
    return res.data.tobytes(), bad


def _entries(blob: bytes, bad: np.ndarray | None, pos: int, count: int, tokens: list[str]
             ) -> tuple[list[str], int] | None:
    """``count`` names from ``pos``; None when one runs off the table or touches an unreadable byte
    (``bad`` None: all readable, the fast path)."""
    out: list[str] = []
    end = len(blob)
    join = "".join
    for _ in range(count):
        if pos >= end:
            return None
        ln = blob[pos]
        head = 1
        if ln & 0x80:
            if pos + 1 >= end:
                return None
            ln = (ln & 0x7F) | (blob[pos + 1] << 7)
            head = 2
        stop = pos + head + ln
        if stop > end or (bad is not None and bad[pos:stop].any()):
            return None
        out.append(join([tokens[c] for c in blob[pos + head: stop]]))
        pos = stop
    return out, pos


def _find_markers(blob: bytes, bad: np.ndarray, first: int, n_blocks: int) -> list[int] | None:
    """``kallsyms_markers`` (the names offset of every 256th symbol; it follows the names table):
    found by its first two values, known from decoding the first block."""
    for fmt in ("<I", "<Q"):
        w = struct.calcsize(fmt)
        at = blob.find(struct.pack(fmt[0] + fmt[1] * 2, 0, first))
        while at >= 0:
            if at % w == 0 and at + w * n_blocks <= len(blob) and not bad[at: at + w * n_blocks].any():
                vals = list(struct.unpack_from(f"{fmt[0]}{n_blocks}{fmt[1]}", blob, at))
                if all(a < b for a, b in zip(vals, vals[1:], strict=False)) and vals[-1] < at:
                    return vals
            at = blob.find(struct.pack(fmt[0] + fmt[1] * 2, 0, first), at + 1)
    return None


def decode(kmem: MemoryView, t: KallsymsTables, *, check: dict[str, int] | None = None,
           pointer_size: int = 8) -> SymbolTable:
    """Decode all symbols. ``check`` (name -> known address, e.g. VMCOREINFO's ``_stext``) picks the
    offset convention that reproduces known addresses (absolute-percpu vs plain base-relative).

    Damaged pages cost only the symbols on them: the names table is decoded in its blocks of 256
    (``kallsyms_markers``, found after the names), a block that touches an unreadable byte is dropped,
    and so is a symbol whose offset is unreadable; ``SymbolTable.lost`` says how many. The token
    tables (1 KiB or so) must be intact.
    """
    if not 0 < t.num_syms <= MAX_SYMS:
        raise FormatError("kernel memory", t.num_syms, "kallsyms_num_syms", f"implausible count {t.num_syms}")
    span = t.token_table - t.names
    if not 0 < span <= MAX_NAMES_BYTES:
        span = MAX_NAMES_BYTES if t.markers is None else t.markers - t.names
        if not 0 < span <= MAX_NAMES_BYTES:
            raise FormatError("kernel memory", t.names, "kallsyms_names", "cannot bound the names table")
    names_blob, bad = _read_tolerant(kmem, t.names, span)
    tok_idx = struct.unpack("<256H", _read(kmem, t.token_index, 512, "kallsyms_token_index"))
    tok_span = max(tok_idx) + 256
    tok_blob = _read(kmem, t.token_table, tok_span, "kallsyms_token_table")
    tokens: list[str] = []
    for i in range(256):
        s = tok_idx[i]
        e = tok_blob.find(b"\0", s)
        tokens.append(tok_blob[s:e if e >= 0 else len(tok_blob)].decode("latin-1"))
    offs_raw, offs_bad = _read_tolerant(kmem, t.offsets, 4 * t.num_syms)
    offs = np.frombuffer(offs_raw, dtype="<i4")

    n = t.num_syms
    badm = bad if bad.any() else None
    n_blocks = (n + 255) // 256
    first = _entries(names_blob, badm, 0, min(256, n), tokens)
    markers = _find_markers(names_blob, bad, first[1], n_blocks) if first is not None and n > 256 else None
    full: list[str | None] = [None] * n
    if markers is not None:
        # block by block: a block whose end is not the next marker was decoded from damaged bytes
        for blk, start in enumerate(markers):
            got = _entries(names_blob, badm, start, min(256, n - 256 * blk), tokens)
            if got is not None and (blk + 1 == n_blocks or got[1] == markers[blk + 1]):
                full[256 * blk: 256 * blk + len(got[0])] = got[0]
    else:  # no markers found: the intact prefix only
        pos = 0
        for blk in range(n_blocks):
            got = _entries(names_blob, badm, pos, min(256, n - 256 * blk), tokens)
            if got is None:
                break
            full[256 * blk: 256 * blk + len(got[0])] = got[0]
            pos = got[1]
    sym_ok = np.array([nm is not None for nm in full], dtype=bool)
    sym_ok &= ~offs_bad.reshape(-1, 4).any(axis=1)
    if not sym_ok.any():
        raise FormatError("kernel memory", t.names, "kallsyms_names", "no symbol could be decoded")
    types = [nm[:1] if nm is not None else "" for nm in full]
    names = [nm[1:] if nm is not None else "" for nm in full]

    base = t.relative_base
    mask = (1 << (8 * pointer_size)) - 1
    o64 = offs.astype(np.int64)
    with np.errstate(over="ignore"):
        absolute = (np.where(o64 >= 0, o64.astype(np.uint64), np.uint64((base - 1) & mask) + (-o64).astype(np.uint64))
                    if pointer_size == 8 else None)
        relative = (np.uint64(base) + (o64 & 0xFFFFFFFF).astype(np.uint64)) & np.uint64(mask)
    cands = [c for c in (absolute, relative) if c is not None]
    chosen = cands[0]
    idx = {nm: i for i, nm in enumerate(names) if check and nm in check and sym_ok[i]}
    if idx:
        assert check is not None
        for c in cands:
            if all(int(c[i]) == check[nm] for nm, i in idx.items()):
                chosen = c
                break
        else:
            raise FormatError("kernel memory", t.offsets, "kallsyms_offsets",
                              f"no offset convention reproduces {sorted(check)}")
    keep = np.flatnonzero(sym_ok).tolist()
    addrs = chosen.tolist()
    table = SymbolTable([names[i] for i in keep], [types[i] for i in keep], [addrs[i] for i in keep], "kallsyms")
    table.lost = n - len(keep)
    return table


def load_system_map(path: str, kaslr_offset: int = 0) -> SymbolTable:
    """A ``System.map`` (``ADDR TYPE NAME`` per line), shifted by the runtime KASLR offset."""
    names: list[str] = []
    types: list[str] = []
    addrs: list[int] = []
    with open(path, encoding="ascii", errors="replace") as fh:
        for no, line in enumerate(fh, 1):
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                a = int(parts[0], 16)
            except ValueError:
                raise FormatError(path, None, f"line {no}", f"not 'ADDRESS TYPE NAME': {line.strip()[:80]!r}") from None
            names.append(parts[2])
            types.append(parts[1])
            addrs.append(a + kaslr_offset if parts[1] not in "aA" else a)
    if "_stext" not in names and "_text" not in names:
        first = " ".join(names[:1] + types[:1])
        raise FormatError(path, 0, "System.map", f"not a usable System.map: {len(names)} line(s) and no _stext/_text "
                          f"symbol (Debian ships a stub; the real one is in the -dbg package){': ' + first if first else ''}")
    return SymbolTable(names, types, addrs, f"System.map {path}")
