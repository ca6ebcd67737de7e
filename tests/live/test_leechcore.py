"""``leechcore`` connector on LeechCore's own ``file://`` device, over a real guest's RAM file
(the testbed guest's /dev/shm RAM), compared with the file's bytes while the guest is paused."""

from __future__ import annotations

import numpy as np
import pytest

from pymemflow.errors import PluginError, ReadOnlyError
from pymemflow.live.qmp import QmpClient

pytest.importorskip("leechcorepyc", reason="leechcorepyc not installed (pip install 'pymemflow[leechcore]')")

from pymemflow.connectors.leechcore import PLUGIN, LeechCoreConnector  # noqa: E402


def test_file_device_reads_match_the_ram_file(guest_x64):
    ram = guest_x64.ramfile
    assert ram
    marker = guest_x64.info["MARKER"].encode()
    pa = int(guest_x64.info["MARKER_PA0"], 16)
    with QmpClient(guest_x64.qmp2) as q:
        q.cmd("stop")
        try:
            with PLUGIN.factory({"target": f"file://{ram}", "remote": "", "writable": False}, None) as lc:
                assert lc.metadata.max_address == 512 << 20
                # small reads (LeechCore refuses < 4096 bytes) and page-crossing pieces
                assert lc.read(pa, len(marker)) == marker
                rng = np.random.default_rng(3)
                addrs = rng.integers(0, (512 << 20) - 20000, 200)
                lens = rng.integers(1, 9000, 200)
                addrs[:3] = [0xFFD, pa + 64, (512 << 20) - 4096]
                lens[:3] = [8, 8, 4096]
                addrs[3], lens[3] = 0x100000, 300000  # a big contiguous read
                res = lc.read_batch(addrs, lens)
                assert not res.failures
                file = np.memmap(ram, dtype=np.uint8, mode="r")
                for i in range(len(addrs)):
                    a, n = int(addrs[i]), int(lens[i])
                    assert res.piece(i) == file[a : a + n].tobytes(), i
                # past the end: a failure for exactly the missing part
                res = lc.read_batch([(512 << 20) - 4, 1 << 40], [8, 8])
                assert sorted((f.index, f.address, f.length) for f in res.failures) == [
                    (0, 512 << 20, 4), (1, 1 << 40, 8)]
                assert res.piece(0)[:4] == file[(512 << 20) - 4 :].tobytes()
                with pytest.raises(ReadOnlyError):
                    lc.write(pa, b"x")
                del file
        finally:
            q.cmd("cont")


def test_bad_device_is_a_clear_error(tmp_path):
    with pytest.raises(PluginError, match="cannot open device"):
        LeechCoreConnector(f"file://{tmp_path}/missing.raw")
    with pytest.raises(PluginError, match="device string"):
        PLUGIN.factory({"target": None}, None)
