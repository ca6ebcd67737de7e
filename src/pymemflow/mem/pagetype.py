"""Page-type hints: what kind of page a physical read is for, so a cache can pick what to keep.

Page tables and read-only pages change rarely and are read over and over during translation, so
the page cache keeps them; ordinary data may change under a live target and is read through.
The reader sets the hint around its reads (a ``contextvars`` variable, so threads and asyncio
tasks each have their own)::

    with page_type_hint(PageType.PAGE_TABLE):
        phys.read_gather(entry_addresses, 8)

Reads without a hint are ``PageType.UNKNOWN``.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterator
from contextlib import contextmanager


class PageType(enum.IntFlag):
    UNKNOWN = 1
    PAGE_TABLE = 2
    READ_ONLY = 4
    WRITEABLE = 8
    NOEXEC = 16

    @classmethod
    def parse(cls, text: str) -> PageType:
        """``page_table``, ``page_table+read_only``, ``all``, ``none`` -> flags."""
        t = text.strip().lower()
        if t == "all":
            return cls.all()
        if t in ("none", ""):
            return cls(0)
        flags = cls(0)
        for part in t.replace("|", "+").split("+"):
            name = part.strip().upper()
            if name not in cls.__members__:
                allowed = ", ".join(m.lower() for m in cls.__members__) + ", all"
                raise ValueError(f"{part.strip()!r} is not a page type (allowed: {allowed}; join with +)")
            flags |= cls[name]
        return flags

    @classmethod
    def all(cls) -> PageType:
        out = cls(0)
        for m in cls:
            out |= m
        return out


DEFAULT_CACHED = PageType.PAGE_TABLE | PageType.READ_ONLY
"""What ``cache=true`` keeps (memflow's default too)."""

_current: contextvars.ContextVar[int] = contextvars.ContextVar("pymemflow_page_type", default=int(PageType.UNKNOWN))
"""Plain int bits: IntFlag arithmetic costs microseconds, too much on the single-read path."""


def current_page_type() -> PageType:
    return PageType(_current.get())


def current_page_type_bits() -> int:
    """The hint as int flags (for hot paths)."""
    return _current.get()


@contextmanager
def page_type_hint(page_type: PageType) -> Iterator[None]:
    """Mark every physical read inside the ``with`` block as reading pages of ``page_type``."""
    token = _current.set(int(page_type))
    try:
        yield
    finally:
        _current.reset(token)
