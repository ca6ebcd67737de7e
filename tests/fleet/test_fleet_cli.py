"""`pymemflow fleet` from the command line: output formats, exit codes, summary, local cluster."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DaskCluster, Dumps, by_target, run_alone

from pymemflow.fleet.command import split_words

pytestmark = pytest.mark.slow

PYMEMFLOW = [sys.executable, "-m", "pymemflow"]


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYMEMFLOW, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_local_cluster_jsonl_and_parquet(windows_dumps: Dumps, tmp_path: Path) -> None:
    """The default local cluster (two worker processes), a glob target, --jsonl on stdout and the
    same rows in a Parquet file; exit code 1 and a summary naming the missing target."""
    pq = pytest.importorskip("pyarrow.parquet")
    glob_word = str(windows_dumps.folder / "win10-s4.*")
    words = [glob_word, windows_dumps.windows[0], windows_dumps.missing]
    out = tmp_path / "ps.parquet"
    p = _run(["fleet", *words, "-o", "win32", "ps", "--jsonl", "--parquet", str(out), "--workers", "2"])
    assert p.returncode == 1, p.stderr
    records = [json.loads(line) for line in p.stdout.splitlines()]
    got = by_target(records)
    globbed = sorted(str(x) for x in windows_dumps.folder.glob("win10-s4.*"))
    assert set(got) == {*globbed, windows_dumps.windows[0], windows_dumps.missing}
    for t in [*globbed, windows_dumps.windows[0]]:
        assert got[t] == run_alone(["-c", f"auto:{t}", "-o", "win32"], ["ps"]), t
    assert got[windows_dumps.missing] == run_alone(windows_dumps.alone[windows_dumps.missing], ["ps"])
    assert str(windows_dumps.missing) in (got[windows_dumps.missing][1] or "")
    summary = p.stderr.strip().splitlines()
    assert any(line.startswith(f"fleet: {len(got)} targets, {len(got) - 1} ok, 1 failed") for line in summary)
    assert any(windows_dumps.missing in line and "failed" in line for line in summary)
    table = pq.read_table(out).to_pylist()
    assert table[0]["target"] and list(table[0])[0] == "target"
    def as_stored(v: object) -> object:  # nested fields are JSON text in the Parquet file
        return json.dumps(v) if isinstance(v, (dict, list)) else v

    assert sorted(map(json.dumps, table)) == sorted(
        json.dumps({k: as_stored(r.get(k)) for k in table[0]}) for r in records)


def test_table_csv_json_on_a_scheduler(dask_cluster: DaskCluster, windows_dumps: Dumps) -> None:
    """Table (target column first, error line), CSV (header, every field), JSON list -- same rows."""
    words = windows_dumps.windows[:3] + [windows_dumps.corrupt]
    base = ["fleet", *words, "-o", "win32", "ps", "--scheduler", dask_cluster.address]
    expected = {w: run_alone(windows_dumps.alone[w], ["ps"]) for w in words}

    js = _run([*base, "--json"])
    assert js.returncode == 1
    assert by_target(json.loads(js.stdout)) == expected

    cs = _run([*base, "--csv"])
    rows = list(csv.DictReader(io.StringIO(cs.stdout)))
    assert list(rows[0])[0] == "target" and "error" in rows[0]
    assert sum(1 for r in rows if r["target"] == words[0]) == len(expected[words[0]][0])
    assert [r["error"] for r in rows if r["target"] == windows_dumps.corrupt] == [expected[windows_dumps.corrupt][1]]
    first = expected[words[0]][0][0]
    mine = next(r for r in rows if r["target"] == words[0] and r["pid"] == str(first["pid"]))
    assert mine["name"] == first["name"] and mine["dtb"] == str(first["dtb"])

    tb = _run([*base, "--progress"])
    lines = tb.stdout.splitlines()
    assert lines[0].split()[:3] == ["TARGET", "PID", "PPID"]
    assert sum(1 for ln in lines if ln.startswith(words[1] + " ")) == len(expected[words[1]][0])
    assert any(ln.startswith(windows_dumps.corrupt) and " error: " in ln for ln in lines)
    assert "done" in tb.stderr and "failed" in tb.stderr and "ETA" in tb.stderr


def test_usage_errors_exit_2_before_any_cluster(windows_dumps: Dumps) -> None:
    p = _run(["fleet", windows_dumps.windows[0], "-o", "win32", "nosuchcommand"])
    assert p.returncode == 2 and "no command given" in p.stderr
    p = _run(["fleet", windows_dumps.windows[0], "-o", "win32", "dump-phys", "x.raw"])
    assert p.returncode == 2 and "not a listing command" in p.stderr
    p = _run(["fleet", windows_dumps.windows[0], "-o", "win32", "modules"])
    assert p.returncode == 2 and "-p" in p.stderr
    p = _run(["fleet", str(windows_dumps.folder / "nothing-*.elf"), "ps"])
    assert p.returncode == 2 and "matches no file" in p.stderr


def test_split_words() -> None:
    """Targets up to the first command name; fleet options anywhere the command has none of its own."""
    t, c, o = split_words(["a.dmp", "-c raw:/x -o win32", "--workers", "2", "modules", "-p", "x.exe",
                           "--jsonl", "--scheduler=tcp://h:1", "--retries", "1"])
    assert t == ["a.dmp", "-c raw:/x -o win32"]
    assert c == ["modules", "-p", "x.exe"]
    assert o == ["--workers", "2", "--jsonl", "--scheduler=tcp://h:1", "--retries", "1"]
    t, c, o = split_words(["./ps", "-c", "qemu:vm", "ps"])
    assert t == ["./ps"] and c == ["ps"] and o == ["-c", "qemu:vm"]


def test_unreachable_scheduler_is_one_clear_error(windows_dumps: Dumps) -> None:
    """No scheduler at the address: exit 1 and one line naming it (not a row per target)."""
    p = _run(["fleet", *windows_dumps.windows[:2], "-o", "win32", "ps", "--scheduler", "tcp://127.0.0.1:9"])
    assert p.returncode == 1
    assert p.stdout == ""
    [line] = [ln for ln in p.stderr.splitlines() if ln.startswith("pymemflow: error:")]
    assert "cannot start or reach the Dask scheduler (tcp://127.0.0.1:9)" in line
