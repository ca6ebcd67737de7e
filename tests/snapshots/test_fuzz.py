"""Fuzz every header parser (hypothesis, bounded budget): mutated and truncated small dumps of each
format either open or raise FormatError, and an opened one answers reads (failures reported, never
raised, never hanging)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pymemflow.connectors.auto as auto
from pymemflow.connectors.formats import codecs
from pymemflow.errors import FormatError

from .synth import make

EXAMPLES = int(os.environ.get("PMF_FUZZ_EXAMPLES", "60"))
"""Bounded budget in the suite; PMF_FUZZ_EXAMPLES=1500 for a longer local run."""

FUZZED = ["elf", "elf32", "lime", "kdump-zlib-plain", "kdump-zlib-flat", "kdump-snappy-plain", "crash64",
          "crash64b", "crash64k", "crash32", "crash32b", "triage", "avml", "vmware-embedded"]
HEADER_SPAN = {"kdump-zlib-plain": 0x6000, "kdump-zlib-flat": 0x7000, "kdump-snappy-plain": 0x6000,
               "crash64": 0x2000, "crash64b": 0x3000, "crash32": 0x1000, "crash32b": 0x2000, "crash64k": 0x3000, "triage": 0x3000, "elf": 0x400,
               "elf32": 0x400, "lime": 0x20, "avml": 0x200, "vmware-embedded": 0x200}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    out = {}
    for fmt in FUZZED:
        if ("snappy" in fmt or fmt == "avml") and not codecs.available("snappy"):
            continue
        out[fmt] = make(fmt, folder).read_bytes()
    return out, folder


def _exercise(path) -> None:
    t = time.monotonic()
    try:
        mem = auto.open_dump(path)
    except FormatError as e:
        assert str(path) in str(e)
        return
    try:
        ranges = mem.memory_map()
        addrs = [s for s, _ in ranges[:8]] + [max(e - 8, 0) for _, e in ranges[:8]] + [0, 1 << 63, (1 << 64) - 8]
        res = mem.read_batch(np.array(addrs, dtype=np.uint64), 4096)
        assert len(res.data) == 4096 * len(addrs)
        virt = getattr(mem, "virtual", None)
        if virt is not None:
            virt.read_batch([0, 0xFFFFF80000001000], 64)
    finally:
        mem.close()
    assert time.monotonic() - t < 10


@pytest.mark.parametrize("fmt", FUZZED)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_headers(originals, fmt, data):
    files, folder = originals
    if fmt not in files:
        pytest.skip("codec package missing")
    blob = bytearray(files[fmt])
    span = min(HEADER_SPAN[fmt], len(blob))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, span - 1))
        kind = data.draw(st.sampled_from(["byte", "u32max", "u64", "zero"]))
        if kind == "byte":
            blob[pos] = data.draw(st.integers(0, 255))
        elif kind == "u32max":
            blob[pos : pos + 4] = b"\xff\xff\xff\x7f"
        elif kind == "u64":
            blob[pos : pos + 8] = data.draw(st.integers(0, (1 << 64) - 1)).to_bytes(8, "little")
        else:
            blob[pos : pos + 8] = bytes(8)
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    suffix = ".vmss" if fmt.startswith("vmware") else ".bin"
    path = folder / f"fuzz-{fmt}{suffix}"
    path.write_bytes(bytes(blob))
    _exercise(path)
