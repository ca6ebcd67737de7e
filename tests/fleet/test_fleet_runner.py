"""The worker side without a cluster: targets, the CLI's commands captured as records, timeouts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import Dumps, run_alone

from pymemflow.errors import ArgumentError
from pymemflow.fleet.runner import RecordingContext, TargetResult, deadline, parse_command, run_target
from pymemflow.fleet.targets import Target, parse_target, resolve_targets
from pymemflow.plugins.chain import LinkSpec


def test_target_words(tmp_path: Path) -> None:
    (tmp_path / "a.elf").write_bytes(b"x")
    (tmp_path / "b.elf").write_bytes(b"x")
    [t] = parse_target(str(tmp_path / "a.elf"), "win32")
    assert [(lk.kind, lk.name) for lk in t.links] == [("connector", "auto"), ("os", "win32")]
    assert t.links[0].args["target"] == str(tmp_path / "a.elf")
    globbed = parse_target(str(tmp_path / "*.elf"))
    assert [g.label for g in globbed] == [str(tmp_path / "a.elf"), str(tmp_path / "b.elf")]
    [spec] = parse_target("raw:/x.img,offset=0x1000", "win32")
    assert spec.links[0].name == "raw" and spec.links[0].args["offset"] == "0x1000"
    [chain] = parse_target("-c qemu:vm3 -o linux", "win32")  # the chain's own OS wins
    assert [(lk.kind, lk.name) for lk in chain.links] == [("connector", "qemu"), ("os", "linux")]
    [native] = parse_target("native", "win32")  # an OS layer needing no connector: this machine
    assert [(lk.kind, lk.name) for lk in native.links] == [("os", "native")]
    [missing] = parse_target("/no/such/file.dmp")  # an error row later, not a usage error now
    assert missing.links[0].name == "auto"
    with pytest.raises(ArgumentError, match="matches no file"):
        parse_target(str(tmp_path / "*.nothing"))
    listing = tmp_path / "targets.txt"
    listing.write_text(f"# my targets\n{tmp_path / 'a.elf'}\n\nraw:/x.img\n{tmp_path / 'a.elf'}\n")
    assert [t.label for t in resolve_targets([], None, listing)] == [str(tmp_path / "a.elf"), "raw:/x.img"]


def test_parse_command_is_the_clis() -> None:
    args = parse_command(["modules", "-p", "explorer.exe"])
    assert args.process == "explorer.exe" and args.json
    for bad, msg in ((["nosuch"], "unknown command"), (["fleet", "ps"], "not a listing command"),
                     (["modules"], "-p"), ([], "no command"), (["serve"], "not a listing command"),
                     (["read", "-p", "1", "0x1000", "16", "--out", "x.bin"], "writes a file")):
        with pytest.raises(ArgumentError, match=msg):
            parse_command(bad)


def test_run_target_matches_cli_alone(windows_dumps: Dumps) -> None:
    word = windows_dumps.windows[0]
    [target] = parse_target(word, "win32")
    res = run_target(target, ["ps"])
    assert res.ok and res.seconds > 0
    assert (res.records, None) == run_alone(windows_dumps.alone[word], ["ps"])
    assert res.columns and res.columns[0] == "pid"
    bad = run_target(parse_target(windows_dumps.corrupt, "win32")[0], ["ps"])
    assert not bad.ok and bad.rows() == [{"target": windows_dumps.corrupt, "error": bad.error}]
    assert (bad.records, bad.error) == run_alone(windows_dumps.alone[windows_dumps.corrupt], ["ps"])


def test_partial_rows_are_kept() -> None:
    """A command whose records come from a generator that fails mid-way keeps what it produced."""
    ctx = RecordingContext(parse_command(["ps"]), Target("t", [LinkSpec("connector", "dummy", {"size": "1m"})]))

    def rows():
        yield {"pid": 1}
        yield {"pid": 2}
        raise OSError("read failed at 0x1000")

    with pytest.raises(OSError):
        ctx.emit(rows(), ["pid"])
    assert ctx.records == [{"pid": 1}, {"pid": 2}]
    res = TargetResult("t", 0, records=ctx.records, error="read failed at 0x1000")
    assert res.rows() == [{"target": "t", "pid": 1}, {"target": "t", "pid": 2},
                          {"target": "t", "error": "read failed at 0x1000"}]


def test_deadline_interrupts_python_code() -> None:
    from pymemflow.fleet.runner import TargetTimeout

    t0 = time.monotonic()
    with pytest.raises(TargetTimeout), deadline(0.2):
        while True:
            sum(range(1000))
    assert time.monotonic() - t0 < 5
    with deadline(5):  # finishing in time leaves nothing pending behind
        pass
    time.sleep(0.05)


def test_timeout_becomes_an_error_row(windows_dumps: Dumps) -> None:
    """A target out of time yields its error row (the worker thread is interrupted, not left running).
    The delay middleware (5 ms a read) makes the command surely outlast its 0.05 s: without it the demo
    machine's `maps` can finish in 40 ms on a quiet machine and the test would measure the machine."""
    [target] = parse_target("demo:win10,seed=11,size=512m:delay=5ms", "win32")
    res = run_target(target, ["maps", "-p", "explorer.exe"], timeout=0.05)
    assert res.error == "timed out after 0.05 s"
    assert res.seconds < 30


def test_a_command_stuck_in_c_code_still_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon that accepts the connection and never answers: the connector blocks in recv(), which
    the timeout cannot interrupt; the target still ends as timed out, shortly after its time."""
    import socket

    from pymemflow.fleet import runner

    monkeypatch.setattr(runner, "STUCK_GRACE", 1.0)
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    try:
        [target] = parse_target(f"remote:unix:{path},conn=vm1", "win32")
        t0 = time.monotonic()
        res = run_target(target, ["ps"], timeout=0.5)
        took = time.monotonic() - t0
    finally:
        server.close()
    assert res.error == "timed out after 0.5 s (the command did not stop; its thread was left behind)"
    assert took < 10
