"""scan on a real Linux guest (the QEMU testbed, TCG): the marker process holds 16 locked pages, each
starting with "TBMARK:<nonce>:NN", and prints every page's virtual and physical address (from
/proc/self/pagemap) on the serial log -- the guest's own view, against which every hit is checked.
Scanned through an ELF core from QEMU's dump-guest-memory, the real thing a forensic analyst gets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pymemflow.cli.main import main
from pymemflow.connectors.elf import ElfCore


@pytest.fixture(scope="module")
def marker_dump(guest_x64: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    lines = guest_x64.serial_lines("TESTBED_MARKER_PAGE")
    pages = {}
    for ln in lines:
        m = re.search(r"i=(\d+) va=(0x[0-9a-f]+) pa=(0x[0-9a-f]+) present=1", ln)
        if m:
            pages[int(m.group(1))] = (int(m.group(2), 16), int(m.group(3), 16))
    assert len(pages) == 16, lines
    dump = guest_x64.dump(tmp_path_factory.mktemp("scan-lx") / "x64.elf", "elf")
    return dump, {"pid": int(guest_x64.info["MARKER_PID"]), "nonce": guest_x64.info["NONCE"], "pages": pages}


def scan(capsys: pytest.CaptureFixture[str], dump: Path, *argv: str) -> list[dict[str, Any]]:
    assert main(["-c", f"auto:{dump}", "-o", "linux", "scan", *argv, "--jsonl"]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_marker_pages_in_the_process_and_in_physical_memory(marker_dump: tuple[Path, dict[str, Any]],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    dump, truth = marker_dump
    needle = f"TBMARK:{truth['nonce']}:"
    pages = truth["pages"]
    hits = scan(capsys, dump, "-p", str(truth["pid"]), "--string", needle, "--encoding", "ascii")
    by_va = {h["address"]: h for h in hits}
    for i, (va, pa) in pages.items():
        h = by_va[va]  # every marker page's head, at the address the process saw
        assert h["pid"] == truth["pid"] and h["process"] == "marker" and h["phys"] == pa, i
        assert bytes.fromhex(h["context"])[h["context_offset"]:].startswith(f"{needle}{i:02d}".encode())
    phys_hits = scan(capsys, dump, "--phys", "--string", needle, "--encoding", "ascii")
    assert {pa for _, pa in pages.values()} <= {h["address"] for h in phys_hits}
    mem = ElfCore(dump)
    try:
        for h in [*hits, *phys_hits]:
            assert mem.read(h["phys"], len(needle)) == needle.encode()
    finally:
        mem.close()
