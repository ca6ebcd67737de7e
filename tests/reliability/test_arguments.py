"""Issue 12, defects 5 and 6: values that passed validation and then failed inside the plugin
(``internal error: ValueError/MemoryError/OverflowError``) are rejected up front by the shared
argument mechanism (``ArgSpec`` minimum/maximum/validator) naming the plugin, the key and the
allowed range; Python API misuse raises documented pymemflow errors saying what was wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pymemflow
from pymemflow.errors import ArgumentError, PymemflowError, RangeError
from pymemflow.plugins.args import format_args_help, validate_against
from pymemflow.types import ArgSpec, parse_int

CASES = [
    ("dummy:size=0", "dummy: bad value '0' for 'size': 0 is out of range (allowed 4k .. 1t)"),
    ("demo:,size=1k", "demo: bad value '1k' for 'size': 1k is out of range (allowed 32m .. 16g)"),
    ("demo:win7,size=16m", "demo: bad value '16m' for 'size': 16m is out of range (allowed 32m .. 16g)"),
    ("demo:,size=99999t", "demo: bad value '99999t' for 'size': 0x1869f0000000000 is out of range "
                          "(allowed 32m .. 16g)"),
    ("dummy::delay=-5", "dummy: bad value '-5' for 'delay': -5e-06s is out of range (allowed 0s .. 60s)"),
    ("dummy::cache_size=99999t", "dummy: bad value '99999t' for 'cache_size': 0x1869f0000000000 is out of range "
                                 "(allowed 4k .. 4g)"),
    ("dummy::cache_page_size=1t", "dummy: bad value '1t' for 'cache_page_size': 1t is out of range "
                                  "(allowed 4k .. 2m)"),
    ("dummy::cache_size=4k,cache_page_size=8k", "dummy: middleware: cache_size 0x1000 must hold at least one "
                                                "page of cache_page_size 0x2000"),
]


@pytest.mark.parametrize(("spec", "message"), CASES)
def test_cli_rejects_up_front(spec, message) -> None:
    res = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "-c", spec, "info"], capture_output=True,
                         text=True, timeout=120)
    assert (res.returncode, res.stderr.strip()) == (2, f"pymemflow: error: {message}")


@pytest.mark.parametrize(("spec", "message"), CASES)
def test_python_rejects_up_front(spec, message) -> None:
    with pytest.raises(ArgumentError) as e:
        pymemflow.open(spec)
    assert str(e.value) == message


def test_already_typed_python_values_are_checked_too() -> None:
    with pytest.raises(ArgumentError, match=r"dummy: bad value -1 for 'size': -1 is out of range \(allowed 4k"):
        pymemflow.Chain().connector("dummy", size=-1).open()
    with pytest.raises(ArgumentError, match=r"'cache_size': 0x1869f0000000000 is out of range"):
        pymemflow.Chain().connector("dummy", cache_size=99999 << 40).open()


def test_ranges_are_in_the_plugin_help() -> None:
    res = subprocess.run([sys.executable, "-m", "pymemflow.cli.main", "plugins", "dummy"], capture_output=True,
                         text=True, timeout=120)
    assert "size    bytes of memory, e.g. 64m, 1g, 0x100000 [default 64m; allowed 4k .. 1t]" in res.stdout
    assert "[optional; allowed 0s .. 60s]" in res.stdout  # delay
    assert "[optional; allowed 4k .. 2m]" in res.stdout  # cache_page_size


def test_validator_and_range_on_any_argspec() -> None:
    def even(v: int) -> None:
        """even numbers only."""
        if v % 2:
            raise ValueError(f"{v} is odd")

    spec = ArgSpec("n", "a number", parse=parse_int, minimum=2, maximum=0x100, validator=even)
    assert validate_against("p", [spec], {"n": "0x10"}) == {"n": 16}
    with pytest.raises(ArgumentError, match=r"^p: bad value '3' for 'n': 3 is odd$"):
        validate_against("p", [spec], {"n": "3"})
    with pytest.raises(ArgumentError, match=r"^p: bad value '1k' for 'n': 1k is out of range \(allowed 2 .. 256\)$"):
        validate_against("p", [spec], {"n": "1k"})
    assert "[optional; allowed 2 .. 256; even numbers only]" in format_args_help([spec])


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.read(-1, 4), "read: address -1 is negative"),
    (lambda m: m.read(1 << 64, 4), "read: address 0x10000000000000000 is outside 0 .. 0xffffffffffffffff"),
    (lambda m: m.read(0, -1), "read: length -1 is negative"),
    (lambda m: m.read(0, (1 << 64) + 1), "read: length 0x10000000000000001 is larger than the 64-bit"),
    (lambda m: m.read_u64(-8), "read: address -8 is negative"),
    (lambda m: m.read_batch([0, -1], 4), "addresses must be integers in 0 .. 0xffffffffffffffff, got -1"),
    (lambda m: m.read_batch([0, 1 << 64], 4), "got 18446744073709551616"),
    (lambda m: m.read_batch([0], [-4]), "negative read length -4"),
    (lambda m: m.read_batch([0], [1 << 64]), "read lengths must be integers in 0 .. 2\\*\\*63-1"),
    (lambda m: m.write(-1, b"x"), "write: address -1 is negative"),
    (lambda m: m.read_into(1 << 64, bytearray(4)), "read: address 0x10000000000000000"),
    (lambda m: m.read("0x10", 4), "read: address must be an integer, got str"),
])
def test_api_addresses_and_lengths(call, message) -> None:
    with pymemflow.open("dummy:size=1m") as mem:
        with pytest.raises(RangeError, match=message) as e:
            call(mem)
    assert isinstance(e.value, PymemflowError) and isinstance(e.value, ValueError)


def test_api_virtual_addresses(demo_win32) -> None:
    proc = demo_win32.process(4)
    for bad in (-1, 1 << 64):
        with pytest.raises(RangeError, match="read: address"):
            proc.memory.read(bad, 8)
    with pytest.raises(RangeError, match="far larger than the target"):
        proc.memory.read(0, 4 << 30)


@pytest.fixture(scope="module")
def demo_win32():
    os_ = pymemflow.open("demo:win10,size=64m,hints=true", os="win32")
    yield os_
    os_.close()


def test_open_empty_path() -> None:
    with pytest.raises(ArgumentError, match=r"^pymemflow.open: empty path \(give a dump file"):
        pymemflow.open("")


def test_chain_with_unterminated_quote() -> None:
    with pytest.raises(ArgumentError, match=r"""^cannot split the chain "-c 'raw:/x" into words: no closing """
                                            r"quotation \(close the quote, or pass a list of words\)$"):
        pymemflow.chain("-c 'raw:/x")


def test_chunk_cache_range(tmp_path) -> None:
    from snapshots.synth import make

    dump = make("kdump-zlib-plain", tmp_path)
    for spec in (f"auto:{dump},chunk_cache=0", f"kdump:{dump},chunk_cache=2m"):
        with pytest.raises(ArgumentError, match=r"'chunk_cache': .* chunks is out of range \(allowed 1 chunks "
                                                r"\.\. 1048576 chunks\)"):
            pymemflow.open(spec)
    with pymemflow.open(f"kdump:{dump},chunk_cache=16") as mem:
        assert mem.read(0, 8)
