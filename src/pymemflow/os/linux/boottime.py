"""When the kernel booted, in wall-clock time: the key that turns a task's start time (nanoseconds after boot)
and a log line's timestamp into UTC.

The kernel keeps it in its timekeeper (``tk_core.timekeeper``; ``timekeeper_data[0]`` on newer kernels):
``offs_real`` (monotonic -> real time) minus ``offs_boot`` (monotonic -> boot time) is the boot's wall-clock
time, exactly what ``/proc/stat``'s ``btime`` prints. The timekeeper sits a few bytes into an anonymous wrapper
(after a seqcount whose size depends on the build), so every small offset is tried and accepted only when the
timekeeper's own invariant holds: ``tkr_mono.base + offs_real == xtime_sec * 1e9`` and ``offs_real ==
-wall_to_monotonic``. A read torn by a running machine fails that check and is read again; no candidate
passing it means no boot time (times are then left out, never guessed).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...mem.view import MemoryView
from .kallsyms import SymbolTable
from .kread import Layouts, read_obj

MAX_WRAPPER = 128
"""Bytes before the timekeeper inside its wrapper struct tried (a seqcount, with lockdep a few dozen)."""
RETRIES = 3
NSEC = 1_000_000_000
YEAR_2000, YEAR_2200 = 946_684_800, 7_258_118_400


@dataclass(frozen=True)
class BootTime:
    wall_ns: int
    """Boot time, nanoseconds since 1970 UTC."""
    offs_real: int
    """CLOCK_MONOTONIC -> CLOCK_REALTIME offset (ns): a monotonic stamp plus this is wall-clock time."""
    where: str
    """Where it was read (symbol + offset), for ``info`` and the docs' "how"."""

    def from_boottime(self, ns: int) -> float:
        """Seconds since 1970 of a CLOCK_BOOTTIME stamp (task start_boottime, real_start_time)."""
        return (self.wall_ns + ns) / NSEC

    def from_monotonic(self, ns: int) -> float:
        """Seconds since 1970 of a CLOCK_MONOTONIC stamp (task start_time, printk timestamps)."""
        return (self.offs_real + ns) / NSEC


def _s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def read_boot_time(kmem: MemoryView, symbols: SymbolTable, t: Layouts,
                   warnings: list[str] | None = None) -> BootTime | None:
    """The boot time from the timekeeper, or None (noted in ``warnings``) when it cannot be trusted."""
    lost: list[str] = [] if warnings is None else warnings
    need = ("tkr_mono.base", "xtime_sec", "offs_real", "offs_boot", "wall_to_monotonic.tv_sec",
            "wall_to_monotonic.tv_nsec")
    if not all(t.has_member("timekeeper", f) for f in need):
        lost.append("boot time: this kernel's types have no struct timekeeper with offs_real/offs_boot; "
                    "start times stay relative to boot")
        return None
    o = {f: t.offset_of("timekeeper", f) for f in need}
    nsec_size = 8 if kmem.pointer_size == 8 else 4  # tv_nsec is a long
    span = max(o.values()) + 8
    where: list[tuple[str, int]] = []
    if "timekeeper_data" in symbols and t.has_member("tk_data", "timekeeper"):
        where.append(("timekeeper_data", t.offset_of("tk_data", "timekeeper")))
    for name in ("tk_core", "timekeeper_data"):
        if name in symbols:
            where += [(name, d) for d in range(0, MAX_WRAPPER + 1, 4)]
    if not where:
        lost.append("boot time: no tk_core / timekeeper_data symbol (kallsyms without CONFIG_KALLSYMS_ALL?); "
                    "start times stay relative to boot")
        return None
    for _ in range(RETRIES):
        for name, delta in where:
            base = symbols[name] + delta
            k = read_obj(kmem, base, span)
            if not k.ok:
                continue
            mono, sec = _s64(k.u64(o["tkr_mono.base"])), k.u64(o["xtime_sec"])
            real, boot = _s64(k.u64(o["offs_real"])), _s64(k.u64(o["offs_boot"]))
            wtm = _s64(k.u64(o["wall_to_monotonic.tv_sec"])) * NSEC + (
                k.u64(o["wall_to_monotonic.tv_nsec"]) if nsec_size == 8 else k.u32(o["wall_to_monotonic.tv_nsec"]))
            if not YEAR_2000 < sec < YEAR_2200 or mono < 0 or boot < 0:
                continue
            if mono + real == sec * NSEC and real == -wtm:
                return BootTime(real - boot, real, f"{name}+{delta:#x}")
    lost.append("boot time: no timekeeper passing its own invariant (tkr_mono.base + offs_real == xtime_sec) "
                "near tk_core/timekeeper_data; start times stay relative to boot")
    return None
