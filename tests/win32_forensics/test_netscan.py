"""netscan on the synthetic Windows machines: TCP endpoints, listeners and UDP endpoints carved from
physical memory by pool tag at the tcpip layout of the build, chosen by tcpip.sys's own version
resource; checked against the machines' ground truth and volatility3's windows.netscan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pymemflow.cli.main import main
from pymemflow.os.forensics import iso_from_filetime
from pymemflow.os.win32.net.layouts import choose
from pymemflow.os.win32.netscan import tcpip_identity

from .winpsnet_env import MASK48, Machine, machine, vol, vol_offset

ROOT = Path(__file__).resolve().parents[2]
PROTO = {"TCPv4": "tcp", "TCPv6": "tcp6", "UDPv4": "udp", "UDPv6": "udp6"}


@pytest.fixture(scope="module", params=["win10", "win7"])
def m(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ref_data: Path) -> Machine:
    return machine(request.param, tmp_path_factory.mktemp(f"netscan-{request.param}"), ref_data)


def want(m: Machine) -> list[tuple[Any, ...]]:
    return sorted((PROTO[r["proto"]], r["local"], r["local_port"], r["remote"], r["remote_port"], r["state"],
                   r["pid"], r["owner"], iso_from_filetime(r["create_time"]), r["address"])
                  for r in m.img.facts["network"])


def test_netscan_matches_ground_truth(m: Machine) -> None:
    got = sorted((s.protocol, s.local_address, s.local_port, s.remote_address, s.remote_port, s.state, s.pid,
                  s.owner, s.create_time, s.address) for s in m.kernel.netscan())
    assert got == want(m)
    assert {r[0] for r in got} == {"tcp", "tcp6", "udp", "udp6"}
    assert any(r[5] == "ESTABLISHED" and r[7] == "backdoor.exe" for r in got)  # the hidden process's socket
    assert not m.kernel.warnings


def test_layout_chosen_by_tcpip_version_resource(m: Machine) -> None:
    f = m.img.facts["tcpip"]
    ident = tcpip_identity(m.kernel)
    assert ident["module"] == f["base"] and ident["version"] == f["version"]
    name, guid_age = ident["pdb"].split()
    assert (name, guid_age) == (f["pdb_name"], f["guid_age"])
    isf = ROOT / "tests/data/windows/isf-forensic/tcpip.pdb" / f"{guid_age[:32]}-{int(guid_age[32:], 16)}.json.xz"
    assert isf.is_file()  # one of the 85 real tcpip.pdb identities
    s = m.kernel.netscan()[0]
    assert s.extra["tcpip_layout"] == f["layout"] and s.extra["tcpip_version"] == f["version"]


@pytest.mark.slow
def test_volatility_netscan_agrees(m: Machine) -> None:
    pytest.importorskip("volatility3")
    rows = vol(m, "windows.netscan")
    where = vol_offset(m)
    theirs = sorted((PROTO[r["Proto"]], r["LocalAddr"], r["LocalPort"], r["ForeignAddr"], r["ForeignPort"],
                     r["State"], r["PID"], r["Owner"], r["Offset"] & MASK48) for r in rows)
    ours = sorted((s.protocol, s.local_address, s.local_port, s.remote_address, s.remote_port, s.state, s.pid,
                   s.owner, where(s.address)) for s in m.kernel.netscan())
    assert ours == theirs and len(ours) == len(m.img.facts["network"])


def test_cli_netscan_json(m: Machine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", f"raw:{m.raw}", "-o", "win32", "netscan", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["protocol"], r["local_address"], r["local_port"], r["pid"]) for r in rows) == \
        sorted((w[0], w[1], w[2], w[6]) for w in want(m))


def test_unknown_build_takes_an_older_layout_and_says_which() -> None:
    c = choose("x64", 10, 0, 22621)
    assert c.name == "win10-20348-x64" and not c.exact and "22621" in c.note and "20348" in c.note
    none = choose("x64", 5, 2, 3790)
    assert none.layout is None and "5.2.3790" in none.note
    assert choose("x64", 10, 0, 19045).name == "win10-19041-x64"
    assert choose("x64", 6, 3, 9600, 19935).name == "win81-19935-x64"


def test_layout_table_is_what_the_generator_makes() -> None:
    pytest.importorskip("volatility3")
    r = subprocess.run([sys.executable, str(ROOT / "scripts/gen_tcpip_layouts.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_version_resource_parser_survives_corruption() -> None:
    """A driver image whose resource tree is randomly damaged: a version or None, never an exception,
    never a hang (bounded levels and entry counts)."""
    import mmap
    import random

    from pymemflow.demo.network import RESOURCE_RVA, resource_directory, version_resource
    from pymemflow.demo.pe import RDATA, PeSpec, Section, build_pe
    from pymemflow.mem.buffer import MmapMemory
    from pymemflow.mem.memmap import MemoryMap
    from pymemflow.os.win32.net.version import file_version

    size = 0x4000
    blobs = build_pe(PeSpec("tcpip.sys", "x64", 0, size, [Section(".rdata", 0x1000, 0x3000, RDATA)], dll=False))
    res = resource_directory(RESOURCE_RVA, version_resource("10.0.19041.1202"))
    hdr = bytearray(blobs[0])
    lfanew = int.from_bytes(hdr[0x3C:0x40], "little")
    hdr[lfanew + 0x18 + 0x70 + 16 : lfanew + 0x18 + 0x70 + 24] = RESOURCE_RVA.to_bytes(4, "little") + \
        len(res).to_bytes(4, "little")
    clean = bytearray(size)
    clean[0 : len(hdr)] = hdr
    clean[RESOURCE_RVA : RESOURCE_RVA + len(res)] = res
    mm = mmap.mmap(-1, size)
    mem = MmapMemory(mm, MemoryMap.identity(size), writable=False)
    mm[:] = bytes(clean)
    assert file_version(mem, 0) == (10, 0, 19041, 1202)
    rng = random.Random(18)
    results = set()
    for _ in range(300):
        img = bytearray(clean)
        for _ in range(rng.randint(1, 8)):
            img[RESOURCE_RVA + rng.randrange(len(res))] = rng.randrange(256)
        mm[:] = bytes(img)
        v = file_version(mem, 0)
        assert v is None or (len(v) == 4 and all(0 <= x <= 0xFFFF for x in v))
        results.add(v is None)
    assert results == {True, False}  # some damage is fatal, some is not
