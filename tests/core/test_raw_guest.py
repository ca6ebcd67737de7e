"""The raw connector (and the middleware stack) on a real guest's RAM file: QEMU's
memory-backend-file in /dev/shm, mapped while the guest runs. Physical addresses of the marker
pages come from the guest itself (/proc/self/pagemap, printed on its serial log)."""

from __future__ import annotations

import numpy as np
import pytest

from pymemflow.connectors import raw
from pymemflow.mem.memmap import MemoryMap
from pymemflow.mem.middleware import wrap
from pymemflow.mem.pagetype import PageType, page_type_hint

pytestmark = pytest.mark.testbed


def marker_pages(guest) -> list[int]:
    pas = []
    for line in guest.serial_lines("TESTBED_MARKER_PAGE"):
        kv = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
        pas.append(int(kv["pa"], 16))
    return pas


def test_raw_reads_guest_ram_file(guest_x64):
    if not guest_x64.ramfile:
        pytest.skip("guest RAM is not file-backed")
    marker = guest_x64.info["MARKER"].encode()
    pas = marker_pages(guest_x64)
    assert len(pas) == 16
    spec = raw.PLUGIN
    with spec.factory({"target": guest_x64.ramfile, "memmap": None, "offset": 0, "writable": False}, None) as mem:
        assert mem.metadata.max_address == 512 << 20 and mem.metadata.readonly
        assert mem.read(int(guest_x64.info["MARKER_PA0"], 16), len(marker)) == marker
        # one batched read of every marker page's first bytes == single reads
        res = mem.read_batch(pas, len(b"TBMARK:"))
        assert not res.failures and all(res.piece(i) == b"TBMARK:" for i in range(16))
        firsts, ok = mem.read_u64_many(pas)
        assert ok.all() and all(int(v) == mem.read_u64(pa) for v, pa in zip(firsts, pas, strict=True))
        # through cache + metrics, hinted and not: the same bytes
        stack = wrap(mem, {"cache": PageType.all(), "metrics": 60.0})
        with page_type_hint(PageType.PAGE_TABLE):
            again = stack.read_batch(pas, len(b"TBMARK:"))
            again2 = stack.read_batch(pas, len(b"TBMARK:"))
        assert again.data.tobytes() == res.data.tobytes() == again2.data.tobytes()
        assert stack.inner.hits == 16 and stack.stats()["read_pieces"] == 32


def test_raw_guest_ram_through_a_memory_map(guest_x64, tmp_path):
    """Lay the guest's RAM out at 4 GiB with a memflow TOML map: same bytes, holes below."""
    if not guest_x64.ramfile:
        pytest.skip("guest RAM is not file-backed")
    pa0 = int(guest_x64.info["MARKER_PA0"], 16)
    m = MemoryMap([(4 << 30, 512 << 20, 0)])
    p = tmp_path / "map.toml"
    m.save(p)
    with raw.RawFileMemory(guest_x64.ramfile, mem_map=MemoryMap.load(p)) as mem:
        marker = guest_x64.info["MARKER"].encode()
        assert mem.read((4 << 30) + pa0, len(marker)) == marker
        res = mem.read_batch(np.array([pa0, (4 << 30) + pa0], dtype=np.uint64), 8)
        assert [f.index for f in res.failures] == [0]
