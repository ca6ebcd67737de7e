"""A live QEMU guest through the daemon: ``-o remote:`` and ``-c remote:`` give what the local
``-c qemu:VM -o linux`` chain gives (VM paused for an exact comparison), then the VM goes away: its
connection is marked failed with a clear error and the daemon keeps serving the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, start_daemon
from testbed import boot

import pymemflow
from pymemflow.live.qmp import QmpClient
from pymemflow.remote.protocol import ConnectionFailedError


@pytest.mark.testbed
@pytest.mark.slow
def test_live_guest_through_the_daemon(serve_dir: Path) -> None:
    guest = boot("x64", SUFFIX="serve")
    try:
        work = serve_dir / "live"
        work.mkdir()
        d = start_daemon(work, "--open", f"vm=-c qemu:{guest.name} -o linux", "--open", "other=-c dummy:size=1m",
                         timeout=900)
        try:
            remote_os = ["-o", f"remote:{d.url},conn=vm"]
            remote_conn = ["-c", f"remote:{d.url},conn=vm:cache=true", "-o", "linux"]
            with QmpClient(guest.qmp2, timeout=30) as q:
                q.cmd("stop")
                try:
                    local = cli("-c", f"qemu:{guest.name}", "-o", "linux", "ps", "--json").stdout
                    via_os = cli(*remote_os, "ps", "--json").stdout
                    via_conn = cli(*remote_conn, "ps", "--json").stdout
                    kmods_local = cli("-c", f"qemu:{guest.name}", "-o", "linux", "kmods", "--json").stdout
                    kmods_remote = cli(*remote_os, "kmods", "--json").stdout
                finally:
                    q.cmd("cont")
            procs = json.loads(local)
            assert len(procs) > 5 and any(p["pid"] == 1 for p in procs)
            assert via_os == local
            assert via_conn == local
            assert kmods_remote == kmods_local
            # the VM goes away
            guest.stop()
            p = cli(*remote_os, "ps", check=False)
            assert p.returncode == 1 and "connection 'vm' failed: target went away" in p.stderr, p.stderr
            daemon = pymemflow.connect(d.url)
            states = {c["name"]: c for c in daemon.connections()}
            assert states["vm"]["state"] == "failed" and "target went away" in states["vm"]["error"]
            with pytest.raises(ConnectionFailedError):
                daemon["vm"].connector.read(0, 8)
            assert daemon["other"].connector.read(0, 8) == bytes(8)  # the others still work
            assert d.alive()
        finally:
            d.stop()
    finally:
        guest.stop()
