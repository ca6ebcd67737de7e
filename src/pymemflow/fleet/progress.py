"""The fleet's progress line on stderr (done, failed, running, ETA) and its closing summary."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from .runner import TargetResult


@dataclass
class Tally:
    """Counts of a run, updated as results arrive."""

    total: int
    done: int = 0
    failed: int = 0
    rows: int = 0
    retried: int = 0
    warned: list[TargetResult] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    failures: list[TargetResult] = field(default_factory=list)

    def add(self, res: TargetResult) -> None:
        self.done += 1
        self.rows += len(res.records)
        self.retried += res.attempts > 1
        if res.warnings:
            self.warned.append(res)
        if not res.ok:
            self.failed += 1
            self.failures.append(res)

    def eta(self, now: float) -> float | None:
        if not self.done or self.done >= self.total:
            return None
        return (now - self.started) / self.done * (self.total - self.done)

    def summary(self) -> str:
        took = time.monotonic() - self.started
        ok = self.done - self.failed
        text = (f"fleet: {self.total} targets, {ok} ok, {self.failed} failed, {self.rows} rows"
                f"{f', {self.retried} retried' if self.retried else ''}, {took:.1f} s")
        lines = [text] + [f"  failed: {r.target}: {r.error}" for r in self.failures]
        lines += [f"  warning: {r.target}: {w}" for r in self.warned for w in r.warnings]
        return "\n".join(lines)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class ProgressLine:
    """Redrawn from a background thread twice a second (so ``running`` and ETA move even while no
    target finishes); ``slots`` says how many targets the cluster runs at once."""

    def __init__(self, tally: Tally, stream: IO[str], enabled: bool,
                 slots: Callable[[], int] = lambda: 1) -> None:
        self.tally = tally
        self.stream = stream
        self.enabled = enabled
        self.slots = slots
        self._slots = 1
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._loop, name="fleet-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last_slots = 0.0
        while not self._stop.wait(0.5):
            now = time.monotonic()
            if now - last_slots > 2.0:
                self._slots, last_slots = self.slots(), now
            self.draw()

    def text(self) -> str:
        t = self.tally
        left = t.total - t.done
        running = min(left, self._slots)
        frac = t.done / t.total if t.total else 1.0
        bar = "#" * int(frac * 24)
        return (f"fleet [{bar:<24}] {t.done}/{t.total} done, {t.failed} failed, {running} running, "
                f"ETA {_clock(t.eta(time.monotonic()))}")

    def draw(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.stream.write("\r" + self.text() + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.enabled:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
