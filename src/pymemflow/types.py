"""Value types every layer shares: argument parsing, plugin declarations, memory regions.

The bottom of the import graph (beside :mod:`pymemflow.errors`): it imports nothing from pymemflow,
so ``mem``, ``connectors``, ``arch`` and the OS layers can all use it without importing the layers
above them. Plugin authors use the same names through :mod:`pymemflow.plugins.api`.
See docs/architecture.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

PluginKind = Literal["connector", "os"]


_SIZE_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
                "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40,
                "tib": 1 << 40}
_NUM_RE = re.compile(r"^\s*(0x[0-9a-f_]+|0o[0-7_]+|0b[01_]+|[0-9][0-9_]*)\s*([kmgt]i?b?|b)?\s*$", re.I)


def parse_int(text: str | int) -> int:
    """Decimal, ``0x`` hex, ``0o``/``0b``, with an optional size suffix (``k``, ``m``, ``g``, ``t``,
    ``kb``, ``mib`` ...; powers of 1024). Raises ValueError with a message that says what is allowed."""
    if isinstance(text, int):
        return text
    m = _NUM_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a number (use decimal, 0x hex, optionally with k/m/g/t suffix)")
    return int(m.group(1).replace("_", ""), 0) * _SIZE_SUFFIX[(m.group(2) or "").lower()]


parse_size = parse_int


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on", "y", ""):
        return True
    if t in ("0", "false", "no", "off", "n"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false, yes/no, 1/0, on/off)")


def parse_duration(text: str | float) -> float:
    """Seconds: ``1.5``, ``250ms``, ``10us``, ``2s``, ``1m``."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*(ns|us|ms|s|m|min)?\s*$", text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (e.g. 1.5, 250ms, 10us, 2s, 1m)")
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}[m.group(2)]
    return float(m.group(1)) * scale


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return text

    parse.__doc__ = "one of " + ", ".join(allowed)
    return parse


@dataclass(frozen=True)
class ArgSpec:
    name: str
    description: str
    required: bool = False
    default: Any = None
    parse: Callable[[str], Any] = str
    """Converts and validates the text; raises ValueError whose message says what is allowed."""


@dataclass(frozen=True)
class TargetInfo:
    """Something a plugin can open, for ``pymemflow targets -c NAME``."""

    name: str
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PluginSpec:
    kind: PluginKind
    name: str
    description: str
    factory: Callable[[dict[str, Any], Any], Any]
    """``factory(args, input)``: args are parsed values with defaults applied (the positional part of
    the argument string is ``args["target"]``); ``input`` is the previous link of the chain (a
    connector for an OS layer, an OS layer for a connector) or None. Returns a ``PhysicalMemory``
    (connectors) or an ``OsLayer`` (OS layers)."""
    version: str = "0.1.0"
    args: list[ArgSpec] = field(default_factory=list)
    targets: Callable[[], list[TargetInfo]] | None = None
    accepts_input: bool = False
    """An OS layer that needs a connector, or a connector that can run on top of an OS layer."""
    requires_input: bool = False
    origin: str = "builtin"
    """Set by the inventory: 'builtin', 'entry point DIST', or a plugin file path."""

    def arg(self, name: str) -> ArgSpec | None:
        for a in self.args:
            if a.name == name:
                return a
        return None


TARGET_ARG = "target"
"""The argument the positional part of ``NAME:TARGET,key=value`` fills (docs/plugins.md)."""

PROGRESS_ARG = "progress"
"""A plugin that declares an argument of this name receives the front end's
:class:`ProgressReporter` in it (``open_links(..., progress=...)``); ``progress=false`` in its
argument string keeps it silent."""


@dataclass
class MemoryRegion:
    """One mapped range of a process: from page tables, VADs, or /proc/PID/maps."""

    start: int
    end: int
    protection: str = ""
    """'r-x', 'rw-', ... """
    kind: str = ""
    """'private', 'mapped', 'image', 'large-page', 'stack', ..."""
    path: str = ""

    @property
    def size(self) -> int:
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = self.size
        return d


class ProgressReporter(Protocol):
    """How a layer reports long work (a physical-memory scan, a long list walk) without printing.

    The layer calls ``progress(task, done, total)`` -- ``task`` a short label ("scanning for x64
    PML4"), ``done``/``total`` in the task's unit (bytes for scans); ``done >= total`` ends the task.
    Rendering is the front end's job: the CLI draws a bar on a terminal, the daemon can stream it.
    A library call with no reporter stays silent."""

    def __call__(self, task: str, done: int, total: int) -> None: ...


def task_progress(progress: object, task: str) -> Callable[[int, int], None] | None:
    """A scanner's ``(done, total)`` callback reporting one labelled task to ``progress`` (a
    :class:`ProgressReporter`); None -- silent -- when ``progress`` is not callable (None, False)."""
    if not callable(progress):
        return None
    return lambda done, total: progress(task, done, total)
