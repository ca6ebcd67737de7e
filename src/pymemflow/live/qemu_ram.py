"""Where a QEMU process keeps guest RAM, and which guest-physical addresses map to it.

Two ways, best first:

* **QMP** (exact): ``query-memdev`` names and sizes the RAM backends, ``info mtree -f`` gives the
  guest-physical ranges of each backend and their offsets inside it, and ``gpa2hva`` gives the host
  address of one guest address per backend. Without ``gpa2hva`` (old QEMU) the host mapping is the
  read-write mapping whose size equals the backend size (never "the largest mapping": under TCG that
  is the 1 GiB translated-code cache), confirmed against QEMU's ``xp``.
* **Heuristic** (command line only): RAM size from ``-m``/the backend, host mapping by size (or the
  backend's ``mem-path`` file), guest layout from the machine type: ``pc`` keeps up to 3.5 GiB below
  4 GiB (3 GiB when RAM >= 3.5 GiB), ``q35`` up to 2.75 GiB (2 GiB when RAM >= 2.75 GiB); the rest
  starts at 4 GiB, after the PCI hole.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import PymemflowError
from .procfs import MapEntry
from .qemu_cmdline import QemuCommandLine
from .qemu_regs import parse_registers
from .qmp import QmpClient, QmpError
from .rangemap import HostRange

FOUR_G = 1 << 32


class RamNotFoundError(PymemflowError):
    """Guest RAM could not be located in the QEMU process."""


@dataclass
class RamLayout:
    ranges: list[HostRange]
    method: str
    """'qmp', 'qmp-size-match', 'heuristic' or 'override'."""
    notes: list[str] = field(default_factory=list)
    registers: list[dict[str, Any]] = field(default_factory=list)
    """Per-CPU registers read over QMP at open (see :mod:`pymemflow.live.qemu_regs`)."""


_MTREE_RE = re.compile(
    r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio (-?\d+), ([a-z/]+)\): (\S+)(?: @([0-9a-f]+))?", re.I)


@dataclass(frozen=True)
class MtreeEntry:
    start: int
    end: int
    """Exclusive."""
    kind: str
    name: str
    offset: int


def parse_mtree_flat(text: str) -> list[MtreeEntry]:
    """Entries of the FlatView that serves address space "memory" (system memory) in ``info mtree -f``.

    FlatView numbers change between runs, so we find the view by its ``AS "memory"`` line."""
    entries: list[MtreeEntry] = []
    in_memory = False
    in_view = False
    for line in text.splitlines():
        if line.startswith("FlatView"):
            in_view, in_memory = True, False
            if entries:
                break
            continue
        if not in_view:
            continue
        if line.strip().startswith('AS "memory"'):
            in_memory = True
            continue
        if not in_memory:
            continue
        m = _MTREE_RE.match(line)
        if m:
            start, last = int(m.group(1), 16), int(m.group(2), 16)
            entries.append(MtreeEntry(start, last + 1, m.group(4), m.group(5), int(m.group(6) or "0", 16)))
    return entries


_GPA2HVA_RE = re.compile(r"is (0x[0-9a-f]+)", re.I)


def layout_from_qmp(q: QmpClient, maps: list[MapEntry],
                    read_host: Callable[[int, int], bytes | None] | None = None) -> RamLayout:
    """Exact layout through QMP (see module docstring). ``read_host(addr, n)`` reads the QEMU process's
    memory; it confirms a size-matched mapping when ``gpa2hva`` is missing."""
    memdevs = q.cmd("query-memdev") or []
    sizes = {str(d.get("id")): int(d.get("size", 0)) for d in memdevs if d.get("id")}
    if not sizes:
        raise RamNotFoundError("QMP query-memdev lists no memory backend")
    entries = [e for e in parse_mtree_flat(q.hmp("info mtree -f"))
               if e.name in sizes and e.kind in ("ram", "rom", "romd")]
    if not entries:
        raise RamNotFoundError("QMP 'info mtree -f' shows no range of backends " + ", ".join(sizes))
    notes: list[str] = []
    bases: dict[str, int] = {}
    method = "qmp"
    for name in sorted({e.name for e in entries}):
        first = next(e for e in entries if e.name == name)
        hva: int | None = None
        try:
            m = _GPA2HVA_RE.search(q.hmp(f"gpa2hva {first.start:#x}"))
            if m:
                hva = int(m.group(1), 16) - first.offset
        except QmpError:
            hva = None
        if hva is None:
            method = "qmp-size-match"
            base, note = mapping_by_size(q, maps, sizes[name], [e for e in entries if e.name == name],
                                         read_host)
            hva = base
            notes.append(f"{name}: {note}")
        bases[name] = hva
    ranges = [HostRange(e.start, e.end - e.start, bases[e.name] + e.offset) for e in entries]
    try:
        regs = parse_registers(q.hmp("info registers -a"))
    except QmpError:
        regs = []
    return RamLayout(ranges, method, notes, regs)


def _xp_words(q: QmpClient, gpa: int, count: int) -> list[int]:
    """QEMU's own view of ``count`` u64 words from ``gpa`` (``xp /COUNTgx``)."""
    words: list[int] = []
    for line in q.hmp(f"xp /{count}gx {gpa:#x}").splitlines():
        _, sep, rest = line.partition(":")
        if sep:
            words.extend(int(w, 16) for w in re.findall(r"0x[0-9a-f]+", rest))
    return words[:count]


def ram_candidates(maps: list[MapEntry], size: int, ram_file: str | None = None) -> list[MapEntry]:
    """Host mappings that can hold ``size`` bytes of guest RAM: the backing file's mapping when RAM is a
    file, else read-write non-executable anonymous/shared mappings of exactly that size (QEMU may round
    up to a huge-page multiple, so up to 2 MiB more is accepted after the exact ones)."""
    if ram_file:
        files = [m for m in maps if m.path == ram_file and m.offset == 0 and m.readable]
        if files:
            return sorted(files, key=lambda m: -m.size)
    rw = [m for m in maps if m.perms[:3] == "rw-" and (m.anonymous or m.path.startswith("/memfd:")
                                                       or m.path.startswith("/dev/") or m.shared)]
    exact = [m for m in rw if m.size == size]
    near = [m for m in rw if size < m.size <= size + (2 << 20)]
    return exact + near


def mapping_by_size(q: QmpClient, maps: list[MapEntry], size: int, entries: list[MtreeEntry],
                    read_host: Callable[[int, int], bytes | None] | None, probes: int = 16) -> tuple[int, str]:
    """Host base of a backend when gpa2hva is missing: among the mappings of the backend's size, the one
    whose bytes agree with QEMU's ``xp`` best, on ``probes`` pages spread over the backend's largest guest
    range (only non-zero words count: zero pages agree with anything). Returns (base, note)."""
    cands = ram_candidates(maps, size)
    if not cands:
        raise RamNotFoundError(f"no read-write mapping of {size:#x} bytes in the QEMU process")
    if read_host is None:
        return cands[0].start, f"host mapping chosen by size {size:#x}, unchecked"
    # first and last page of each range (low ranges hold the BIOS and real-mode tables: rarely zero),
    # plus pages spread over the largest range
    spots: list[tuple[int, MtreeEntry]] = []
    for e in entries[:8]:
        spots += [(e.start & ~0xFFF, e), ((e.end - 1) & ~0xFFF, e)]
    big = max(entries, key=lambda e: e.end - e.start)
    pages = (big.end - big.start) // 4096
    spots += [(big.start + (pages * k // probes) * 4096, big) for k in range(probes)]
    truth = [(g, e, _xp_words(q, g, min(512, (e.end - g) // 8))) for g, e in spots if e.start <= g < e.end]
    best, best_hits, total = cands[0].start, -1, sum(sum(1 for w in ws if w) for _, _, ws in truth)
    for c in cands:
        hits = 0
        for g, e, words in truth:
            if not words:
                continue
            data = read_host(c.start + e.offset + g - e.start, 8 * len(words))
            if data is None:
                continue
            host = struct.unpack(f"<{len(data) // 8}Q", data)
            hits += sum(1 for a, b in zip(words, host, strict=False) if a and a == b)
        if hits > best_hits:
            best, best_hits = c.start, hits
    return best, (f"host mapping chosen by size {size:#x} among {len(cands)}: {best_hits} of {total} "
                  "non-zero probe words agree with xp")


def machine_layout(family: str, size: int) -> list[tuple[int, int, int]]:
    """(guest base, size, offset in RAM) of RAM for a machine family, QEMU's split rules."""
    if family == "q35":
        lowmem = 0x80000000 if size >= 0xB0000000 else 0xB0000000
    elif family == "pc":
        lowmem = 0xC0000000 if size >= 0xE0000000 else 0xE0000000
    elif family == "virt":  # arm/riscv 'virt': RAM starts at 1 GiB (arm) -- a best guess
        return [(0x40000000, size, 0)]
    else:
        return [(0, size, 0)]
    below = min(size, lowmem)
    parts = [(0, below, 0)]
    if size > below:
        parts.append((FOUR_G, size - below, below))
    return parts


def layout_from_heuristic(cmd: QemuCommandLine, maps: list[MapEntry], map_base: int | None = None,
                          map_size: int | None = None) -> RamLayout:
    """Layout from the command line and the process's mappings (no QMP)."""
    size = map_size or cmd.mem_size
    notes: list[str] = []
    if map_base is not None:
        host = map_base
        method = "override"
        notes.append(f"host mapping given: map_base={map_base:#x} map_size={size:#x}")
    else:
        cands = ram_candidates(maps, size, cmd.ram_file)
        if not cands:
            raise RamNotFoundError(
                f"no read-write mapping of {size:#x} bytes (the VM's RAM size from its command line) in QEMU "
                f"process; give map_base=HOST_ADDRESS,map_size=SIZE, or a QMP socket with qmp=PATH")
        host = cands[0].start
        method = "heuristic"
        if len(cands) > 1:
            notes.append(f"{len(cands)} mappings of {size:#x} bytes; took the first at {host:#x}")
    fam = cmd.machine_family
    parts = machine_layout(fam, size)
    notes.append(f"guest layout from machine type {cmd.machine!r} ({fam}): "
                 + ", ".join(f"[{b:#x}, {b + s:#x})" for b, s, _ in parts))
    return RamLayout([HostRange(b, s, host + o) for b, s, o in parts], method, notes)
