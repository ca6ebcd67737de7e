"""Value types every layer shares: argument parsing, plugin declarations, memory regions.

The bottom of the import graph (beside :mod:`pymemflow.errors`): it imports nothing from pymemflow,
so ``mem``, ``connectors``, ``arch`` and the OS layers can all use it without importing the layers
above them. Plugin authors use the same names through :mod:`pymemflow.plugins.api`.
See docs/architecture.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

from .errors import ArgumentError
from .records import FrozenRecord, PlainRecord, record_dict

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


def parse_listen(text: str) -> tuple[str, int]:
    """``--listen`` of the servers (``serve``, ``gdbserver``): ``PORT``, ``HOST:PORT`` or ``[V6]:PORT``
    (host defaults to 127.0.0.1; port 0 lets the system pick)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        p = int(port)
    except ValueError:
        raise ArgumentError(f"--listen {text!r}: expected [HOST:]PORT") from None
    if not 0 <= p < 65536:
        raise ArgumentError(f"--listen {text!r}: port out of range")
    return host, p


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (servers warn or refuse otherwise)."""
    if host == "localhost":
        return True
    import ipaddress  # lazy: servers only (a thin client's start-up skips it)

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def did_you_mean(word: str, choices: Iterable[str], *, quote: bool = True) -> str:
    """``" (did you mean 'win32'?)"`` for the closest of ``choices`` (difflib), else ``""``."""
    import difflib  # lazy: only on a typo

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {close[0]!r}?)" if quote else f" (did you mean {close[0]}?)"


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}{did_you_mean(text, allowed)}")
        return text

    parse.__doc__ = "one of " + ", ".join(allowed)
    return parse


def format_number(n: float, unit: str = "") -> str:
    """A bound as a user types it: ``4k``, ``1t``, ``0x10000000000000000``, ``-1``; with a ``unit``
    (seconds, say) a plain decimal: ``0.5s``."""
    if unit or n < 0 or (isinstance(n, float) and not n.is_integer()):
        return f"{int(n) if float(n).is_integer() else f'{n:g}'}{unit}"
    n = int(n)
    for suffix, scale in (("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= scale and n % scale == 0 and n // scale < 1024:
            return f"{n // scale}{suffix}"
    return hex(n) if n > 0xFFFF else str(n)


def check_range(value: Any, minimum: float | None, maximum: float | None, unit: str = "") -> None:
    """ValueError naming the allowed range unless ``minimum <= value <= maximum`` (None: open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{format_number(value, unit)} is out of range (allowed {range_text(minimum, maximum, unit)})")


def range_text(minimum: float | None, maximum: float | None, unit: str = "") -> str:
    lo = format_number(minimum, unit) if minimum is not None else "-inf"
    hi = format_number(maximum, unit) if maximum is not None else "inf"
    return f"{lo} .. {hi}"


class ArgSpec(FrozenRecord):
    """One argument a plugin takes: its name, help text, parser and allowed values.

    ``parse`` converts and validates the text; it raises ValueError whose message says what is
    allowed. ``minimum``/``maximum``: the allowed range of a numeric value (inclusive; None: open),
    checked after ``parse`` and on values Python callers pass already typed; shown in ``pymemflow
    plugins NAME``. ``validator``: a further check of the parsed value (raises ValueError saying what
    is allowed); its docstring's first line is shown in the help. ``unit``: shown after the numbers of
    a range (``s`` for durations)."""

    __slots__ = ("name", "description", "required", "default", "parse", "minimum", "maximum", "validator", "unit")
    name: str
    description: str
    required: bool
    default: Any
    parse: Callable[[str], Any]
    minimum: float | None
    maximum: float | None
    validator: Callable[[Any], None] | None
    unit: str

    def __init__(self, name: str, description: str, required: bool = False, default: Any = None,
                 parse: Callable[[str], Any] = str, minimum: float | None = None, maximum: float | None = None,
                 validator: Callable[[Any], None] | None = None, unit: str = "") -> None:
        self._init(name=name, description=description, required=required, default=default, parse=parse,
                   minimum=minimum, maximum=maximum, validator=validator, unit=unit)

    def check(self, value: Any) -> Any:
        """``value`` (parsed) if it is allowed, else ValueError naming the allowed range."""
        check_range(value, self.minimum, self.maximum, self.unit)
        if self.validator is not None and value is not None:
            self.validator(value)
        return value

    def constraint(self) -> str:
        """The allowed values in words, for help texts ('' when anything the parser takes goes)."""
        parts = []
        if self.minimum is not None or self.maximum is not None:
            parts.append(range_text(self.minimum, self.maximum, self.unit))
        doc = (getattr(self.validator, "__doc__", None) or "").strip().splitlines()
        if doc:
            parts.append(doc[0].rstrip("."))
        return "; ".join(parts)


class TargetInfo(FrozenRecord):
    """Something a plugin can open, for ``pymemflow targets -c NAME``."""

    __slots__ = ("name", "description", "extra")
    name: str
    description: str
    extra: dict[str, Any]

    def __init__(self, name: str, description: str = "", extra: dict[str, Any] | None = None) -> None:
        self._init(name=name, description=description, extra={} if extra is None else extra)


class PluginSpec(PlainRecord):
    """A connector or OS layer: what ``PLUGIN = PluginSpec(...)`` declares (docs/plugins.md).

    ``factory(args, input)``: args are parsed values with defaults applied (the positional part of
    the argument string is ``args["target"]``); ``input`` is the previous link of the chain (a
    connector for an OS layer, an OS layer for a connector) or None. Returns a ``PhysicalMemory``
    (connectors) or an ``OsLayer`` (OS layers). ``accepts_input``: an OS layer that needs a
    connector, or a connector that can run on top of an OS layer. ``origin`` is set by the inventory:
    'builtin', 'entry point DIST', or a plugin file path."""

    __slots__ = ("kind", "name", "description", "factory", "version", "args", "targets", "accepts_input",
                 "requires_input", "origin")

    def __init__(self, kind: PluginKind, name: str, description: str, factory: Callable[[dict[str, Any], Any], Any],
                 version: str = "0.1.0", args: list[ArgSpec] | None = None,
                 targets: Callable[[], list[TargetInfo]] | None = None, accepts_input: bool = False,
                 requires_input: bool = False, origin: str = "builtin") -> None:
        self.kind, self.name, self.description, self.factory = kind, name, description, factory
        self.version = version
        self.args: list[ArgSpec] = [] if args is None else args
        self.targets, self.accepts_input, self.requires_input = targets, accepts_input, requires_input
        self.origin = origin

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


class MemoryRegion(PlainRecord):
    """One mapped range of a process: from page tables, VADs, or /proc/PID/maps. ``protection``:
    'r-x', 'rw-', ...; ``kind``: 'private', 'mapped', 'image', 'large-page', 'stack', ..."""

    __slots__ = ("start", "end", "protection", "kind", "path")

    def __init__(self, start: int, end: int, protection: str = "", kind: str = "", path: str = "") -> None:
        self.start, self.end, self.protection, self.kind, self.path = start, end, protection, kind, path

    @property
    def size(self) -> int:
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        d = record_dict(self)
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
