"""The HTTP API with real clients (curl, node), its OpenAPI document, and hostile requests."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Daemon, curl

from pymemflow.remote.protocol import BATCH_HEADER, decode_batch_header
from pymemflow.serve.app import ROUTES


def _json(p: subprocess.CompletedProcess[bytes]) -> Any:
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_curl_processes_and_bytes(demo_daemon: Daemon, demo_local: Any) -> None:
    procs = _json(curl(demo_daemon, "/v1/connections/demo/processes"))
    assert procs == json.loads(json.dumps([p.as_dict() for p in demo_local.os.process_info_list()]))
    exp = demo_local.os.process("explorer.exe")
    k32 = exp.module_by_name("kernel32.dll")
    p = curl(demo_daemon, f"/v1/connections/demo/processes/{exp.info.pid}/read?addr={k32.base:#x}&length=8192")
    assert p.returncode == 0 and p.stdout == exp.read(k32.base, 8192)
    # a large read streams (12 MiB > the 4 MiB step), zero-filled where unmapped
    big = curl(demo_daemon, f"/v1/connections/demo/phys/read?addr=0&length={12 << 20}&zero_fill=true")
    assert big.stdout == demo_local.connector.read(0, 12 << 20, zero_fill=True)
    # a hole, zero-filled: the header says how many bytes are zeros
    hole = curl(demo_daemon, "/v1/connections/demo/phys/read?addr=0&length=4096&zero_fill=true", "-D", "-")
    head, _, body = hole.stdout.partition(b"\r\n\r\n")
    assert b"Pymemflow-Unreadable-Bytes: 4096" in head and body == bytes(4096)
    exports = _json(curl(demo_daemon, "/v1/connections/demo/processes/explorer.exe/modules/kernel32.dll/exports"))
    assert exports == json.loads(json.dumps([e.as_dict() for e in exp.exports(k32)]))


def test_curl_batch_binary(demo_daemon: Daemon, demo_local: Any) -> None:
    exp = demo_local.os.process("explorer.exe")
    base = exp.module_by_name("kernel32.dll").base
    addrs = [base, base + 0x1000, 0x10, base + 0x40]
    body = b"".join(struct.pack("<QQ", a, 8) for a in addrs)
    p = subprocess.run(["curl", "-sS", "--unix-socket", demo_daemon.socket, "-X", "POST", "-H",
                        "Content-Type: application/octet-stream", "--data-binary", "@-",
                        f"http://x/v1/connections/demo/processes/{exp.info.pid}/read-batch"],
                       input=body, capture_output=True, timeout=60)
    raw = p.stdout
    count, flen, dlen = decode_batch_header(raw[:BATCH_HEADER.size])
    assert (count, dlen) == (4, 32)
    status = raw[BATCH_HEADER.size: BATCH_HEADER.size + count]
    assert list(status) == [0, 0, 1, 0]
    fails = json.loads(raw[BATCH_HEADER.size + count: BATCH_HEADER.size + count + flen])
    assert fails[0][0] == 2 and fails[0][1] == 0x10
    data = raw[-dlen:]
    local = exp.memory.read_batch(addrs, 8)
    assert data == local.data.tobytes()


def test_openapi_describes_every_route(demo_daemon: Daemon) -> None:
    doc = _json(curl(demo_daemon, "/v1/openapi.json"))
    assert doc["openapi"].startswith("3.")
    declared = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert declared == {(r.method, r.path) for r in ROUTES}
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in doc["paths"].items():
        names = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        for op in ops.values():
            assert names <= {p["name"] for p in op["parameters"] if p["in"] == "path"}, path
    try:
        from openapi_spec_validator import validate
    except ImportError:
        return
    validate(doc)


NODE_CLIENT = r"""
const http = require('http');
const [sock, conn] = process.argv.slice(2);
function get(path) {
  return new Promise((resolve, reject) => {
    http.get({socketPath: sock, path}, res => {
      const chunks = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, type: res.headers['content-type'],
                                   body: Buffer.concat(chunks)}));
    }).on('error', reject);
  });
}
(async () => {
  const procs = JSON.parse((await get(`/v1/connections/${conn}/processes`)).body);
  const exp = procs.find(p => p.name === 'explorer.exe');
  const mods = JSON.parse((await get(`/v1/connections/${conn}/processes/${exp.pid}/modules`)).body);
  const k32 = mods.find(m => m.name.toLowerCase() === 'kernel32.dll');
  const r = await get(`/v1/connections/${conn}/processes/${exp.pid}/read?addr=${k32.base}&length=4096`);
  const bad = await get(`/v1/connections/${conn}/processes/${exp.pid}/read?addr=-5&length=4`);
  console.log(JSON.stringify({count: procs.length, pid: exp.pid, k32: k32.base, type: r.type,
                              hex: r.body.toString('hex'), bad: bad.status, badmsg: JSON.parse(bad.body).error.message}));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_node_client(demo_daemon: Daemon, demo_local: Any, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = tmp_path / "client.js"
    script.write_text(NODE_CLIENT)
    p = subprocess.run(["node", str(script), demo_daemon.socket, "demo"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    exp = demo_local.os.process("explorer.exe")
    k32 = exp.module_by_name("kernel32.dll")
    assert out["count"] == len(demo_local.os.process_info_list())
    assert out["pid"] == exp.info.pid and out["k32"] == k32.base
    assert out["type"] == "application/octet-stream"
    assert bytes.fromhex(out["hex"]) == exp.read(k32.base, 4096)
    assert out["bad"] == 400 and "addr" in out["badmsg"]


HOSTILE: list[tuple[str, list[str], int, str]] = [
    ("/v1/connections", ["-X", "POST", "-H", "Content-Type: application/json", "-d", "{not json"], 400,
     "not valid JSON"),
    ("/v1/connections", ["-X", "POST", "-H", "Content-Type: application/json", "-d", "[1,2]"], 400, "JSON object"),
    ("/v1/connections", ["-X", "POST", "-H", "Content-Type: application/json", "-d",
                         '{"name": "../../etc", "chain": "-c dummy"}'], 400, "bad connection name"),
    ("/v1/connections", ["-X", "POST", "-H", "Content-Type: application/json", "-d",
                         '{"name": "x", "chain": "-c raw:/nonexistent/file.img"}'], 422, "cannot open /nonexistent"),
    ("/v1/connections", ["-X", "POST", "-H", "Content-Type: application/json", "-d",
                         '{"name": "x", "chain": "rm -rf /"}'], 400, "expected -c or -o"),
    ("/v1/connections/nope/processes", [], 404, "no connection named 'nope'"),
    ("/v1/connections/%2e%2e%2fetc/processes", [], 404, "no connection named"),
    ("/v1/connections/demo/phys/read?addr=-1&length=4", [], 400, "addr"),
    ("/v1/connections/demo/phys/read?addr=0&length=99999999999999", [], 413, "max_read"),
    ("/v1/connections/demo/phys/read?addr=0xffffffffffffffff&length=16", [], 400, "passes the end"),
    ("/v1/connections/demo/phys/read?addr=0x1&length=abc", [], 400, "length"),
    ("/v1/connections/demo/phys/read?length=4", [], 400, "'addr' is required"),
    ("/v1/connections/demo/phys/read-batch", ["-X", "POST", "-H", "Content-Type: application/json", "-d",
                                              '{"pieces": [[0, 8], [-4, 8]]}'], 400, "pieces[1]"),
    ("/v1/connections/demo/phys/read-batch", ["-X", "POST", "-H", "Content-Type: application/json", "-d",
                                              '{"pieces": [[0, 1099511627776]]}'], 400, "length"),
    ("/v1/connections/demo/phys/read-batch", ["-X", "POST", "--data-binary", "12345"], 400, "16-byte"),
    ("/v1/connections/demo/processes/999999/modules", [], 404, "no process with pid 999999"),
    ("/v1/connections/demo/processes/explorer.exe/modules/..%2F..%2Fx/exports", [], 404, "no module"),
    ("/v1/connections/demo/phys/write?addr=0", ["-X", "PUT", "--data-binary", "xx"], 403, "read-only"),
    ("/v1/connections/demo/extras/dmesg", [], 501, "Linux only"),
    ("/v1/nothing/here", [], 404, "no such endpoint"),
    ("/v1/connections/demo", ["-X", "PATCH"], 405, "not allowed"),
]


@pytest.mark.parametrize("path,extra,status,needle", HOSTILE, ids=[f"{i}" for i in range(len(HOSTILE))])
def test_hostile_requests_get_json_errors(demo_daemon: Daemon, path: str, extra: list[str], status: int,
                                          needle: str) -> None:
    p = curl(demo_daemon, path, "-w", "\n%{http_code}", *extra)
    body, _, code = p.stdout.rpartition(b"\n")
    assert int(code) == status, body
    err = json.loads(body)["error"]
    assert err["status"] == status and needle in err["message"], err
    assert demo_daemon.alive()


def test_huge_body_and_garbage_do_not_stop_the_daemon(demo_daemon: Daemon, demo_local: Any) -> None:
    # a body past max_body (64 MiB): refused with 413 without reading it all
    s = socket.socket(socket.AF_UNIX)
    s.connect(demo_daemon.socket)
    s.sendall(b"POST /v1/connections/demo/phys/read-batch HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
              b"Content-Type: application/octet-stream\r\n\r\n" + b"\0" * 65536)
    s.settimeout(30)
    head = s.recv(4096)
    s.close()
    assert b" 413 " in head.split(b"\r\n")[0]
    # not HTTP at all
    s = socket.socket(socket.AF_UNIX)
    s.connect(demo_daemon.socket)
    s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
    s.settimeout(30)
    assert b" 400 " in s.recv(4096).split(b"\r\n")[0]  # refused by aiohttp's HTTP parser (plain text)
    s.close()
    # more pieces than max_batch_pieces, as binary
    p = subprocess.run(["curl", "-sS", "--unix-socket", demo_daemon.socket, "-X", "POST", "--data-binary", "@-",
                        "-w", "\n%{http_code}", "http://x/v1/connections/demo/phys/read-batch"],
                       input=np.zeros(2 * 1_000_001, dtype="<u8").tobytes(), capture_output=True, timeout=60)
    assert p.stdout.endswith(b"413")
    assert demo_daemon.alive()
    ok = curl(demo_daemon, "/v1/connections/demo/processes")
    assert len(json.loads(ok.stdout)) == len(demo_local.os.process_info_list())
