"""`-o linux:dtb=...,system_map=...[,kaslr_offset=...]`: a real x86-64 guest (KASLR on) whose VMCOREINFO was
wiped from a raw copy of its RAM opens from the page-table root and a System.map, with the same processes
as the intact dump; what the error says when one of them is missing or wrong."""

from __future__ import annotations

import json

import pytest

from pymemflow.cli.main import main
from pymemflow.connectors.elf import ElfCore
from pymemflow.connectors.raw import RawFileMemory
from pymemflow.os.linux import vmcoreinfo as vci
from pymemflow.os.linux.layer import LinuxOs

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def wiped(guest_x64, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[no-untyped-def]
    """QEMU's ELF dump of the guest, its process list and roots, a System.map (the kernel's own kallsyms,
    at link addresses), and a raw copy of its RAM with every VMCOREINFO text overwritten."""
    tmp = tmp_path_factory.mktemp("lxdtb")
    elf = guest_x64.dump(tmp / "guest.elf", "elf")
    with ElfCore(elf) as phys:
        intact = LinuxOs(phys)
        k = intact.root.kaslr_offset
        assert k != 0, "the testbed kernel runs with KASLR"
        procs = sorted((p.pid, p.ppid, p.name) for p in intact.process_info_list())
        smap = tmp / "System.map"
        smap.write_text("".join(f"{a if t in 'aA' else a - k:016x} {t} {n}\n" for n, t, a in intact.symbols.items()))
        facts = {"dtb": intact.root.dtb, "kaslr": k, "release": intact.vmcoreinfo.osrelease, "procs": procs}
        intact.close()
    raw = tmp / "guest.raw"
    assert main(["-c", f"elf:{elf}", "dump-phys", str(raw), "--json"]) == 0
    elf.unlink()
    with RawFileMemory(str(raw)) as mem:
        copies = [(i.location, len(i.text)) for i in vci.scan(mem, mem.metadata.max_address)]
    assert copies, "the guest's RAM holds VMCOREINFO"
    with open(raw, "r+b") as f:
        for at, n in copies:
            assert at is not None
            f.seek(at)
            f.write(bytes(n))
    return {**facts, "raw": raw, "map": smap}


def test_wiped_image_has_no_vmcoreinfo(capsys: pytest.CaptureFixture[str], wiped: dict) -> None:
    code, out, err = run(capsys, "-c", f"raw:{wiped['raw']}", "-o", "linux", "ps")
    assert (code, out) == (1, "")
    assert err.startswith("pymemflow: error: linux: no VMCOREINFO text") and "pass dtb= and system_map=" in err


def test_dtb_and_system_map_open_it(capsys: pytest.CaptureFixture[str], wiped: dict) -> None:
    for extra in ("", f",kaslr_offset={wiped['kaslr']:#x}"):  # KASLR found by the self-check, or given
        spec = f"linux:dtb={wiped['dtb']:#x},system_map={wiped['map']}{extra}"
        code, out, err = run(capsys, "-c", f"raw:{wiped['raw']}", "-o", spec, "ps", "--json")
        assert code == 0, err
        assert sorted((p["pid"], p["ppid"], p["name"]) for p in json.loads(out)) == wiped["procs"]
        code, out, err = run(capsys, "-c", f"raw:{wiped['raw']}", "-o", spec, "info", "--json")
        os_info = json.loads(out)["os"]
        assert (os_info["dtb"], os_info["kaslr_offset"], os_info["release"]) == (wiped["dtb"], wiped["kaslr"],
                                                                                 wiped["release"])


def test_wrong_or_missing_arguments_say_what(capsys: pytest.CaptureFixture[str], wiped: dict) -> None:
    raw = f"raw:{wiped['raw']}"
    code, _, err = run(capsys, "-c", raw, "-o", f"linux:dtb={wiped['dtb']:#x}", "ps")
    assert code == 1 and err.rstrip().endswith("(or use a dump whose header carries it, or pass dtb= and "
                                               "system_map=): system_map= is missing")
    wrong = wiped["kaslr"] + 0x200000
    code, _, err = run(capsys, "-c", raw, "-o", f"linux:dtb={wiped['dtb']:#x},system_map={wiped['map']},"
                       f"kaslr_offset={wrong:#x}", "ps")
    assert code == 1 and err.startswith(f"pymemflow: error: linux: the page tables at dtb={wiped['dtb']:#x} do not "
                                        f"map init_top_pgt (")
    assert f"kaslr_offset={wrong:#x}, paging x64 or x64la57) onto themselves" in err
