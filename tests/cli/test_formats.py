"""Every command takes table (default), --json, --jsonl and --csv through one output mechanism; every
listing command's records are the same in all three machine formats.

The commands come from the parser, so a new command fails here until it is listed below, as a listing
(with a command line that lists something) or as a single-object command.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from pymemflow.cli.main import build_parser, main
from pymemflow.cli.output import flatten

DEMO = ["-c", "demo", "-o", "win32"]

LISTINGS: dict[str, list[str]] = {
    "plugins": ["plugins"],
    "targets": ["targets", "-c", "demo"],
    "ps": [*DEMO, "ps"],
    "modules": [*DEMO, "modules", "-p", "explorer.exe"],
    "kmods": [*DEMO, "kmods"],
    "exports": [*DEMO, "exports", "-p", "explorer.exe", "-m", "kernel32.dll"],
    "imports": [*DEMO, "imports", "-p", "explorer.exe", "-m", "explorer.exe"],
    "sections": [*DEMO, "sections", "-p", "explorer.exe", "-m", "kernel32.dll"],
    "maps": [*DEMO, "maps", "-p", "explorer.exe"],
    "translate": [*DEMO, "translate", "0xfffff8006fe00000", "0xfffff8006fe01000"],
    "keys": [*DEMO, "keys", "--once"],
    "dmesg": ["-o", "native", "dmesg", "-n", "20"],
    "scan": [*DEMO, "scan", "-p", "explorer.exe", "--pattern", "4D 5A 90 00"],
    "psscan": [*DEMO, "psscan"],
    "netscan": [*DEMO, "netscan"],
    "bench": [*DEMO, "bench", "--seconds", "0.005", "--chunks", "0x1000,8", "--batches", "1,4"],
    "threads": [*DEMO, "threads", "-p", "explorer.exe"],
    "handles": [*DEMO, "handles", "-p", "notepad.exe"],
    "timeline": [*DEMO, "timeline"],
    "malfind": [*DEMO, "malfind"],
}
"""Listing commands and a command line that lists records."""

OBJECTS: dict[str, list[str]] = {
    "info": ["-c", "dummy:size=64k", "info"],
    "phys-read": ["-c", "dummy:size=64k", "phys-read", "0x10", "16"],
    "read": [*DEMO, "read", "-p", "explorer.exe", "0x7ff627520000", "16"],
    "dump-module": [*DEMO, "dump-module", "-p", "explorer.exe", "-m", "kernel32.dll", "{tmp}/k32.{fmt}.bin"],
    "dump-phys": ["-c", "dummy:size=64k", "dump-phys", "{tmp}/mem.{fmt}.raw"],
}
"""Commands that print one object (or bytes): --json an object, --jsonl one line, --csv one row."""

NO_RECORDS: dict[str, str] = {"serve": "a daemon: it logs and serves, the API returns the records",
                               "mount": "a FUSE server: tests/fs read its files with real tools",
                               "gdbserver": "a GDB stub: tests/gdb drive it with gdb"}
"""Commands that print no records at all."""

ELSEWHERE: dict[str, str] = {
    "fleet": "tests/fleet/test_fleet_cli.py runs it with --json, --jsonl and --csv on a Dask cluster",
}
"""Listing commands whose formats need more than one process and are tested in their own folder."""

PENDING: dict[str, str] = {}
"""Commands registered before their OS-layer implementation lands (empty when issue 18 is done)."""

JSON_DOCUMENTS = {"plugins": "plugins", "bench": "cells"}
"""Listings whose --json is a document holding the records under this key (with context beside them)."""


def parser_commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_command_is_covered() -> None:
    covered = set(LISTINGS) | set(OBJECTS) | set(ELSEWHERE) | set(NO_RECORDS) | set(PENDING)
    assert parser_commands() == covered, "list the new command in LISTINGS, OBJECTS, ELSEWHERE or NO_RECORDS"
    for name, where in ELSEWHERE.items():
        text = (Path(__file__).resolve().parents[2] / where.split()[0]).read_text()
        assert all(f'"{flag}"' in text for flag in ("--json", "--jsonl", "--csv")), name


def run(capsys: pytest.CaptureFixture[str], argv: list[str], tmp: Path, *fmt: str) -> str:
    argv = [a.replace("{tmp}", str(tmp)).replace("{fmt}", "".join(fmt).strip("-") or "table") for a in argv]
    code = main([*argv, *fmt])
    out, err = capsys.readouterr()
    assert code == 0, f"{argv} {fmt}: {err}"
    return out


def _csv_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_listing_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    argv = LISTINGS[name]
    table = run(capsys, argv, tmp_path)
    doc = json.loads(run(capsys, argv, tmp_path, "--json"))
    records = doc[JSON_DOCUMENTS[name]] if name in JSON_DOCUMENTS else doc
    assert isinstance(records, list) and records, f"{name}: no records to compare"
    lines = run(capsys, argv, tmp_path, "--jsonl").splitlines()
    if name in ("bench", "dmesg"):  # measured / live: the same shape, not the same values
        assert [list(json.loads(x)) for x in lines] == [list(r) for r in records]
    else:
        assert [json.loads(x) for x in lines] == records
    rows = list(csv.DictReader(io.StringIO(run(capsys, argv, tmp_path, "--csv"))))
    assert len(rows) == len(records)
    if name not in ("bench", "dmesg"):
        for row, rec in zip(rows, records, strict=True):
            assert row == {k: _csv_text(v) for k, v in flatten(rec)}
    with pytest.raises(json.JSONDecodeError):  # the table is for people
        json.loads(table)


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_object_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    argv = OBJECTS[name]
    obj = json.loads(run(capsys, argv, tmp_path, "--json"))
    assert isinstance(obj, dict) and obj
    (line,) = run(capsys, argv, tmp_path, "--jsonl").splitlines()
    assert set(json.loads(line)) == set(obj)
    rows = list(csv.DictReader(io.StringIO(run(capsys, argv, tmp_path, "--csv"))))
    assert len(rows) == 1 and set(rows[0]) == {k for k, _ in flatten(obj)}


def test_format_flags_before_the_command_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    after = run(capsys, [*DEMO, "ps"], tmp_path, "--csv")
    assert run(capsys, ["--csv", *DEMO, "ps"], tmp_path) == after
