"""``pymemflow translate`` and ``maps --dtb`` on a raw image holding page tables."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from ptbuild import Perm, new_tables

from pymemflow.cli.main import main


def _image(tmp_path: Path) -> tuple[Path, int]:
    t = new_tables("x64", 4 << 20)
    rw = Perm(True, True, False)
    t.map(0x7F0000001000, 3, 0x300000, [rw] * 4)
    t.map(0xFFFF888000200000, 2, 0x200000, [Perm(True, False, True)] * 4)
    img = tmp_path / "pt.img"
    img.write_bytes(t.mem.read(0, 4 << 20))
    return img, t.root


def _run(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(argv)
    return rc, buf.getvalue()


def test_translate_json_and_walk(tmp_path: Path) -> None:
    img, root = _image(tmp_path)
    rc, out = _run(["-c", f"raw:{img}", "translate", "0x7f0000001234", "--dtb", hex(root), "--json", "--walk"])
    assert rc == 0
    d = json.loads(out)
    assert d["pa"] == 0x300234 and d["page_size"] == 4096 and d["flags"] == "writable,user"
    assert [w["level"] for w in d["walk"]] == [0, 1, 2, 3]
    assert d["walk"][-1]["value"] & ~0xFFF == 0x300000
    rc, out = _run(["-c", f"raw:{img}", "translate", "0xffff888000212345", "0x1000", "--dtb", hex(root), "--json"])
    assert rc == 1  # one of the two is unmapped
    rows = json.loads(out)
    assert rows[0]["pa"] == 0x212345 and rows[0]["page_size"] == 2 << 20 and "nx" in rows[0]["flags"]
    assert rows[1]["pa"] is None and rows[1]["status"] == "page not present"
    rc, out = _run(["-c", f"raw:{img}", "translate", "0x7f0000001234", "--dtb", hex(root)])
    assert rc == 0 and "0x300234" in out


def test_maps_dtb_lists_page_map(tmp_path: Path) -> None:
    img, root = _image(tmp_path)
    rc, out = _run(["-c", f"raw:{img}", "maps", "--dtb", hex(root), "--json"])
    assert rc == 0
    regions = json.loads(out)
    assert [(r["start"], r["end"], r["protection"]) for r in regions] == [
        (0x7F0000001000, 0x7F0000002000, "rwx"), (0xFFFF888000200000, 0xFFFF888000400000, "rw-")]
    assert regions[1]["kind"] == "kernel 2M"
