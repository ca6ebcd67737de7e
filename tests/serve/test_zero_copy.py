"""Big virtual reads go out of the daemon as views of the connector's mmap (no copy on the way),
with bytes and failure reports exactly as a local read gives them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Daemon, curl, start_daemon

import pymemflow
from pymemflow.arch import VirtualMemory
from pymemflow.errors import PartialReadError

MIB = 1 << 20
CR3 = 0x1000
VA = 0x4000_0000
HOLE = 64 * MIB  # beyond the file: physically unreadable
# eight 2 MiB pages: four contiguous (one 8 MiB run), one unreadable, three contiguous (one 6 MiB run)
PAGES = [8 * MIB, 10 * MIB, 12 * MIB, 14 * MIB, HOLE, 16 * MIB, 18 * MIB, 20 * MIB]


def image(path: Path) -> bytes:
    """24 MiB raw image with x86-64 page tables mapping VA .. VA+16 MiB through PAGES (2 MiB pages);
    returns the 16 MiB a zero-filled read gives."""
    img = bytearray(24 * MIB)
    img[0x1000:0x1008] = (0x2000 | 3).to_bytes(8, "little")
    img[0x2000 + 8:0x2000 + 16] = (0x3000 | 3).to_bytes(8, "little")  # 1 GiB
    for i, pa in enumerate(PAGES):
        img[0x3000 + 8 * i:0x3008 + 8 * i] = (pa | 0x83).to_bytes(8, "little")
    img[8 * MIB:] = np.random.default_rng(16).integers(0, 256, 16 * MIB, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(img))
    return b"".join(bytes(2 * MIB) if pa == HOLE else bytes(img[pa:pa + 2 * MIB]) for pa in PAGES)


@pytest.fixture(scope="module")
def pt(serve_dir: Path) -> Iterator[tuple[Daemon, Path, bytes]]:
    work = serve_dir / "zc"
    work.mkdir()
    img = work / "pt.raw"
    want = image(img)
    d = start_daemon(work, "--open", f"pt=-c raw:{img}")
    yield d, img, want
    d.stop()


def test_read_parts_are_views_of_the_mmap(pt: tuple[Daemon, Path, bytes]) -> None:
    _d, img, want = pt
    with pymemflow.chain(["-c", f"raw:{img}"]) as ch:
        space = VirtualMemory(ch.connector, "x64", CR3)
        parts, fails = space.read_parts(VA, 16 * MIB)
        assert [len(p) for p in parts] == [8 * MIB, 2 * MIB, 6 * MIB]
        assert isinstance(parts[0], memoryview) and isinstance(parts[2], memoryview)  # no copy
        assert b"".join(parts) == want
        with pytest.raises(PartialReadError) as e:
            space.read(VA, 16 * MIB)
        assert fails == e.value.failures == [e.value.failures[0]]
        assert (fails[0].address, fails[0].length) == (VA + 8 * MIB, 2 * MIB)
        del parts  # the views keep the mapping; released before the chain closes


def test_remote_big_reads_same_bytes_and_failures(pt: tuple[Daemon, Path, bytes]) -> None:
    d, img, want = pt
    r = pymemflow.connect(d.url)["pt"].virtual_memory(CR3)
    with pymemflow.chain(["-c", f"raw:{img}"]) as ch:
        local = VirtualMemory(ch.connector, "x64", CR3)
        assert r.read(VA, 8 * MIB) == local.read(VA, 8 * MIB) == want[:8 * MIB]
        assert r.read(VA + 10 * MIB + 5, 6 * MIB - 5) == want[10 * MIB + 5:]
        with pytest.raises(PartialReadError) as rem:
            r.read(VA, 16 * MIB)
        with pytest.raises(PartialReadError) as loc:
            local.read(VA, 16 * MIB)
        assert rem.value.failures == loc.value.failures
        assert rem.value.data == loc.value.data == want
        assert r.read(VA, 16 * MIB, zero_fill=True) == want
        batch = r.read_batch([VA + 7 * MIB], [4 * MIB])
        assert batch.data.tobytes() == want[7 * MIB:11 * MIB]
        assert [(f.index, f.address, f.length) for f in batch.failures] == [(0, VA + 8 * MIB, 2 * MIB)]


def test_curl_streamed_read_reports_unreadable_bytes(pt: tuple[Daemon, Path, bytes]) -> None:
    d, _img, want = pt
    base = f"/v1/connections/pt/vmem/x64/{CR3:#x}/read"
    p = curl(d, f"{base}?addr={VA + 7 * MIB:#x}&length={4 * MIB}&zero_fill=true", "-i")
    head, body = p.stdout.split(b"\r\n\r\n", 1)
    assert b"Pymemflow-Unreadable-Bytes: 2097152" in head and body == want[7 * MIB:11 * MIB]
    p = curl(d, f"{base}?addr={VA:#x}&length={16 * MIB}&zero_fill=true")
    assert p.stdout == want  # several stream steps, each sent as views
    p = curl(d, f"{base}?addr={VA + 7 * MIB:#x}&length={4 * MIB}", "-w", "\n%{http_code}")
    body, code = p.stdout.rsplit(b"\n", 1)
    err = json.loads(body)["error"]
    assert code == b"422" and err["type"] == "PartialReadError"
    assert err["failures"] == [[0, VA + 8 * MIB, 2 * MIB, err["failures"][0][3]]]
