"""Walking kernel lists safely, for every OS layer: bounded, loop-safe, impossible links rejected.

Kernel lists read from a dump or a running machine can be smeared (a pointer changed mid-read),
dangling, looped, or hold values no kernel pointer can have (1, 0x10, an odd address, a link so low
that the structure around it would start below address 0). Every walk is capped, remembers what it
has seen, and returns what it could read plus human-readable warnings -- never raises, never loops.
Callers report the warnings with :func:`report` (Python ``warnings`` + the layer's ``warnings`` list).
"""

from __future__ import annotations

import logging
import warnings as _warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CappedSizeWarning, IncompleteWalkWarning, PymemflowError
from ..mem.view import MemoryView

log = logging.getLogger(__name__)

CAPPED = "; capped at "
"""What :func:`pymemflow.os.caps.capped` writes into a note (how :func:`report` tells it apart)."""

DEFAULT_CAP = 65536
"""More processes / modules / tasks than any real machine holds; a bound on corrupt lists."""


@dataclass
class ListWalk:
    """The entries of a list (addresses of the link inside each element) and what went wrong."""

    entries: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.warnings


def impossible_link(ptr: int, *, ptr_size: int, link_offset: int = 0, span: int = 0) -> str | None:
    """Why ``ptr`` cannot be a link inside a structure (``link_offset`` bytes into it, ``span``
    bytes long), or None when it can."""
    top = 1 << (8 * ptr_size)
    if ptr < link_offset:
        return f"{ptr:#x} is below the link's offset {link_offset:#x} in its structure"
    if ptr % min(ptr_size, 8):
        return f"{ptr:#x} is not {ptr_size}-byte aligned"
    if ptr - link_offset + max(span, ptr_size) > top:
        return f"{ptr:#x} leaves no room for the structure below the top of the address space"
    return None


def read_link(mem: MemoryView, addr: int, ptr_size: int) -> int:
    """One pointer of ``ptr_size`` bytes (raises PymemflowError when unreadable)."""
    if ptr_size == mem.pointer_size:
        return mem.read_ptr(addr)
    return mem.read_u64(addr) if ptr_size == 8 else mem.read_u32(addr)


def walk_list(
    mem: MemoryView,
    head: int,
    *,
    ptr_size: int = 8,
    cap: int = DEFAULT_CAP,
    skip: frozenset[int] | set[int] = frozenset(),
    what: str = "list",
    link_offset: int = 0,
    span: int = 0,
    reader: Callable[[int], int] | None = None,
) -> ListWalk:
    """Follow forward links from the link at ``head`` until they come back to ``head``.

    ``head`` itself is not returned (it is the list head, not an element). Addresses in ``skip``
    are stepped over without being returned (e.g. a list head met when walking from an element).
    ``link_offset``/``span`` describe the element structure, so links that cannot lie inside one are
    rejected. Stops with a warning on an unreadable, null or impossible link, a loop that does not
    pass through ``head``, or after ``cap`` entries.
    """
    out = ListWalk()
    seen = {head}
    mask = (1 << (8 * ptr_size)) - 1
    read = reader or (lambda a: read_link(mem, a, ptr_size))
    try:
        cur = read(head)
    except (PymemflowError, OverflowError, ValueError) as e:
        out.warnings.append(f"{what}: cannot read head at {head:#x}: {e}")
        return out
    while True:
        cur &= mask
        if cur == head:
            return out
        n = len(out.entries)
        if cur == 0:
            out.warnings.append(f"{what}: null link after {n} entries")
            return out
        if cur in seen:
            out.warnings.append(f"{what}: loop at {cur:#x} after {n} entries (list does not return to its head)")
            return out
        why = impossible_link(cur, ptr_size=ptr_size, link_offset=link_offset, span=span)
        if why is not None and cur not in skip:
            out.warnings.append(f"{what}: impossible link after {n} entries: {why}")
            return out
        if n >= cap:
            out.warnings.append(f"{what}: stopped after {cap} entries (cap)")
            return out
        seen.add(cur)
        if cur not in skip:
            out.entries.append(cur)
        try:
            cur = read(cur)
        except (PymemflowError, OverflowError, ValueError) as e:
            out.warnings.append(f"{what}: dangling link {cur:#x} after {len(out.entries)} entries: {e}")
            return out


def report(layer: str, texts: list[str], sink: list[str] | None = None,
           category: type[Warning] = IncompleteWalkWarning) -> None:
    """Issue each text as a Python warning (``layer: text``) and append it to ``sink`` (the layer's
    ``warnings`` attribute), so CLI users see it on stderr and Python callers can inspect it. A
    note from :func:`pymemflow.os.caps.capped` among walk notes is issued as a CappedSizeWarning."""
    for t in texts:
        log.debug("%s: %s", layer, t)
        cat = CappedSizeWarning if category is IncompleteWalkWarning and CAPPED in t else category
        _warnings.warn(f"{layer}: {t}", cat, stacklevel=3)
        if sink is not None:
            sink.append(t)
