"""The CLI as a new user tries it (issue 13): each rough edge as command -> exit code -> the exact message."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pymemflow
from pymemflow.cli.main import build_parser, main
from pymemflow.errors import ArgumentError
from pymemflow.plugins.args import parse_link
from pymemflow.plugins.chain import parse_chain_args

DEMO = ["-c", "demo", "-o", "win32"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


# --- -c FILE: a bare path means auto: ---

def test_bare_path_means_auto(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A LiME file written by dump-phys opens with `-c FILE` as with `-c auto:FILE` and pymemflow.open(FILE)."""
    lime = tmp_path / "mem.lime"
    code, _, err = run(capsys, "-c", "dummy:size=64k", "dump-phys", str(lime), "--format", "lime", "--json")
    assert code == 0, err
    code, out, err = run(capsys, "-c", str(lime), "info", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["chain"] == f"-c auto:{lime}" and doc["connector"]["connector"] == "lime"
    with pymemflow.open(str(lime)) as mem:
        assert doc["connector"]["max_address"] == mem.metadata.max_address == 0x10000
    # middleware and arguments after a bare path, as after auto:PATH
    code, out, err = run(capsys, "-c", f"{lime}:cache=true", "info", "--json")
    assert code == 0, err
    assert json.loads(out)["chain"] == f"-c auto:{lime}:cache=true"


def test_bare_path_errors_are_the_files(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "-c", "nothere.lime", "info") == (
        1, "", "pymemflow: error: auto: cannot open nothere.lime: No such file or directory\n")
    missing = tmp_path / "missing.img"
    code, out, err = run(capsys, "-c", str(missing), "info")
    assert (code, out, err) == (1, "", f"pymemflow: error: auto: cannot open {missing}: No such file or directory\n")
    raw = tmp_path / "plain.img"
    raw.write_bytes(bytes(4096))
    code, _, err = run(capsys, "-c", str(raw), "info")
    assert code == 1 and err.startswith(f"pymemflow: error: {raw} at offset 0x0: magic: unknown dump format;")
    assert err.rstrip().endswith("(a raw image has no magic: open it with raw:PATH)")
    code, out, err = run(capsys, "-c", f"{raw},raw=true", "info", "--json")
    assert code == 0 and json.loads(out)["connector"]["connector"] == "raw"


# --- options after the command, typos, error prefix ---

def test_options_after_the_command_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    code, before, err = run(capsys, *DEMO, "ps", "--json")
    assert code == 0, err
    code, after, err = run(capsys, "ps", "-c", "demo", "-o", "win32", "--json")
    assert code == 0, err
    assert after == before
    code, mixed, _ = run(capsys, "-c", "demo", "ps", "-o", "win32", "-v", "--json")
    assert code == 0 and mixed == before


@pytest.mark.parametrize("argv, message", [
    (["-c", "demo", "-o", "win32", "pss"],
     "pymemflow: error: unknown command 'pss' (did you mean 'ps'?) (commands: plugins, targets, info, "),
    (["-c", "demo", "-o", "win32", "ps", "--jsn"],
     "pymemflow: error: ps: unrecognized arguments: --jsn (did you mean --json?)\n"),
    (["--jsno", "plugins"], "pymemflow: error: plugins: unrecognized arguments: --jsno (did you mean --json?)\n"),
    (["-c", "demo", "ps", "--version"], "pymemflow: error: ps: unrecognized arguments: --version (--version is an "
     "option of pymemflow itself: put it before the command)\n"),
    (["-c", "demo", "-o", "wind32", "ps"],
     "pymemflow: error: unknown OS layer 'wind32' (did you mean 'win32'?); available: "),
    (["-c", "dumy", "info"], "pymemflow: error: unknown connector 'dumy' (did you mean 'dummy'?); available: "),
    (["-c", "dummy:sise=1m", "info"],
     "pymemflow: error: dummy: unknown argument 'sise' (did you mean 'size'?); valid arguments: target, size\n"),
    (["-c", "dummy::cahce=true", "info"],
     "pymemflow: error: dummy: unknown middleware option 'cahce' (did you mean 'cache'?); valid middleware options: "),
    (["-o", "native:io=readvv", "ps"], "pymemflow: error: native: bad value 'readvv' for 'io': 'readvv' is not one "
     "of auto, readv, procmem (did you mean 'readv'?)\n"),
    (["-c", "demo", "-o", "win32", "modules"],
     "pymemflow: error: modules: the following arguments are required: -p/--process\n"),
    (["-c", "dummy", "phys-read", "zz", "4"],
     "pymemflow: error: phys-read: argument addr: 'zz' is not a number (use decimal, 0x hex, optionally with "
     "k/m/g/t suffix)\n"),
    (["-c", "dummy", "dump-phys", "x.img", "--format", "rwa"],
     "pymemflow: error: dump-phys: argument --format: invalid choice: 'rwa' (did you mean 'raw'?) (choose from "),
    (["ps", "--json", "--csv"], "pymemflow: error: ps: argument --csv: not allowed with argument --json\n"),
])
def test_typos_and_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and err.startswith(message), err


def test_every_command_has_a_plain_text_description(capsys: pytest.CaptureFixture[str]) -> None:
    """`COMMAND --help` says what the command does, in words (no reStructuredText markup)."""
    for name in commands():
        with pytest.raises(SystemExit) as ex:
            main([name, "--help"])
        out, _ = capsys.readouterr()
        assert ex.value.code == 0
        paragraphs = out.split("\n\n")
        assert paragraphs[0].startswith(f"usage: pymemflow {name}")
        description = paragraphs[1]
        assert not description.startswith(("positional arguments", "options")), f"{name}: no description"
        for markup in ("``", ":class:`", ":mod:`", ":func:`", ":meth:`", "::\n"):
            assert markup not in out, f"{name} --help shows {markup!r}"
    with pytest.raises(SystemExit):
        main(["dump-phys", "--help"])
    out, _ = capsys.readouterr()
    assert ("The copy goes to\nOUT.part with a progress journal, so a rerun after a failure resumes where it "
            "stopped;") in out


# --- URL-like targets ---

def test_url_targets_need_no_quotes() -> None:
    la = parse_link("leechcore:file:///x.img,remote=rpc://host:28473:cache=true")
    assert la.args == {"target": "file:///x.img", "remote": "rpc://host:28473"} and la.middleware == {"cache": "true"}
    [ls] = parse_chain_args(["-c", "leechcore:file:///x.img"])
    assert ls.args == {"target": "file:///x.img"} and str(ls) == "-c leechcore:file:///x.img"


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=":/,=\"'`ab1 .", max_size=40))
def test_link_parser_takes_any_text(text: str) -> None:
    """Whatever the text, a link spec parses or is an ArgumentError (never another exception or a hang)."""
    try:
        la = parse_link(text)
    except ArgumentError:
        return
    assert la.name


def test_leechcore_file_url_on_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("leechcorepyc", reason="leechcorepyc is not installed")
    img = tmp_path / "mem.img"
    img.write_bytes(bytes(range(256)) * (64 << 10))  # 16 MiB: LeechCore's file device refuses tiny files
    code, out, err = run(capsys, "-c", f"leechcore:file://{img}", "phys-read", "0x1234", "4", "--json")
    assert code == 0, err
    assert json.loads(out)["hex"] == "34353637"


def test_a_colon_in_a_value_says_to_quote_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-c", "raw:/images/a:b.img", "info")
    assert (code, out) == (2, "")
    assert err == ("pymemflow: error: raw: 'b.img' after the second ':' is no middleware option; if the ':' is part "
                   "of the value, quote it: -c 'raw:\"/images/a:b.img\"' (middleware options: cache, cache_page_size, "
                   "cache_size, cache_time, delay, metrics)\n")


# --- every field of the info records ---

def test_ps_json_carries_every_field_tables_pick_columns(capsys: pytest.CaptureFixture[str]) -> None:
    pid = os.getpid()
    code, out, _ = run(capsys, "-o", "native", "ps", "--json")
    me = next(r for r in json.loads(out) if r["pid"] == pid)
    assert code == 0 and me["create_time"] is not None and "exit_code" in me
    assert me["extra"]["uid"] == os.getuid() and me["extra"]["threads"] >= 1
    code, out, _ = run(capsys, "-o", "native", "ps", "--csv")
    header = out.splitlines()[0].split(",")
    assert code == 0 and {"create_time", "exit_code", "extra.uid", "extra.threads"} <= set(header)
    code, out, _ = run(capsys, *DEMO, "ps")
    assert code == 0 and out.splitlines()[0].split() == ["PID", "PPID", "NAME", "STATE", "ARCH", "DTB", "WOW64",
                                                          "COMMAND_LINE"]
    code, out, _ = run(capsys, *DEMO, "ps", "--json")
    system = json.loads(out)[0]
    assert list(system) == ["pid", "ppid", "name", "path", "command_line", "state", "arch", "dtb", "user_dtb",
                            "address", "wow64", "exit_code", "create_time", "extra"]


# --- translate under an OS layer ---

def test_translate_takes_the_layers_page_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """Kernel base and a module base of explorer.exe translate with the layer's roots; the bytes at the
    physical addresses are the PE images' 'MZ'."""
    code, out, _ = run(capsys, *DEMO, "info", "--json")
    os_info = json.loads(out)["os"]
    code, out, _ = run(capsys, *DEMO, "modules", "-p", "explorer.exe", "--json")
    k32 = next(m for m in json.loads(out) if m["name"].lower() == "kernel32.dll")
    code, out, _ = run(capsys, *DEMO, "ps", "--json")
    explorer = next(p for p in json.loads(out) if p["name"] == "explorer.exe")
    for argv, va, dtb in ((["translate", hex(os_info["kernel_base"])], os_info["kernel_base"], os_info["dtb"]),
                          (["translate", "-p", "explorer.exe", hex(k32["base"])], k32["base"], explorer["dtb"])):
        code, out, err = run(capsys, *DEMO, *argv, "--json")
        assert code == 0, err
        row = json.loads(out)
        assert (row["va"], row["status"], row["dtb"]) == (va, "ok", dtb)
        code, out, _ = run(capsys, "-c", "demo", "phys-read", hex(row["pa"]), "2", "--json")
        assert json.loads(out)["hex"] == b"MZ".hex()


def test_translate_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["-c", "dummy", "translate", "0x1000"], "pymemflow: error: translate: give --dtb ADDRESS, or -o OS to use "
         "its page tables (-p PID for a process's); the connector has no 'dtb' hint\n"),
        (["-c", "dummy", "translate", "-p", "4", "0x1000"], "pymemflow: error: translate: -p PROCESS needs an OS "
         "layer: give -o OS (e.g. -o win32) before the command\n"),
        ([*DEMO, "translate", "-p", "4", "--dtb", "0x1000", "0x1000"], "pymemflow: error: translate: give either "
         "-p PROCESS (its page tables) or --dtb ADDRESS, not both\n"),
    ]
    for argv, message in cases:
        assert run(capsys, *argv) == (2, "", message)
