"""Each snapshot connector declares itself as a plugin and opens through its factory; the 32-bit
kdump header layout (makedumpfile on an i386 host) is read too."""

from __future__ import annotations

import importlib

import pytest

from pymemflow import chain
from pymemflow.connectors.kdump import KdumpCompressed
from pymemflow.errors import ArgumentError
from pymemflow.mem.middleware import PageCache
from pymemflow.mem.phys import PhysicalMemory
from pymemflow.writers.kdump import write_kdump

from .helpers import assert_same_pages
from .synth import HIGH_AT, expected, make, source

CASES = {"elf": "elf", "kdump": "kdump-zlib-plain", "crashdump": "crash64", "lime": "lime", "avml": "avml",
         "vmware": "vmware", "auto": "kdump-zlib-flat"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_plugin_spec_opens(tmp_path, name):
    mod = importlib.import_module(f"pymemflow.connectors.{name}")
    spec = mod.PLUGIN
    assert spec.kind == "connector" and spec.name == name and spec.description
    target = spec.arg("target")
    assert target is not None and target.required
    try:
        path = make(CASES[name], tmp_path)
    except Exception as e:  # a codec package missing
        pytest.skip(str(e))
    mem = spec.factory({"target": str(path), "chunk_cache": 8}, None)
    try:
        assert isinstance(mem, PhysicalMemory)
        assert_same_pages(mem, HIGH_AT, expected()[HIGH_AT])
        info = mem.info()
        assert info["max_address"] == mem.metadata.max_address and "hints" in info
    finally:
        mem.close()


def test_kdump_32bit_header_layout(tmp_path):
    src = source()
    path = write_kdump(src, tmp_path / "k32", "zlib", is32=True, machine="i686")
    with KdumpCompressed(path) as mem:
        assert mem.is32 and mem.pointer_size == 4 and mem.hints["machine"] == "i686"
        for at, part in expected().items():
            assert_same_pages(mem, at, part)
        assert mem.hints["vmcoreinfo"].startswith("OSRELEASE=")


def test_builtin_inventory_lists_snapshot_connectors():
    reg = pytest.importorskip("pymemflow.plugins.registry")
    if not hasattr(reg, "default_inventory"):
        pytest.skip("plugin inventory API not in this tree yet")
    inv = reg.default_inventory()
    for name in ("elf", "kdump", "crashdump", "lime", "avml", "vmware", "auto"):
        assert inv.has("connector", name), name
        assert inv.get("connector", name).name == name


def test_pymemflow_open_detects_formats(tmp_path):
    import pymemflow

    if not hasattr(pymemflow, "open"):
        pytest.skip("pymemflow.open is not in this tree yet")
    for fmt, name in (("kdump-zlib-flat", "kdump"), ("crash64b", "crashdump"), ("vmware", "vmware")):
        try:
            path = make(fmt, tmp_path)
        except Exception as e:
            pytest.skip(str(e))
        mem = pymemflow.open(path)
        try:
            assert mem.name == name
            assert_same_pages(mem, HIGH_AT, expected()[HIGH_AT])
        finally:
            mem.close()


@pytest.mark.parametrize("name", ["kdump", "avml", "auto"])
def test_chunk_cache_is_the_decompression_cache_and_cache_the_page_cache(tmp_path, name):
    """``cache`` means one thing: the page-cache middleware key. The compressed formats' cache of
    decoded chunks is ``chunk_cache=N``; the old spelling gets an error naming both."""
    try:
        path = make(CASES[name] if name != "auto" else "kdump-zlib-plain", tmp_path)
    except Exception as e:  # a codec package missing
        pytest.skip(str(e))
    with chain(["-c", f"{name}:{path},chunk_cache=3:cache=true"]) as ch:
        assert isinstance(ch.connector, PageCache)
        assert ch.connector.inner.cache_chunks == 3
        assert_same_pages(ch.connector, HIGH_AT, expected()[HIGH_AT])
    with pytest.raises(ArgumentError) as e:
        chain(["-c", f"{name}:{path},cache=true"])
    msg = str(e.value)
    assert msg.startswith(f"{name}: unknown argument 'cache'; valid arguments: target, chunk_cache")
    assert f"the decompression cache is now chunk_cache=N ({name}:TARGET,chunk_cache=N)" in msg
    assert f"'cache' is a middleware option: write it after a second ':' ({name}:TARGET:cache=...)" in msg


def test_uncompressed_formats_take_no_chunk_cache_and_say_where_cache_goes(tmp_path):
    path = make("elf", tmp_path)
    for bad, extra in (("cache=true", "'cache' is a middleware option: write it after a second ':' "
                                      "(elf:TARGET:cache=...)"),
                       ("chunk_cache=8", None)):
        with pytest.raises(ArgumentError) as e:
            chain(["-c", f"elf:{path},{bad}"])
        msg = str(e.value)
        assert msg.startswith(f"elf: unknown argument '{bad.split('=')[0]}'; valid arguments: target")
        assert "chunk_cache=N" not in msg and (extra is None or extra in msg)
    with chain(["-c", f"elf:{path}:cache=true"]) as ch:
        assert isinstance(ch.connector, PageCache)
