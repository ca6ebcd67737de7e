"""The scan loop itself: chunk boundaries (a match across one is found exactly once, whatever the
chunk size), physical memory with holes (never read, never matched across), unreadable virtual
pages (zeros that never match), on real in-process memory (the dummy connector) and a raw file."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from pymemflow.cli.main import main
from pymemflow.connectors.dummy import DummyMemory
from pymemflow.errors import ReadFailure
from pymemflow.mem.memmap import MemoryMap
from pymemflow.scan import Scanner, Target, pattern_matcher, phys_target, string_matchers

PAGE = 0x1000


def brute(data: bytes, regex: bytes, flags: int = 0) -> list[int]:
    """Every start of a (fixed-length) match, overlapping ones included."""
    rx = re.compile(b"(?=" + regex + b")", re.DOTALL | flags)
    return [m.start() for m in rx.finditer(data)]


def noise(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 4, n, dtype=np.uint8).tobytes()  # small alphabet: many hits


@pytest.mark.parametrize("kind", ["phys", "process"])
@pytest.mark.parametrize("chunk", [PAGE, 3 * PAGE])
def test_every_match_exactly_once_whatever_the_chunk(kind: str, chunk: int) -> None:
    size = 16 * PAGE
    mem = DummyMemory(size)
    data = bytearray(noise(size, 1))
    for k in range(1, 6):  # plant matches across chunk boundaries at every cut position
        at = k * PAGE - k
        data[at:at + 5] = b"\x02\x01\x03\x00\x02"
    mem.write(0, bytes(data))
    cases = [("02 01 03 00", re.escape(b"\x02\x01\x03\x00")), ("02 ?? 03 ?? 02", b"\x02.\x03.\x02"),
             ("0? 01 03", b"[\x00-\x0f]\x01\x03")]
    for text, regex in cases:
        t = phys_target(mem) if kind == "phys" else Target("process", "test", mem, [(0, size)], 1, "test")
        hits = list(Scanner([pattern_matcher(text)], chunk=chunk).scan([t]))
        addrs = [h.address for h in hits]
        assert addrs == brute(bytes(data), regex), text
        assert len(set(addrs)) == len(addrs)
        for k in range(1, 6):
            assert sum(1 for a in addrs if a == k * PAGE - k) <= 1


def test_pattern_across_a_boundary_found_once_at_every_cut() -> None:
    mem = DummyMemory(4 * PAGE)
    needle = b"CROSSING-THE-LINE"
    for cut in range(1, len(needle)):
        mem.write(0, bytes(4 * PAGE))
        mem.write(PAGE - cut, needle)
        for t in (phys_target(mem), Target("process", "t", mem, [(0, 4 * PAGE)])):
            hits = list(Scanner(string_matchers("crossing-the-line", utf16=False, ignore_case=True),
                                chunk=PAGE).scan([t]))
            assert [h.address for h in hits] == [PAGE - cut], cut
            assert bytes.fromhex(hits[0].data) == needle


class CountingMemory(DummyMemory):
    """Dummy memory that hands out no buffer (every byte goes through a batched read) and records
    which physical addresses were read."""

    def __init__(self, size: int, mem_map: MemoryMap) -> None:
        super().__init__(size, mem_map)
        self.reads: list[tuple[int, int]] = []

    def direct(self, addr: int, n: int) -> None:
        return None

    def _read_batch(self, addrs, lengths, out) -> list[ReadFailure]:  # type: ignore[no-untyped-def]
        self.reads += [(int(a), int(a) + int(n)) for a, n in zip(addrs, lengths, strict=True)]
        return super()._read_batch(addrs, lengths, out)

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        self.reads.append((addr, addr + n))
        return super()._read_single(addr, n)

    def read(self, addr: int, n: int, *, zero_fill: bool = False) -> bytes:
        self.reads.append((addr, addr + n))
        return super().read(addr, n, zero_fill=zero_fill)


def test_phys_with_holes_never_reads_or_matches_across_them() -> None:
    # RAM at 0..0x3000 and 0x10000..0x13000 (buffer offsets 0x0 and 0x3000); a hole in between
    mm = MemoryMap([(0, 0x3000, 0), (0x10000, 0x3000, 0x3000)])
    mem = CountingMemory(0x6000, mm)
    mem.write(0x2FFA, b"HOLE-A")  # ends exactly where RAM ends: "HOLE-AB" would need the hole
    mem.write(0x10000, b"B-NEXT")
    mem.write(0x10FFD, b"SPLIT")  # crosses a page (and a chunk) inside the second range
    assert [(r.start, r.end) for r in mem.phys_ranges()] == [(0, 0x3000), (0x10000, 0x13000)]
    hits = list(Scanner([*string_matchers("HOLE-A", utf16=False), *string_matchers("HOLE-AB-NEXT", utf16=False),
                         *string_matchers("SPLIT", utf16=False)], chunk=PAGE).scan([phys_target(mem)]))
    assert [(h.rule, h.address, h.phys) for h in hits] == [("ascii:HOLE-A", 0x2FFA, 0x2FFA),
                                                          ("ascii:SPLIT", 0x10FFD, 0x10FFD)]
    assert mem.reads and all(s >= 0x10000 or e <= 0x3000 for s, e in mem.reads), "a hole was read"
    assert all(0x10000 <= s < e <= 0x13000 or e <= 0x3000 for s, e in mem.reads)


def test_unreadable_virtual_bytes_never_match() -> None:
    mm = MemoryMap([(0, 0x2000, 0), (0x3000, 0x1000, 0x2000)])  # 0x2000..0x3000 is not there
    mem = DummyMemory(0x3000, mm)
    t = Target("process", "t", mem, [(0, 0x4000)], 7, "p")  # a map that claims the hole too
    hits = list(Scanner([pattern_matcher("00 00 00 00 00 00 00 00")], chunk=PAGE).scan([t]))
    addrs = {h.address for h in hits}
    assert addrs, "zeros in real memory do match"
    assert not [a for a in addrs if 0x2000 - 7 < a < 0x3000], "no hit touches the bytes that failed to read"


def test_cli_phys_on_a_raw_file_with_a_memory_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "mem.raw"
    data = bytearray(random.Random(3).randbytes(0x8000))
    data[0x0FF8:0x1008] = b"NEEDLE-ACROSS-PG"
    data[0x4100:0x4106] = b"NEEDLE"  # file offset 0x4100 is physical 0x100100 through the map
    img.write_bytes(bytes(data))
    (tmp_path / "map.toml").write_text('[[range]]\nbase = 0x0\nlength = 0x4000\n\n'
                                       '[[range]]\nbase = 0x100000\nlength = 0x4000\nreal_base = 0x4000\n')
    argv = ["-c", f"raw:{img},memmap={tmp_path / 'map.toml'}", "scan", "--string", "NEEDLE",
            "--encoding", "ascii", "--chunk", "4k", "--jsonl"]
    assert main(argv) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    want = sorted([0xFF8] + [a if a < 0x4000 else a - 0x4000 + 0x100000
                             for a in brute(bytes(data), b"NEEDLE") if a != 0xFF8])
    assert [r["address"] for r in rows] == want
    assert all(r["target"] == "phys" and r["phys"] == r["address"] and r["data"] == b"NEEDLE".hex() for r in rows)
    assert main([*argv, "--max-hits", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_a_pattern_matching_everywhere_stays_bounded() -> None:
    """16 MiB of zeros and a pattern of zeros: 16 million matches in one chunk, taken lazily."""
    import tracemalloc

    mem = DummyMemory(16 << 20)
    tracemalloc.start()
    try:
        hits = list(Scanner([pattern_matcher("00 00"), *string_matchers("x")], max_hits=1000).scan([phys_target(mem)]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [h.address for h in hits] == list(range(1000))
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"


def test_ignore_case_in_both_encodings_matches_a_brute_force_search() -> None:
    size = 8 * PAGE
    rng = random.Random(5)
    data = bytearray(rng.randbytes(size))
    words = ["Explorer.EXE", "explorer.exe", "EXPLORER.exe"]
    spots = sorted(rng.sample(range(0, size - 40, 41), 12))
    for k, at in enumerate(spots):
        w = words[k % 3]
        raw = w.encode("utf-16-le") if k % 2 else w.encode()
        data[at:at + len(raw)] = raw
    mem = DummyMemory(size)
    mem.write(0, bytes(data))
    hits = list(Scanner(string_matchers("explorer.EXE", ignore_case=True), chunk=PAGE).scan([phys_target(mem)]))
    want = sorted(brute(bytes(data), re.escape(b"explorer.exe"), re.I)
                  + brute(bytes(data), re.escape("explorer.exe".encode("utf-16-le")), re.I))
    assert sorted(h.address for h in hits) == want and len(want) >= 12
