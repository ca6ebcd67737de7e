"""scan on the synthetic Windows machine: every hit's virtual address, physical address and module
checked against the machine's ground truth (img.facts, its physical pages) and `pymemflow read`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pymemflow
from pymemflow.cli.main import main
from pymemflow.demo import build_image
from pymemflow.demo.image import SyntheticImage
from pymemflow.scan import Scanner, kernel_target, pattern_matcher, process_target

MZ = "4D 5A 90 00"


@pytest.fixture(scope="module")
def img() -> SyntheticImage:
    return build_image("win10", seed=0)


@pytest.fixture(scope="module")
def os_() -> Iterator[Any]:
    with pymemflow.open("demo", os="win32") as o:
        yield o


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["-c", "demo", "-o", "win32", "scan", *argv, "--jsonl"]) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def facts_proc(img: SyntheticImage, name: str) -> dict[str, Any]:
    return next(p for p in img.facts["processes"] if p["name"] == name)


def test_mz_at_every_module_base_of_a_process(img: SyntheticImage, os_: Any) -> None:
    truth = facts_proc(img, "explorer.exe")
    hits = list(Scanner([pattern_matcher(MZ)]).scan([process_target(os_.process("explorer.exe"))]))
    bases = {m["base"]: m["name"] for m in truth["modules"]}
    at_base = {h.address: h for h in hits if h.module_offset == 0}
    assert set(at_base) == set(bases), "an MZ header at every module base, and only there"
    for va, name in bases.items():
        h = at_base[va]
        assert (h.module or "").lower() == name.lower() and h.pid == truth["pid"] and h.process == "explorer.exe"
        assert h.phys is not None and img.read(h.phys, 4) == bytes.fromhex("4d5a9000")  # physical truth
        assert h.data == "4d5a9000" and h.length == 4
    for h in hits:  # any other MZ (none expected, but then it is real) is checked byte for byte too
        assert img.read(h.phys, 4) == bytes.fromhex("4d5a9000")


def test_wildcards_and_nibbles_match_like_the_exact_pattern(os_: Any) -> None:
    t = process_target(os_.process("explorer.exe"))
    exact = [h.address for h in Scanner([pattern_matcher(MZ)]).scan([t])]
    wild = [h.address for h in Scanner([pattern_matcher("4D 5A ?? 00")]).scan([t])]
    nibble = [h.address for h in Scanner([pattern_matcher("4D 5? 9? 00")]).scan([t])]
    assert exact and set(exact) <= set(wild) and set(exact) <= set(nibble)
    assert not list(Scanner([pattern_matcher("4D 5B ?? 00 EE EE EE")]).scan([t]))


def test_command_line_in_utf16_through_the_cli_and_read(capsys: pytest.CaptureFixture[str],
                                                        img: SyntheticImage) -> None:
    truth = facts_proc(img, "notepad.exe")
    cmd = truth["command_line"]
    assert cmd
    hits = cli(capsys, "-p", "notepad.exe", "--string", cmd, "--encoding", "utf16")
    assert hits, "the process's command line (UNICODE_STRING in its parameters) is found"
    want = cmd.encode("utf-16-le")
    for h in hits:
        assert h["pid"] == truth["pid"] and h["rule"] == f"utf-16le:{cmd}" and h["length"] == len(want)
        assert img.read(h["phys"], len(want)) == want
        assert main(["-c", "demo", "-o", "win32", "read", "-p", "notepad.exe", hex(h["address"]),
                     str(len(want)), "--json"]) == 0
        assert want.hex() in capsys.readouterr().out.replace(" ", "")


def test_all_processes_is_the_default_and_ignore_case(capsys: pytest.CaptureFixture[str], img: SyntheticImage) -> None:
    hits = cli(capsys, "--string", "NOTEPAD.EXE", "-i", "--encoding", "utf16")
    exact = cli(capsys, "--string", "NOTEPAD.EXE", "--encoding", "utf16")
    assert hits and len(exact) < len(hits)
    assert {h["target"] for h in hits} == {"process"}
    for h in hits:
        assert img.read(h["phys"], h["length"]).decode("utf-16-le").lower() == "notepad.exe"


def test_kernel_modules_headers(img: SyntheticImage, os_: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hits = cli(capsys, "--kernel", "--pattern", MZ)
    mods = {m["base"]: m["name"] for m in img.facts["kernel_modules"]}
    at_base = {h["address"]: h for h in hits if h["module_offset"] == 0}
    mapped = {b: n for b, n in mods.items() if _mapped(os_, b)}
    assert mapped and set(at_base) == set(mapped)
    for b, n in mapped.items():
        h = at_base[b]
        assert h["target"] == "kernel" and h["module"].lower() == n.lower() and h["where"] == f"{h['module']}+0x0"
        assert img.read(h["phys"], 4) == bytes.fromhex("4d5a9000")


def _mapped(os_: Any, va: int) -> bool:
    try:
        os_.kernel_memory().translate(va)
        return True
    except pymemflow.PymemflowError:
        return False


def test_phys_default_without_os_layer_finds_the_same_pages(capsys: pytest.CaptureFixture[str],
                                                            img: SyntheticImage, os_: Any) -> None:
    assert main(["-c", "demo", "scan", "--pattern", MZ, "--jsonl"]) == 0
    phys = {json.loads(x)["address"] for x in capsys.readouterr().out.splitlines()}
    kt = kernel_target(os_)
    kernel_pages = {h.phys for h in Scanner([pattern_matcher(MZ)]).scan([kt])}
    assert kernel_pages and kernel_pages <= phys
    assert phys == brute_force(img, bytes.fromhex("4d5a9000")), \
        "the physical scan finds exactly what a brute-force search of the machine's pages finds"


def brute_force(img: SyntheticImage, want: bytes) -> set[int]:
    """Every physical address where ``want`` starts (a page joined with the next one when adjacent)."""
    out = set()
    for pa in sorted(img.pages):
        nxt = img.pages.get(pa + 0x1000)
        data = bytes(img.pages[pa]) + (bytes(nxt[: len(want) - 1]) if nxt is not None else b"")
        at = data.find(want)
        while 0 <= at < 0x1000:
            out.add(pa + at)
            at = data.find(want, at + 1)
    return out


def test_max_hits_stops_early_and_hits_stream(os_: Any) -> None:
    seen: list[tuple[int, int]] = []
    s = Scanner([pattern_matcher(MZ)], chunk=0x1000, max_hits=3, progress=lambda task, d, t: seen.append((d, t)))
    targets = [process_target(os_.process(n)) for n in ("explorer.exe", "notepad.exe")]
    it = s.scan(targets)
    first = next(it)
    assert first.pid == targets[0].pid
    assert seen and seen[-1][0] < seen[-1][1], "the first hit came before the first target was read"
    rest = list(it)
    assert len(rest) == 2 and s.hits == 3


def test_bad_arguments_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, text in ((["--pattern", "4G"], "'4G' at byte 0 is not hex"),
                       (["--pattern", "?? ??"], "only wildcards"),
                       ([], "give what to look for"),
                       (["--string", "x", "--max-hits", "0"], "--max-hits"),
                       (["-p", "nosuch.exe", "--string", "x"], "no process named")):
        assert main(["-c", "demo", "-o", "win32", "scan", *argv]) != 0
        assert text in capsys.readouterr().err


def test_yara_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str], img: SyntheticImage) -> None:
    pytest.importorskip("yara", reason="yara-python (the `yara` extra) is not installed")
    rules = tmp_path / "mz.yar"
    rules.write_text('rule pe_header { strings: $mz = { 4D 5A 90 00 } $dos = "This program" '
                     "condition: $mz and $dos }\n")
    hits = cli(capsys, "-p", "notepad.exe", "--yara", str(rules))
    truth = facts_proc(img, "notepad.exe")
    mz = {h["address"] for h in hits if h["rule"] == "pe_header:$mz"}
    assert mz == {m["base"] for m in truth["modules"]}
    for h in hits:
        assert h["rule"] in ("pe_header:$mz", "pe_header:$dos")
        assert img.read(h["phys"], h["length"]) == bytes.fromhex(h["data"])
    (tmp_path / "bad.yar").write_text("rule broken {\n")
    assert main(["-c", "demo", "-o", "win32", "scan", "-p", "notepad.exe", "--yara", str(tmp_path / "bad.yar")]) != 0
    assert "bad.yar" in capsys.readouterr().err


def test_fleet_runs_scan_and_gets_the_same_records(capsys: pytest.CaptureFixture[str]) -> None:
    """`pymemflow fleet ... scan` collects the hits as records (the fleet's recording context)."""
    from pymemflow.fleet.runner import run_target
    from pymemflow.fleet.targets import parse_target

    [target] = parse_target("-c demo -o win32", "win32")
    res = run_target(target, ["scan", "-p", "explorer.exe", "--pattern", MZ])
    assert res.ok, res.error
    assert res.records == cli(capsys, "-p", "explorer.exe", "--pattern", MZ)
    assert res.columns and res.columns[0] == "target"
