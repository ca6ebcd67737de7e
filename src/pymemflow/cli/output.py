"""The one output mechanism every command uses: a table for people (default), or ``--json``,
``--jsonl``, ``--csv`` for programs.

A listing is a list of records (dicts). The table shows the columns the command picks; the machine
formats carry every field of every record (nested dicts are kept in JSON/JSONL and flattened to
``outer.inner`` columns in CSV), so nothing the OS layer collected is lost on the way out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import IO, Any

# the one serialiser and table renderer: the daemon's API and the mount use them too
from ..records import HEX_FIELDS, cell, flatten, is_hex_field, json_text, jsonable, object_text, table_text

__all__ = ["FORMATS", "HEX_FIELDS", "Output", "cell", "flatten", "is_hex_field", "jsonable"]

FORMATS = ("table", "json", "jsonl", "csv")
"""``table`` for people; the rest print nothing but data on stdout."""

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
        self.out.write(json_text(obj))

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

    def stream(self, rows: Iterable[dict[str, Any]], columns: list[str],
               widths: Mapping[str, int] | None = None) -> int:
        """A listing printed record by record as ``rows`` yields them (a scan's hits), flushed after
        each: JSON Lines and CSV rows as they come, a JSON array closed at the end, and a table whose
        column widths are fixed up front (``widths``: the expected widths; longer cells push the row).
        Same records as :meth:`rows` would print; returns how many there were."""
        n = 0
        header: list[str] | None = None
        w = [max(len(c), (widths or {}).get(c, 0)) for c in columns]
        for r in rows:
            if self.fmt == "json":
                self.out.write(("[\n" if n == 0 else ",\n") + json.dumps(jsonable(r), indent=2))
            elif self.fmt == "jsonl":
                self.out.write(json.dumps(jsonable(r)) + "\n")
            elif self.fmt == "csv":
                flat = dict(flatten(jsonable(r)))
                if header is None:
                    header = list(flat)
                    self._csv_writer().writerow(header)
                self._csv_writer().writerow([_csv_value(flat.get(k)) for k in header])
            else:
                if n == 0:
                    self.out.write("  ".join(c.upper().ljust(x) for c, x in zip(columns, w, strict=True)).rstrip() + "\n")
                cells = [cell(c, r.get(c), max(x, 48)) for c, x in zip(columns, w, strict=True)]
                self.out.write("  ".join(v.ljust(x) for v, x in zip(cells, w, strict=True)).rstrip() + "\n")
            n += 1
            self.out.flush()
        if self.fmt == "json":
            self.out.write("[]\n" if n == 0 else "\n]\n")
        elif self.fmt == "csv" and header is None:
            self._csv_writer().writerow(columns)
        elif self.fmt == "table" and n == 0:
            self.out.write("(none)\n")
        self.out.flush()
        return n

    def _csv_writer(self) -> Any:
        import csv  # only for --csv (start-up of the CLI's thin clients)

        return csv.writer(self.out, lineterminator="\n")

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
            self.out.write(object_text(obj))

    def _csv(self, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        flat = [dict(flatten(r)) for r in rows]
        header: dict[str, None] = {} if flat else dict.fromkeys(columns or [])
        for r in flat:
            header.update(dict.fromkeys(r))
        w = self._csv_writer()
        w.writerow(list(header))
        for r in flat:
            w.writerow([_csv_value(r.get(k)) for k in header])

    def _table(self, rows: list[dict[str, Any]], columns: list[str] | None, title: str | None) -> None:
        self.out.write(table_text(rows, columns, title))
