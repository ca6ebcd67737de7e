"""The Linux layer's own timeline source: kernel log lines in UTC.

A printk timestamp counts nanoseconds of the kernel's local clock since boot, so boot time + timestamp is the
line's time, exactly what ``dmesg -T`` prints (like it, time spent suspended is not counted). Without a
trusted boot time (:mod:`.boottime`) the log adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..base import LogRecord
from ..forensics import TimelineEvent, iso_from_unix
from .boottime import BootTime


def log_events(records: list[LogRecord], boot: BootTime | None) -> Iterable[TimelineEvent]:
    if boot is None:
        return
    for r in records:
        when = iso_from_unix(boot.wall_ns / 1e9 + r.timestamp)
        if when:
            yield TimelineEvent(when, "log", "logged", r.text, None, 0)
