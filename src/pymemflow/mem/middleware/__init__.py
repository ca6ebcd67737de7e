"""Middleware a user stacks on a connector: latency simulation, a page cache, metrics.

The chain code calls :func:`wrap` with the connector's parsed ``:``-keys (:data:`MIDDLEWARE_ARGS`)::

    pymemflow -c raw:/x.img:cache=true,cache_size=4m,metrics=5s info

Order, from the connector up: delay (innermost), cache, metrics (outermost) -- so metrics see what
the caller sees, and the cache hides the simulated latency on hits.
"""

from __future__ import annotations

from typing import Any

from ...types import ArgSpec, parse_bool, parse_duration, parse_size
from ..pagetype import DEFAULT_CACHED, PageType
from ..phys import PhysicalMemory
from .base import Middleware
from .cache import CountValidity, PageCache, TimeValidity, parse_validity
from .delay import DelayMemory
from .metrics import MetricsMemory


def parse_cache(text: str | bool | PageType) -> PageType:
    """``cache``: true/false, or the page types to keep (``page_table+read_only``, ``all``)."""
    if isinstance(text, PageType):
        return text
    if isinstance(text, bool):
        return DEFAULT_CACHED if text else PageType(0)
    try:
        return DEFAULT_CACHED if parse_bool(text) else PageType(0)
    except ValueError:
        pass
    try:
        return PageType.parse(text)
    except ValueError as e:
        raise ValueError(f"{e}; or true/false") from None


def parse_delay(text: str | float) -> float:
    """``delay``: seconds of latency per batched call; a bare number is microseconds (memflow)."""
    if isinstance(text, (int, float)):
        return float(text)
    t = text.strip()
    try:
        return float(int(t)) * 1e-6
    except ValueError:
        pass
    try:
        return parse_duration(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a delay (e.g. 200us, 1ms, or a bare number of microseconds)") from None


def parse_metrics(text: str | bool | float | None) -> float | None:
    """``metrics``: true (log every second), false, or the logging interval (``5s``)."""
    if text is None:
        return None
    if isinstance(text, bool):
        return 1.0 if text else None
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return 1.0 if parse_bool(text) else None
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a metrics setting (true/false or a log interval like 5s)") from None


def _page_size(text: str) -> int:
    n = parse_size(text)
    if n <= 0 or n & (n - 1):
        raise ValueError(f"{text!r} is not a power-of-two page size (e.g. 4k, 0x1000)")
    return n


MIDDLEWARE_ARGS: list[ArgSpec] = [
    ArgSpec("cache", "page cache: true/false, or the page types to keep "
            "(page_table, read_only, writeable, unknown, all; join with +)", parse=parse_cache),
    ArgSpec("cache_size", "page cache size in bytes (default 2m)", parse=parse_size, minimum=1 << 12,
            maximum=4 << 30),
    ArgSpec("cache_time", "page cache validity: a duration (1s, 250ms; bare number = ms) "
            "or a count of batched reads (100reads); default 1s", parse=parse_validity),
    ArgSpec("cache_page_size", "page cache page size, a power of two (default 4k)", parse=_page_size,
            minimum=1 << 12, maximum=2 << 20),
    ArgSpec("delay", "simulated latency per batched call (200us, 1ms; bare number = microseconds)",
            parse=parse_delay, minimum=0, maximum=60, unit="s"),
    ArgSpec("metrics", "collect metrics and log them: true/false or a log interval (5s)",
            parse=parse_metrics, minimum=0.01, maximum=86400, unit="s"),
]
"""The ``:``-keys every connector accepts after its own arguments."""


DEFAULT_CACHE_SIZE = 2 << 20
DEFAULT_CACHE_PAGE = 4096


def check_options(options: dict[str, Any]) -> None:
    """What the keys' own ranges cannot say: the cache holds at least one of its pages."""
    size = options.get("cache_size") or DEFAULT_CACHE_SIZE
    page = options.get("cache_page_size") or DEFAULT_CACHE_PAGE
    if size < page:
        raise ValueError(f"cache_size {size:#x} must hold at least one page of cache_page_size {page:#x}")


def _validity(given: Any, conn: PhysicalMemory) -> TimeValidity | CountValidity:
    """The user's ``cache_time``, else the connector's ``cache_time`` hint (seconds; live targets
    such as qemu suggest a short one), else one second."""
    if given is not None:
        return parse_validity(given)
    hinted = conn.hints.get("cache_time")
    if isinstance(hinted, (int, float)) and not isinstance(hinted, bool) and hinted >= 0:
        return TimeValidity(float(hinted))
    return TimeValidity(1.0)


def wrap(conn: PhysicalMemory, options: dict[str, Any]) -> PhysicalMemory:
    """Stack the middleware ``options`` (parsed values of :data:`MIDDLEWARE_ARGS`; missing or None
    keys are off) on ``conn``: delay innermost, then cache, then metrics outermost."""
    unknown = set(options) - {a.name for a in MIDDLEWARE_ARGS}
    if unknown:
        raise ValueError(f"unknown middleware option(s): {', '.join(sorted(unknown))}")
    out: PhysicalMemory = conn
    delay = options.get("delay")
    if delay:
        out = DelayMemory(out, parse_delay(delay))
    cache = options.get("cache")
    tuned = any(options.get(k) is not None for k in ("cache_size", "cache_time", "cache_page_size"))
    types = parse_cache(cache) if cache is not None else (DEFAULT_CACHED if tuned else PageType(0))
    if types:
        out = PageCache(
            out,
            size=options.get("cache_size") or DEFAULT_CACHE_SIZE,
            page_size=options.get("cache_page_size") or DEFAULT_CACHE_PAGE,
            validity=_validity(options.get("cache_time"), conn),
            page_types=types,
        )
    metrics = options.get("metrics")
    interval = parse_metrics(metrics) if metrics is not None else None
    if interval is not None:
        out = MetricsMemory(out, interval)
    return out


__all__ = [
    "MIDDLEWARE_ARGS",
    "check_options",
    "CountValidity",
    "DelayMemory",
    "MetricsMemory",
    "Middleware",
    "PageCache",
    "TimeValidity",
    "parse_cache",
    "parse_delay",
    "parse_metrics",
    "parse_validity",
    "wrap",
]
