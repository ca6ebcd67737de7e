"""Records to JSON: the one serialiser the CLI's ``--json`` and the daemon's HTTP API share.

Field names are the records' own (``ProcessInfo.as_dict()`` ...), so a field added to a record shows
up in ``pymemflow ps --json`` and in ``GET /v1/connections/NAME/processes`` at once. Stdlib only:
the remote client imports it without NumPy. The plain-text tables (the CLI's default output and
the mount's ``.txt`` files) are rendered here too, so both show the same table for the same records.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="PlainRecord")


class PlainRecord:
    """Base of the records on a new process's path (``os.base``'s, ``types``', ``errors``', the chain's):
    a class with ``__slots__`` (its fields, in order) and an ``__init__``; this base compares, prints,
    pickles and copies it by those fields, as ``@dataclass`` would. Why not ``dataclasses``: importing it
    brings ``inspect`` (with ``ast`` and ``dis``) and every definition compiles generated code, ~15 ms
    of the CPU of ``pymemflow -o remote:... ps`` (docs/performance.md). Mutable and unhashable, like a
    dataclass with ``eq``; :class:`FrozenRecord` for the frozen ones."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    """Every field, base classes' first (``__slots__`` of the class and its bases)."""
    _hidden: ClassVar[frozenset[str]] = frozenset()
    """Fields left out of equality and repr (a dataclass's ``field(compare=False, repr=False)``)."""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        names: list[str] = []
        for c in reversed(cls.__mro__):
            own = c.__dict__.get("__slots__", ())
            names += [own] if isinstance(own, str) else list(own)
        cls._fields = tuple(names)

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields if f not in self._hidden)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields if f not in self._hidden)
        return f"{type(self).__qualname__}({shown})"

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for f, v in zip(self._fields, state, strict=True):
            object.__setattr__(self, f, v)


class FrozenRecord(PlainRecord):
    """A :class:`PlainRecord` whose fields cannot be assigned after ``__init__`` (which sets them with
    ``self._init(...)``); hashable by its fields (a dataclass with ``frozen=True``)."""

    __slots__ = ()

    def _init(self, **values: Any) -> None:
        for f, v in values.items():
            object.__setattr__(self, f, v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._key())


def record_fields(record: PlainRecord | type[PlainRecord]) -> tuple[str, ...]:
    """The field names of a record (or record class), in order (``dataclasses.fields``)."""
    return record._fields


def record_dict(record: PlainRecord) -> dict[str, Any]:
    """Every field by name, containers copied (``dataclasses.asdict``)."""
    return {f: _copied(getattr(record, f)) for f in record._fields}


def replace_fields(record: R, **changes: Any) -> R:
    """A new record with ``changes`` (``dataclasses.replace``: made through ``__init__``)."""
    return type(record)(**{**{f: getattr(record, f) for f in record._fields}, **changes})


def _copied(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bytes)):
        return v
    if isinstance(v, PlainRecord):
        return record_dict(v)
    if isinstance(v, dict):
        return type(v)((_copied(k), _copied(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
        return type(v)(_copied(x) for x in v)
    import copy  # lazy: anything else is rare in a record (asdict deep-copies it too)

    return copy.deepcopy(v)


def jsonable(obj: Any) -> Any:
    """JSON-friendly form: bytes as hex, enums by name, dataclasses/records via ``as_dict``."""
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, Enum):
        return obj.name
    if isinstance(obj, os.PathLike):  # pathlib.Path and friends (pathlib itself is not imported)
        return os.fspath(obj)
    if hasattr(obj, "as_dict"):
        return jsonable(obj.as_dict())
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


def record_list(records: Any) -> list[Any]:
    """A list of records (``ProcessInfo``, ``ModuleInfo`` ...) as JSON-ready dicts with all fields."""
    return [jsonable(r) for r in records]


PS_COLUMNS = ["pid", "ppid", "name", "state", "arch", "dtb", "wow64", "command_line"]
MODULE_COLUMNS = ["name", "path", "base", "size", "arch"]
EXPORT_COLUMNS = ["name", "address", "ordinal", "forwarder"]
IMPORT_COLUMNS = ["module", "name", "address", "ordinal"]
SECTION_COLUMNS = ["name", "address", "size", "characteristics"]
MAP_COLUMNS = ["start", "end", "size", "protection", "kind", "path"]
"""Table columns. Machine formats (--json, --jsonl, --csv, the mount's .json files) carry every field."""

HEX_FIELDS = frozenset({
    "address", "base", "dtb", "user_dtb", "start", "end", "va", "pa", "virt", "phys", "addr",
    "max_address", "kernel_base", "real_base", "entry", "offset", "cr3", "pte", "pde", "teb", "access",
})
"""Integer fields shown in hex in tables (machine formats always have plain numbers)."""


def json_text(obj: Any) -> str:
    """What ``--json`` prints for ``obj`` (indented, newline at the end)."""
    return json.dumps(jsonable(obj), indent=2) + "\n"


def is_hex_field(name: str) -> bool:
    return name in HEX_FIELDS or name.endswith(("_address", "_addr", "_base", "_va", "_pa"))


def cell(key: str, value: Any, width: int = 80) -> str:
    """One table cell: hex for address-like fields, lower-case booleans, long text cut."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:#x}" if is_hex_field(key) and value >= 0 else str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).hex()
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(jsonable(value))
    text = str(value).replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def table_text(rows: list[dict[str, Any]], columns: list[str] | None = None, title: str | None = None,
               width: int = 80) -> str:
    """The CLI's plain-text table: upper-case header, numbers right-aligned, ``(none)`` when empty."""
    cols = list(columns) if columns else (list(rows[0].keys()) if rows else [])
    out = [f"{title}\n"] if title else []
    if not rows:
        return "".join(out) + "(none)\n"
    cells = [[cell(c, r.get(c), width) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    right = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                 for r in rows if r.get(c) is not None) for c in cols]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if rj else v.ljust(w) for v, w, rj in zip(values, widths, right, strict=True)]
        return "  ".join(parts).rstrip() + "\n"

    out.append(line([c.upper() for c in cols]))
    out += [line(row) for row in cells]
    return "".join(out)


def flatten(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]``; empty dicts stay one (empty) field."""
    out: list[tuple[str, Any]] = []
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def object_text(obj: dict[str, Any], width: int = 100) -> str:
    """One object as ``key  value`` lines, nested dicts flattened with dots."""
    items = flatten(obj)
    w = max((len(k) for k, _ in items), default=0)
    return "".join(f"{k.ljust(w)}  {cell(k.rsplit('.', 1)[-1], v, width)}\n" for k, v in items)
