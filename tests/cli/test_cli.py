"""The CLI: exit codes (0/1/2), one-line errors, --json, numbers with hex and suffixes, phys-read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pymemflow.cli.main import main

DATA = bytes((i * 7 + 3) & 0xFF for i in range(0x3000))


@pytest.fixture
def img(tmp_path: Path) -> Path:
    p = tmp_path / "mem.img"
    p.write_bytes(DATA)
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_console_script_and_module_entry(img: Path) -> None:
    """The installed `pymemflow` script (as a user runs it) and `python -m pymemflow.cli.main`."""
    script = Path(sys.executable).with_name("pymemflow")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pymemflow.cli.main"]
    res = subprocess.run([*cmd, "-c", f"raw:{img}", "phys-read", "0x10", "16", "--json"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert bytes.fromhex(json.loads(res.stdout)["hex"]) == DATA[0x10:0x20]
    res = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "-c", "raw:/nonexistent/x.img", "info"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("pymemflow: error: raw: cannot open")


def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    doc = json.loads(out)
    names = {(p["kind"], p["name"]) for p in doc["plugins"]}
    assert {("connector", "raw"), ("connector", "dummy"), ("os", "native")} <= names
    raw = next(p for p in doc["plugins"] if p["name"] == "raw")
    assert raw["args"][0] == {"name": "target", "description": "path of the memory file", "required": True,
                              "default": None}


def test_plugins_text_and_single(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "connectors (-c NAME:ARGS)" in out and "OS layers (-o NAME:ARGS)" in out
    assert "raw" in out and "target*" in out
    code, out, _ = run(capsys, "plugins", "dummy")
    assert code == 0 and "usage: -c dummy[:TARGET],key=value...[:MIDDLEWARE]" in out and "cache_size" in out
    code, _, err = run(capsys, "plugins", "nosuch")
    assert code == 2 and "no plugin named 'nosuch'" in err


def test_info_json_before_and_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["-c", "dummy:size=1m", "info", "--json"], ["--json", "-c", "dummy:size=1m", "info"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        doc = json.loads(out)
        assert doc["chain"] == "-c dummy:size=1m"
        assert doc["connector"]["max_address"] == 1 << 20 and doc["connector"]["readonly"] is False


def test_info_text_with_middleware(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-c", "dummy:size=64k:cache=true", "info")
    assert code == 0
    assert "connector.max_address" in out and "0x10000" in out and "cache" in out


def test_phys_read_hexdump_hex_and_suffix_numbers(capsys: pytest.CaptureFixture[str], img: Path) -> None:
    code, out, _ = run(capsys, "-c", f"raw:{img}", "phys-read", "1k", "0x20")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("00000400  " + " ".join(f"{b:02x}" for b in DATA[0x400:0x408]))
    assert lines[1].startswith("00000410")


def test_phys_read_out_file(capsys: pytest.CaptureFixture[str], img: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "out.bin"
    code, out, err = run(capsys, "-c", f"raw:{img}", "phys-read", "0x100", "0x1000", "--out", str(out_file))
    assert code == 0 and out == "" and "wrote 4096 bytes" in err
    assert out_file.read_bytes() == DATA[0x100:0x1100]


def test_phys_read_dummy_after_write(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-c", "dummy:size=64k", "--json", "phys-read", "0xfff0", "0x10")
    assert code == 0 and json.loads(out) == {"address": 0xFFF0, "length": 16, "hex": "00" * 16, "requested": 16,
                                             "unreadable": []}


def test_phys_read_partial_is_a_failure_with_data(capsys: pytest.CaptureFixture[str], img: Path) -> None:
    code, out, err = run(capsys, "-c", f"raw:{img}", "phys-read", "0x2ff8", "16", "--json")
    assert code == 1
    hx = json.loads(out)["hex"]
    assert bytes.fromhex(hx[:16]) == DATA[0x2FF8:] and hx[16:] == "??" * 8  # unreadable is not zero data
    assert err.count("\n") == 1 and "8 of 16 bytes unreadable (shown as ??): 0x8 at 0x3000" in err


@pytest.mark.parametrize("argv, message", [
    (["-c", "dummy:size=1m,sise=2", "info"], "dummy: unknown argument 'sise' (did you mean 'size'?); valid arguments: target, size"),
    (["-c", "raw", "info"], "raw: missing required argument 'target'"),
    (["-c", "dummy:size=lots", "info"], "dummy: bad value 'lots' for 'size'"),
    (["-c", "dummy::cache=maybe", "info"], "dummy: bad value 'maybe' for 'cache'"),
    (["-c", "dummy::speed=1", "info"], "dummy: unknown middleware option 'speed'; valid middleware options: cache"),
    (["-c", "nosuch", "info"], "unknown connector 'nosuch'; available:"),
    (["-o", "raw", "ps"], "unknown OS layer 'raw' ('raw' is a connector: use -c raw)"),
    (["-c", 'raw:"/x', "info"], "unterminated \" quote"),
    (["info"], "this command needs a target"),
    (["-o", "native", "phys-read", "0", "1"], "this command needs a connector"),
    (["-c", "dummy", "ps"], "this command needs an OS layer"),
    (["-c", "dummy", "phys-read", "zz", "4"], "phys-read: argument addr: 'zz' is not a number"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["nosuchcommand"], "unknown command 'nosuchcommand' (commands: plugins, targets, info,"),
    (["-c", "dummy", "maps"], "maps: give -p PROCESS"),
    (["targets", "-c", "raw"], "raw: this connector cannot list targets"),
])
def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "no command given" in err


def test_failures_exit_1_traceback_only_with_vvv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.img")
    code, _, err = run(capsys, "-c", f"raw:{missing}", "info")
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    code, _, err = run(capsys, "-vvv", "-c", f"raw:{missing}", "info")
    assert code == 1 and "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("pymemflow: error: raw: cannot open")


def test_unsupported_operation_exit_1() -> None:
    """toyos (a test OS layer) has no kernel modules: OsLayer's NotImplementedError -> exit 1, one line."""
    data = Path(__file__).resolve().parents[1] / "data"
    env = {**os.environ, "PYTHONPATH": str(data / "plugin_pkg"), "PYMEMFLOW_PLUGIN_PATH": str(data / "plugin_folder")}
    res = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "-c", "dummy:size=64k", "-o", "toyos", "kmods"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == "pymemflow: error: kmods: not supported by this chain's OS layer or connector\n"


def test_verbose_levels_set_logging(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    run(capsys, "-vv", "plugins", "--json")
    assert logging.getLogger().level == logging.INFO
    run(capsys, "plugins", "-v", "--json")
    assert logging.getLogger().level == logging.WARNING
    run(capsys, "plugins", "--json")
    assert logging.getLogger().level == logging.ERROR


def test_os_commands_on_native(capsys: pytest.CaptureFixture[str]) -> None:
    """ps/modules/maps/read written once against OsLayer, checked on the native layer (this process)."""
    pid = os.getpid()
    code, out, _ = run(capsys, "-o", "native", "ps", "--json")
    assert code == 0
    me = next(r for r in json.loads(out) if r["pid"] == pid)
    assert me["ppid"] == os.getppid()
    assert list(me) == ["pid", "ppid", "name", "path", "command_line", "state", "arch", "dtb", "user_dtb",
                        "address", "wow64", "exit_code", "create_time", "extra"]
    code, out, _ = run(capsys, "-o", "native", "modules", "-p", str(pid), "--json")
    mods = json.loads(out)
    assert code == 0 and all(list(m) == ["name", "path", "base", "size", "arch"] for m in mods)
    assert any(Path(m["path"]).resolve() == Path(sys.executable).resolve() for m in mods)
    buf = b"pymemflow-cli-read-test-marker!!"
    import ctypes

    cbuf = ctypes.create_string_buffer(buf, len(buf))
    code, out, _ = run(capsys, "-o", "native", "read", "-p", str(pid), hex(ctypes.addressof(cbuf)), "32", "--json")
    assert code == 0 and bytes.fromhex(json.loads(out)["hex"]) == buf
    code, out, _ = run(capsys, "-o", "native", "maps", "-p", str(pid), "--json")
    regions = json.loads(out)
    addr = ctypes.addressof(cbuf)
    assert any(r["start"] <= addr < r["end"] and r["protection"].startswith("rw") for r in regions)


def test_maps_of_a_page_table_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """maps --dtb walks x64 page tables written into a raw image (4 levels, two 4 KiB pages)."""
    import struct

    mem = bytearray(0x8000)
    for table, index, entry in ((0x1000, 0, 0x2000 | 7), (0x2000, 0, 0x3000 | 7), (0x3000, 2, 0x4000 | 7),
                                (0x4000, 0, 0x5000 | 7), (0x4000, 1, 0x6000 | 1 | (1 << 63))):
        struct.pack_into("<Q", mem, table + 8 * index, entry)
    f = tmp_path / "pt.img"
    f.write_bytes(bytes(mem))
    code, out, err = run(capsys, "-c", f"raw:{f}", "maps", "--dtb", "0x1000", "--arch", "x64", "--json")
    assert code == 0, err
    rows = [(r["start"], r["end"], r["protection"]) for r in json.loads(out)]
    assert rows == [(0x400000, 0x401000, "rwx"), (0x401000, 0x402000, "r--")]


def test_broken_plugin_warning_only_with_v(tmp_path: Path) -> None:
    (tmp_path / "crash.py").write_text("raise RuntimeError('boom at import')\n")
    env = {**os.environ, "PYMEMFLOW_PLUGIN_PATH": str(tmp_path)}
    cmd = [sys.executable, "-m", "pymemflow.cli.main"]
    quiet = subprocess.run([*cmd, "plugins", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert quiet.returncode == 0 and "crash.py" not in quiet.stderr
    assert any("boom at import" in p for p in json.loads(quiet.stdout)["problems"])
    loud = subprocess.run([*cmd, "-v", "plugins", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert loud.returncode == 0
    assert f"WARNING pymemflow.plugins.registry: plugin {tmp_path / 'crash.py'} skipped: RuntimeError: boom at import" in loud.stderr
    json.loads(loud.stdout)  # stdout stays plain JSON
