"""``phys.map``: which physical ranges the connector backs; everything else reads as zeros."""

from __future__ import annotations

from typing import Any

from ..mem.phys import Connector


def phys_ranges(phys: Connector) -> list[tuple[int, int]] | None:
    """(start, end) ranges the connector backs, from its memory map (through middleware), or None
    when the connector publishes no map."""
    seen = 0
    obj: Any = phys
    while obj is not None and seen < 16:
        seen += 1
        mm = getattr(type(obj), "memory_map", None)
        if isinstance(mm, property):
            m = obj.memory_map
        else:
            m = getattr(obj, "mem_map", None)
        if m is not None:
            return [(r.base, r.end) for r in m.ranges]
        obj = getattr(obj, "inner", None)
    return None


def phys_map_rows(phys: Connector) -> list[dict[str, Any]]:
    """Rows of backed ranges and the holes between them up to ``max_address``."""
    end = int(phys.metadata.max_address)
    ranges = phys_ranges(phys)
    if ranges is None:
        return [{"start": 0, "end": end, "size": end, "kind": "unknown (no memory map: holes read as zeros)"}]
    rows: list[dict[str, Any]] = []
    pos = 0
    for s, e in sorted(ranges):
        if s > pos:
            rows.append({"start": pos, "end": s, "size": s - pos, "kind": "hole (reads as zeros)"})
        rows.append({"start": s, "end": e, "size": e - s, "kind": "ram"})
        pos = max(pos, e)
    if pos < end:
        rows.append({"start": pos, "end": end, "size": end - pos, "kind": "hole (reads as zeros)"})
    return rows
