"""Walking Windows doubly linked lists (``LIST_ENTRY``) safely: the shared walker of
:mod:`pymemflow.os.walk` (capped, loop-safe, impossible links rejected, warnings instead of errors)."""

from __future__ import annotations

from ..walk import DEFAULT_CAP, ListWalk, walk_list

__all__ = ["DEFAULT_CAP", "ListWalk", "walk_list"]
