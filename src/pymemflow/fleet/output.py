"""Streaming output of a fleet run: every target's rows are written the moment it finishes.

One table with ``target`` first (default), a JSON list, JSON lines, CSV, or a Parquet file. The
machine formats carry every field of every record (CSV flattens nested dicts to ``outer.inner``);
a failed target is one row with ``target`` and ``error`` after any partial rows it produced.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import IO, Any

from ..cli.output import _csv_value, cell, flatten
from .runner import TargetResult

log = logging.getLogger(__name__)

FORMATS = ("table", "json", "jsonl", "csv", "parquet")


class Writer:
    """Base: ``add(result)`` as targets finish, ``close()`` at the end."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.rows = 0

    def add(self, res: TargetResult) -> None:
        rows = res.rows()
        self.rows += len(rows)
        self.write(res, rows)
        self.out.flush()

    def write(self, res: TargetResult, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.out.flush()


class JsonLinesWriter(Writer):
    def write(self, res: TargetResult, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            self.out.write(json.dumps(r) + "\n")


class JsonWriter(Writer):
    """A JSON list written one record per line as results arrive (valid JSON once closed)."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__(out)
        self.started = False

    def write(self, res: TargetResult, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            self.out.write(("[\n  " if not self.started else ",\n  ") + json.dumps(r))
            self.started = True

    def close(self) -> None:
        self.out.write("\n]\n" if self.started else "[]\n")
        super().close()


class CsvWriter(Writer):
    """The header is ``target``, the first successful target's fields, ``error``; rows of failures
    before that are held back until the header is known."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__(out)
        self.csv = csv.writer(out, lineterminator="\n")
        self.header: list[str] | None = None
        self.held: list[dict[str, Any]] = []
        self.dropped: set[str] = set()

    def write(self, res: TargetResult, rows: list[dict[str, Any]]) -> None:
        flat = [dict(flatten(r)) for r in rows]
        if self.header is None:
            if not res.records:
                self.held += flat
                return
            fields = [k for k, _ in flatten(res.records[0])]
            self.header = ["target", *fields, "error"]
            self.csv.writerow(self.header)
            flat, self.held = self.held + flat, []
        for r in flat:
            extra = set(r) - set(self.header) - self.dropped
            if extra:
                self.dropped |= extra
                log.warning("csv: fields %s are not in the header (from the first target) and are left out",
                            ", ".join(sorted(extra)))
            self.csv.writerow([_csv_value(r.get(k)) for k in self.header])

    def close(self) -> None:
        if self.header is None:
            self.header = ["target", "error"]
            self.csv.writerow(self.header)
            for r in self.held:
                self.csv.writerow([_csv_value(r.get(k)) for k in self.header])
        super().close()


class TableWriter(Writer):
    """A table for people. Column widths come from the first target with records (rows of later
    targets that are wider push their line out rather than holding the output back)."""

    def __init__(self, out: IO[str], labels: list[str] | None = None) -> None:
        super().__init__(out)
        self.label_width = max((len(t) for t in labels or []), default=0)
        self.cols: list[str] | None = None
        self.widths: list[int] = []
        self.right: list[bool] = []
        self.held: list[TargetResult] = []

    def write(self, res: TargetResult, rows: list[dict[str, Any]]) -> None:
        if self.cols is None:
            if not res.records:
                self.held.append(res)
                return
            self._start(res)
            held, self.held = self.held, []
            for h in held:
                self._lines(h)
        self._lines(res)

    def _start(self, res: TargetResult) -> None:
        fields = res.columns or list(res.records[0].keys())
        self.cols = ["target", *fields]
        rows = res.rows()
        cells = [[cell(c, r.get(c)) for c in self.cols] for r in rows if "error" not in r]
        self.widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(self.cols)]
        self.widths[0] = max(self.widths[0], self.label_width)
        self.right = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                          for r in res.records if r.get(c) is not None) and c != "target" for c in self.cols]
        self.out.write(self._line([c.upper() for c in self.cols]))

    def _line(self, values: list[str]) -> str:
        parts = [v.rjust(w) if rj else v.ljust(w) for v, w, rj in zip(values, self.widths, self.right, strict=True)]
        return "  ".join(parts).rstrip() + "\n"

    def _lines(self, res: TargetResult) -> None:
        assert self.cols is not None
        for r in res.records:
            self.out.write(self._line([cell(c, res.target if c == "target" else r.get(c)) for c in self.cols]))
        if res.error is not None:
            self.out.write(f"{res.target.ljust(self.widths[0])}  error: {res.error}\n")

    def close(self) -> None:
        if self.cols is None:  # nothing but failures (or no records at all)
            width = max([len("TARGET"), self.label_width] + [len(h.target) for h in self.held])
            if self.held:
                self.out.write(f"{'TARGET'.ljust(width)}  ERROR\n")
            for h in self.held:
                if h.error is not None:
                    self.out.write(f"{h.target.ljust(width)}  {h.error}\n")
        super().close()


class ParquetWriter(Writer):
    """A Parquet file (pyarrow). Rows are kept until the end so every column gets one type that holds
    all its values: integers as int64 (uint64 when an address does not fit), floats, booleans, and
    text for strings, lists and dicts (as JSON) or anything mixed -- no value is dropped."""

    def __init__(self, path: str | Path, out: IO[str], group: int = 65536) -> None:
        super().__init__(out)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("--parquet needs pyarrow: pip install 'pymemflow[parquet]'") from None
        self.pa, self.pq = pa, pq
        self.path = Path(path)
        self.group = group
        self.buf: list[dict[str, Any]] = []

    def write(self, res: TargetResult, rows: list[dict[str, Any]]) -> None:
        self.buf += rows

    def close(self) -> None:
        names: dict[str, None] = {"target": None}
        for r in self.buf:
            names.update(dict.fromkeys(r))
        names.pop("error", None)
        names["error"] = None
        columns = {n: [r.get(n) for r in self.buf] for n in names}
        fields, arrays = [], []
        for n, vals in columns.items():
            t, conv = _parquet_type([v for v in vals if v is not None], self.pa)
            fields.append(self.pa.field(n, t))
            arrays.append(self.pa.array([None if v is None else conv(v) for v in vals], type=t))
        table = self.pa.Table.from_arrays(arrays, schema=self.pa.schema(fields))
        tmp = self.path.with_name(self.path.name + ".part")
        self.pq.write_table(table, str(tmp), row_group_size=self.group)
        tmp.replace(self.path)
        super().close()


def _parquet_type(vals: list[Any], pa: Any) -> tuple[Any, Any]:
    """The narrowest Arrow type holding every value, and the conversion into it."""
    if vals and all(isinstance(v, bool) for v in vals):
        return pa.bool_(), bool
    if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        if all(-(1 << 63) <= v < 1 << 63 for v in vals):
            return pa.int64(), int
        if all(0 <= v < 1 << 64 for v in vals):
            return pa.uint64(), int
    elif vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return pa.float64(), float
    return pa.string(), lambda v: v if isinstance(v, str) else json.dumps(v)


def make_writer(fmt: str, out: IO[str], parquet: str | Path | None = None, labels: list[str] | None = None) -> Writer:
    """``labels``: the targets' labels, so the table's ``target`` column fits them all from the start."""
    if parquet is not None:
        return ParquetWriter(parquet, out)
    if fmt == "table":
        return TableWriter(out, labels)
    writers: dict[str, type[Writer]] = {"table": TableWriter, "json": JsonWriter, "jsonl": JsonLinesWriter,
                                        "csv": CsvWriter}
    if fmt not in writers:
        raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")
    return writers[fmt](out)
