"""Walking Windows doubly linked lists (``LIST_ENTRY``) safely.

Kernel lists read from a dump or a running machine can be smeared (a pointer changed mid-read),
dangling, or looped. Every walk here is capped, remembers what it has seen, and returns what it
could read plus human-readable warnings instead of raising or looping forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import PymemflowError
from ...mem.view import MemoryView

DEFAULT_CAP = 65536
"""More processes / modules than any real Windows machine holds; a bound on corrupt lists."""


@dataclass
class ListWalk:
    """The entries of a list (addresses of the ``LIST_ENTRY`` inside each element) and what went wrong."""

    entries: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.warnings


def walk_list(
    mem: MemoryView,
    head: int,
    *,
    ptr_size: int = 8,
    cap: int = DEFAULT_CAP,
    skip: frozenset[int] | set[int] = frozenset(),
    what: str = "list",
) -> ListWalk:
    """Follow ``Flink`` from the ``LIST_ENTRY`` at ``head`` until it comes back to ``head``.

    ``head`` itself is not returned (it is the list head, not an element). Addresses in ``skip``
    are stepped over without being returned (e.g. a list head met when walking from an element).
    Stops with a warning on an unreadable or null link, a loop that does not pass through ``head``,
    or after ``cap`` entries.
    """
    out = ListWalk()
    seen = {head}
    mask = (1 << (8 * ptr_size)) - 1
    try:
        cur = mem.read_ptr(head) if ptr_size == mem.pointer_size else _read_ptr(mem, head, ptr_size)
    except PymemflowError as e:
        out.warnings.append(f"{what}: cannot read head at {head:#x}: {e}")
        return out
    while True:
        cur &= mask
        if cur == head:
            return out
        if cur == 0:
            out.warnings.append(f"{what}: null link after {len(out.entries)} entries")
            return out
        if cur in seen:
            out.warnings.append(
                f"{what}: loop at {cur:#x} after {len(out.entries)} entries (list does not return to its head)"
            )
            return out
        if len(out.entries) >= cap:
            out.warnings.append(f"{what}: stopped after {cap} entries (cap)")
            return out
        seen.add(cur)
        if cur not in skip:
            out.entries.append(cur)
        try:
            cur = _read_ptr(mem, cur, ptr_size)
        except PymemflowError as e:
            out.warnings.append(f"{what}: dangling link {cur:#x} after {len(out.entries)} entries: {e}")
            return out


def _read_ptr(mem: MemoryView, addr: int, ptr_size: int) -> int:
    return mem.read_u64(addr) if ptr_size == 8 else mem.read_u32(addr)
