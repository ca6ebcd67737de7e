"""Security: Unix socket mode 0600; TCP only with a token (401 without it), TLS; writes need a
writable connection *and* an authorised request; refused configurations exit with a usage error."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN, Daemon, cli, tcp_daemon

import pymemflow
from pymemflow.errors import ReadOnlyError
from pymemflow.remote.protocol import RemoteError


def test_socket_mode_0600(demo_daemon: Daemon) -> None:
    assert stat.S_IMODE(os.stat(demo_daemon.socket).st_mode) == 0o600


def test_writes_need_writable_connection(demo_daemon: Daemon) -> None:
    d = pymemflow.connect(demo_daemon.url)
    scratch = d["scratch"].connector
    assert scratch.writable
    scratch.write(0x2000, b"written through the daemon")
    assert scratch.read(0x2000, 26) == b"written through the daemon"
    demo = d["demo"].connector
    assert not demo.writable
    with pytest.raises(ReadOnlyError):
        demo.write(0x2000, b"x")
    # a connection opened at run time is read-only unless asked; the Unix peer is the daemon's user
    vm = d.open("rw-test", "-c dummy:size=1m", writable=True)
    vm.connector.write(0x10, b"ok")
    assert vm.connector.read(0x10, 2) == b"ok"
    d.remove("rw-test")
    assert "wrote 26 bytes at 0x2000 on scratch" in demo_daemon.log_text()


def test_refused_configurations(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    for args, needle in (
        (["--listen", "127.0.0.1:0"], "--listen needs --token-file"),
        (["--listen", "0.0.0.0:0", "--token-file", str(token)], "needs TLS"),
        (["--listen", "127.0.0.1:0", "--token-file", str(token), "--tls-cert", "x.pem"], "go together"),
        (["--socket", str(tmp_path / "s.sock"), "--tls-cert", "a", "--tls-key", "b"], "apply to --listen only"),
        (["--socket", str(tmp_path / "s.sock"), "--open", "novalue"], "expected NAME=CHAIN"),
        (["--socket", str(tmp_path / "s.sock"), "--config", str(tmp_path / "missing.toml")], "missing.toml"),
    ):
        p = cli("serve", *args, check=False, timeout=60)
        assert p.returncode == 2 and needle in p.stderr, (args, p.stderr)
    bad = tmp_path / "bad.toml"
    bad.write_text('[limits]\nmax_read = -1\n')
    p = cli("serve", "--socket", str(tmp_path / "s.sock"), "--config", str(bad), check=False, timeout=60)
    assert p.returncode == 2 and "max_read" in p.stderr


def test_tcp_needs_the_token(tmp_path: Path, demo_local: Any) -> None:
    d = tcp_daemon(tmp_path)
    try:
        url = d.addresses[0]
        assert url.startswith("http://127.0.0.1:")
        curl = shutil.which("curl")
        assert curl
        for hdr in ([], ["-H", "Authorization: Bearer wrong"], ["-H", f"Authorization: Bearer {TOKEN}x"]):
            p = subprocess.run([curl, "-sS", *hdr, "-w", "\n%{http_code}", f"{url}/v1/connections"],
                               capture_output=True, timeout=60)
            body, _, code = p.stdout.rpartition(b"\n")
            assert code == b"401" and json.loads(body)["error"]["type"] == "Unauthorized"
        p = subprocess.run([curl, "-sS", "-H", f"Authorization: Bearer {TOKEN}", f"{url}/v1/connections"],
                           capture_output=True, timeout=60)
        assert json.loads(p.stdout)[0]["name"] == "demo"
        # the config's limit applies
        p = subprocess.run([curl, "-sS", "-H", f"Authorization: Bearer {TOKEN}",
                            f"{url}/v1/connections/demo/phys/read?addr=0&length=2097152"], capture_output=True)
        assert "max_read" in json.loads(p.stdout)["error"]["message"]
        # the remote OS layer over http with token_file=
        out = cli("-o", f"remote:{url},conn=demo,token_file={tmp_path / 'token'}", "ps", "--json").stdout
        assert [r["pid"] for r in json.loads(out)] == [p.pid for p in demo_local.os.process_info_list()]
        with pytest.raises(RemoteError) as e:
            pymemflow.connect(url).connections()
        assert e.value.status == 401
        assert pymemflow.connect(url, token=TOKEN).connections()[0]["name"] == "demo"
    finally:
        d.stop()


def test_tls(tmp_path: Path, demo_local: Any) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    d = tcp_daemon(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        url = d.addresses[0]
        assert url.startswith("https://127.0.0.1:")
        p = subprocess.run(["curl", "-sS", "--cacert", str(cert), "-H", f"Authorization: Bearer {TOKEN}",
                            f"{url}/v1/connections/demo/processes"], capture_output=True, timeout=60)
        assert len(json.loads(p.stdout)) == len(demo_local.os.process_info_list())
        p = subprocess.run(["curl", "-sS", f"{url}/v1/connections"], capture_output=True, timeout=60)
        assert p.returncode != 0  # an untrusted certificate is refused by the client
        vm = pymemflow.connect(url, token_file=tmp_path / "token", cafile=str(cert))["demo"]
        exp = demo_local.os.process("explorer.exe")
        base = exp.module_by_name("kernel32.dll").base
        assert vm.os.process("explorer.exe").read(base, 0x2000) == exp.read(base, 0x2000)
    finally:
        d.stop()
