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

import numpy as np

from ...errors import FormatError
from ...mem.view import MemoryView

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


def decode(kmem: MemoryView, t: KallsymsTables, *, check: dict[str, int] | None = None,
           pointer_size: int = 8) -> SymbolTable:
    """Decode all symbols. ``check`` (name -> known address, e.g. VMCOREINFO's ``_stext``) picks the
    offset convention that reproduces known addresses (absolute-percpu vs plain base-relative)."""
    if not 0 < t.num_syms <= MAX_SYMS:
        raise FormatError("kernel memory", t.num_syms, "kallsyms_num_syms", f"implausible count {t.num_syms}")
    span = t.token_table - t.names
    if not 0 < span <= MAX_NAMES_BYTES:
        span = MAX_NAMES_BYTES if t.markers is None else t.markers - t.names
        if not 0 < span <= MAX_NAMES_BYTES:
            raise FormatError("kernel memory", t.names, "kallsyms_names", "cannot bound the names table")
    names_blob = _read(kmem, t.names, span, "kallsyms_names")
    tok_idx = struct.unpack("<256H", _read(kmem, t.token_index, 512, "kallsyms_token_index"))
    tok_span = max(tok_idx) + 256
    tok_blob = _read(kmem, t.token_table, tok_span, "kallsyms_token_table")
    tokens: list[str] = []
    for i in range(256):
        s = tok_idx[i]
        e = tok_blob.find(b"\0", s)
        tokens.append(tok_blob[s:e if e >= 0 else len(tok_blob)].decode("latin-1"))
    offs = np.frombuffer(_read(kmem, t.offsets, 4 * t.num_syms, "kallsyms_offsets"), dtype="<i4")

    n = t.num_syms
    names: list[str] = []
    append = names.append
    blob = names_blob
    end = len(blob)
    pos = 0
    join = "".join
    for _ in range(n):
        if pos >= end:
            raise FormatError("kernel memory", t.names + pos, "kallsyms_names", "entries run past the table")
        ln = blob[pos]
        if ln & 0x80:
            ln = (ln & 0x7F) | (blob[pos + 1] << 7)
            pos += 2
        else:
            pos += 1
        append(join([tokens[c] for c in blob[pos:pos + ln]]))
        pos += ln
    types = [s[:1] for s in names]
    names = [s[1:] for s in names]

    base = t.relative_base
    mask = (1 << (8 * pointer_size)) - 1
    o64 = offs.astype(np.int64)
    with np.errstate(over="ignore"):
        absolute = (np.where(o64 >= 0, o64.astype(np.uint64), np.uint64((base - 1) & mask) + (-o64).astype(np.uint64))
                    if pointer_size == 8 else None)
        relative = (np.uint64(base) + (o64 & 0xFFFFFFFF).astype(np.uint64)) & np.uint64(mask)
    cands = [c for c in (absolute, relative) if c is not None]
    chosen = cands[0]
    if check:
        idx = {nm: i for i, nm in enumerate(names) if nm in check}
        for c in cands:
            if idx and all(int(c[i]) == check[nm] for nm, i in idx.items()):
                chosen = c
                break
        else:
            raise FormatError("kernel memory", t.offsets, "kallsyms_offsets",
                              f"no offset convention reproduces {sorted(check)}")
    return SymbolTable(names, types, chosen.tolist(), "kallsyms")


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
