"""The one output mechanism every command uses: a table for people (default), or ``--json``,
``--jsonl``, ``--csv`` for programs.

A listing is a list of records (dicts). The table shows the columns the command picks; the machine
formats carry every field of every record (nested dicts are kept in JSON/JSONL and flattened to
``outer.inner`` columns in CSV), so nothing the OS layer collected is lost on the way out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from ..records import jsonable as jsonable  # the one serialiser: the daemon's API uses it too

FORMATS = ("table", "json", "jsonl", "csv")
"""``table`` for people; the rest print nothing but data on stdout."""

HEX_FIELDS = frozenset({
    "address", "base", "dtb", "user_dtb", "start", "end", "va", "pa", "virt", "phys", "addr",
    "max_address", "kernel_base", "real_base", "entry", "offset", "cr3", "pte", "pde",
})
"""Integer fields shown in hex in tables (machine formats always have plain numbers)."""


def is_hex_field(name: str) -> bool:
    return name in HEX_FIELDS or name.endswith(("_address", "_addr", "_base", "_va", "_pa"))


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


def cell(key: str, value: Any, width: int = 80) -> str:
    """One table cell: hex for address-like integers, JSON for lists, cut at ``width``."""
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


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


class Output:
    """Writes records in one format to a stream."""

    def __init__(self, fmt: str, stream: IO[str]) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")
        self.fmt = fmt
        self.out = stream

    @property
    def machine(self) -> bool:
        """True for json/jsonl/csv: nothing but data may go to stdout."""
        return self.fmt != "table"

    def json(self, obj: Any) -> None:
        json.dump(jsonable(obj), self.out, indent=2)
        self.out.write("\n")

    def rows(self, rows: Iterable[dict[str, Any]], columns: list[str] | None = None,
             title: str | None = None) -> None:
        """A listing: ``columns`` (chosen and ordered; default all keys of the first row) in the table,
        every field in the machine formats."""
        rows = [jsonable(r) if self.machine else r for r in rows]
        if self.fmt == "json":
            self.json(rows)
        elif self.fmt == "jsonl":
            for r in rows:
                self.out.write(json.dumps(r) + "\n")
        elif self.fmt == "csv":
            self._csv(rows, columns)
        else:
            self._table(rows, columns, title)

    def obj(self, obj: dict[str, Any], title: str | None = None) -> None:
        """One record: ``key  value`` lines (nested dicts flattened with dots) in the table; a JSON
        object; one JSONL line; or a one-row CSV with the flattened keys as header."""
        if self.fmt == "json":
            self.json(obj)
        elif self.fmt in ("jsonl", "csv"):
            self.rows([obj])
        else:
            if title:
                self.out.write(f"{title}\n")
            items = flatten(obj)
            width = max((len(k) for k, _ in items), default=0)
            for k, v in items:
                self.out.write(f"{k.ljust(width)}  {cell(k.rsplit('.', 1)[-1], v, 100)}\n")

    def _csv(self, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        flat = [dict(flatten(r)) for r in rows]
        header: dict[str, None] = {} if flat else dict.fromkeys(columns or [])
        for r in flat:
            header.update(dict.fromkeys(r))
        import csv  # only for --csv (start-up of the CLI's thin clients)

        w = csv.writer(self.out, lineterminator="\n")
        w.writerow(list(header))
        for r in flat:
            w.writerow([_csv_value(r.get(k)) for k in header])

    def _table(self, rows: list[dict[str, Any]], columns: list[str] | None, title: str | None) -> None:
        cols = list(columns) if columns else (list(rows[0].keys()) if rows else [])
        if title:
            self.out.write(f"{title}\n")
        if not rows:
            self.out.write("(none)\n")
            return
        cells = [[cell(c, r.get(c)) for c in cols] for r in rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        right = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                     for r in rows if r.get(c) is not None) for c in cols]

        def line(values: list[str]) -> str:
            parts = [v.rjust(w) if rj else v.ljust(w) for v, w, rj in zip(values, widths, right, strict=True)]
            return "  ".join(parts).rstrip() + "\n"

        self.out.write(line([c.upper() for c in cols]))
        for row in cells:
            self.out.write(line(row))
