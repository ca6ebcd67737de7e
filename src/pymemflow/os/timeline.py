"""One sorted table of every timestamp an OS layer knows.

:func:`collect` asks the layer's ``timeline_sources()`` (each a callable giving
:class:`~pymemflow.os.forensics.TimelineEvent`s) and skips a source the layer does not support, so
a layer adds a source (module load times, kernel log lines ...) by extending that list.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..errors import PymemflowError
from .forensics import TimelineEvent

if TYPE_CHECKING:
    from .base import OsLayer

Source = Callable[[], Iterable[TimelineEvent]]


def thread_events(layer: OsLayer) -> Iterable[TimelineEvent]:
    for t in layer.threads():
        for when, action in ((t.create_time, "created"), (t.exit_time, "exited")):
            if when:
                yield TimelineEvent(when, "thread", action, f"thread {t.tid} of pid {t.pid}", t.pid, t.address)


def socket_events(layer: OsLayer) -> Iterable[TimelineEvent]:
    for s in layer.netscan():
        if s.create_time:
            peer = f" -> {s.remote_address}:{s.remote_port}" if s.remote_address else ""
            yield TimelineEvent(s.create_time, "socket", "created",
                                f"{s.protocol} {s.local_address}:{s.local_port}{peer} {s.state}".rstrip(), s.pid,
                                s.address)


def carved_process_events(layer: OsLayer) -> Iterable[TimelineEvent]:
    for p in layer.psscan():
        for when, action in ((p.create_time, "created"), (p.exit_time, "exited")):
            if when:
                yield TimelineEvent(when, "process", action, f"{p.name} (pid {p.pid}, ppid {p.ppid}, {p.flag})",
                                    p.pid, p.address)


def default_sources(layer: OsLayer) -> list[Source]:
    """Carved processes (listed ones too), threads and sockets: what every layer's calls give."""
    return [lambda: carved_process_events(layer), lambda: thread_events(layer), lambda: socket_events(layer)]


def collect(layer: OsLayer) -> list[TimelineEvent]:
    events: list[TimelineEvent] = []
    for source in layer.timeline_sources():
        try:
            events.extend(source())
        except NotImplementedError:
            continue
        except PymemflowError as e:  # one broken source must not hide the others
            warnings.warn(f"timeline: a source failed: {e}", stacklevel=2)
    events.sort(key=lambda e: (e.time, e.source, e.pid if e.pid is not None else -1, e.description))
    return events
