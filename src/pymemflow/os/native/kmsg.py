"""The running kernel's log for ``-o native dmesg``: ``/dev/kmsg`` records, else ``klogctl``.

``/dev/kmsg`` gives one structured record per ``read()`` (``prio,seq,usec,flags;text`` plus
`` KEY=value`` continuation lines) with exact sequence numbers and microsecond timestamps; it is
what util-linux ``dmesg`` reads. Where it is missing, the ``syslog(2)`` call (glibc ``klogctl``,
SYSLOG_ACTION_READ_ALL) gives the same buffer as ``<prio>[seconds] text`` lines. Both need
CAP_SYSLOG when ``kernel.dmesg_restrict`` is 1; the error then says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re

from ...errors import OsLayerError
from ..base import LogRecord

KMSG = "/dev/kmsg"
MAX_RECORD = 1 << 16
"""A /dev/kmsg read needs a buffer that holds a whole record (the kernel's limit is 8 KiB)."""
MAX_RECORDS = 1 << 20
"""Stop after this many records: the ring is bounded, a device that never says EAGAIN is not."""
SYSLOG_ACTION_READ_ALL = 3
SYSLOG_ACTION_SIZE_BUFFER = 10
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_SYSLOG_LINE = re.compile(r"^<(\d+)>(?:\[\s*(\d+\.\d+)\]\s?)?(.*)$")


def parse_kmsg_record(raw: bytes) -> LogRecord | None:
    """One ``/dev/kmsg`` record; None for a malformed one (the kernel's format is documented in
    Documentation/ABI/testing/dev-kmsg)."""
    head, sep, rest = raw.decode("utf-8", "replace").partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
    except (ValueError, IndexError):
        return None
    text = rest.split("\n", 1)[0]  # continuation lines (" SUBSYSTEM=...") are metadata
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return LogRecord(seq=seq, timestamp=usec / 1e6, level=prio & 7, facility=prio >> 3, text=text)


def read_kmsg(path: str = KMSG) -> list[LogRecord]:
    """Every record still in the ring, oldest first, without waiting for new ones."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    out: list[LogRecord] = []
    try:
        while len(out) < MAX_RECORDS:
            try:
                raw = os.read(fd, MAX_RECORD)
            except BlockingIOError:
                break  # EAGAIN: the ring is read up to its end
            except OSError as e:
                if e.errno == errno.EPIPE:
                    continue  # records were overwritten while reading: the next read resumes after them
                raise
            if not raw:
                break
            rec = parse_kmsg_record(raw)
            if rec is not None:
                out.append(rec)
    finally:
        os.close(fd)
    return out


def parse_syslog_text(text: str) -> list[LogRecord]:
    """``klogctl(SYSLOG_ACTION_READ_ALL)`` output: ``<prio>[  seconds] text`` lines (no sequence
    numbers there: records are numbered in order)."""
    out: list[LogRecord] = []
    for line in text.splitlines():
        m = _SYSLOG_LINE.match(line)
        if not m:
            continue
        prio = int(m.group(1))
        out.append(LogRecord(seq=len(out), timestamp=float(m.group(2) or 0.0), level=prio & 7,
                             facility=prio >> 3, text=m.group(3)))
    return out


def read_klogctl() -> list[LogRecord]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    size = libc.klogctl(SYSLOG_ACTION_SIZE_BUFFER, None, 0)
    if size < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), "klogctl")
    buf = ctypes.create_string_buffer(max(int(size), 1))
    n = libc.klogctl(SYSLOG_ACTION_READ_ALL, buf, len(buf))
    if n < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), "klogctl")
    return parse_syslog_text(buf.raw[:n].decode("utf-8", "replace"))


def kernel_log(path: str = KMSG) -> list[LogRecord]:
    """The running kernel's log: /dev/kmsg, else klogctl; an :class:`OsLayerError` naming both reasons."""
    try:
        return read_kmsg(path)
    except OSError as e:
        first = e
    try:
        return read_klogctl()
    except (OSError, AttributeError) as e:
        hint = (" (kernel.dmesg_restrict=1: reading the kernel log needs root or CAP_SYSLOG)"
                if isinstance(first, PermissionError) or getattr(e, "errno", None) == errno.EPERM else "")
        raise OsLayerError(f"native: cannot read the kernel log: {path}: {first.strerror or first}; "
                           f"klogctl: {getattr(e, 'strerror', None) or e}{hint}") from None
