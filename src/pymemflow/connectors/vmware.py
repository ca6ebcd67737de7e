"""VMware snapshots: ``.vmem`` (raw guest memory) described by a ``.vmss``/``.vmsn`` state file,
or an all-in-one ``.vmss``/``.vmsn`` that holds the memory itself.

State-file layout (as volatility3's vmware layer reads it): header ``magic u32`` (0xbed2bed0,
0xbad1bad1, 0xbed2bed2, 0xbed3bed3), ``u32``, ``group_count u32``; then groups of
``name[64], tags_offset u64, size u64``. A group's tags run until a zero ``flags``/``name_len``
pair: ``flags u8`` (bits 6-7: index count, bits 0-5: data size; 62/63 mean a big block),
``name_len u8``, name, ``u32`` indices, data. A big block is ``size, memsize`` (u32 for magic
version 0, u64 otherwise), 2 padding bytes, then ``size`` bytes. In group "memory",
``regionsCount``, ``regionPPN[i]``, ``regionPageNum[i]`` and ``regionSize[i]`` (pages) map guest
physical pages to pages of the memory (the .vmem, or the "Memory" big block when embedded).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..types import PluginSpec
from .formats.base import file_plugin_args
from .formats.runs import RunMap, RunMappedMemory
from .formats.source import FileSource

MAGICS = {0xBED2BED0: 0, 0xBAD1BAD1: 1, 0xBED2BED2: 2, 0xBED3BED3: 3}
PAGE = 0x1000
MAX_GROUPS = 4096
MAX_TAGS = 1 << 20
GROUP = struct.Struct("<64sQQ")


def parse_state(src: FileSource, wanted: tuple[str, ...] = ("memory", "cpu")) -> dict[str, dict[tuple[str, tuple[int, ...]], tuple[int, int, int]]]:
    """Tags of every group: ``{group: {(name, indices): (value_or_size, data_offset, flags)}}``.

    For small tags the first item is the integer value; for big blocks it is the block's size and
    ``data_offset`` says where it starts.
    """
    magic, _unk, ngroups = src.unpack("<III", 0, "vmss header")
    if magic not in MAGICS:
        raise src.error(0, "vmss header.magic", f"bad magic {magic:#x}")
    version = MAGICS[magic] & 0xF if magic != 0xBAD1BAD1 else 1
    if ngroups > MAX_GROUPS:
        raise src.error(8, "vmss header.group_count", f"absurd group count {ngroups}")
    groups: dict[str, dict[tuple[str, tuple[int, ...]], tuple[int, int, int]]] = {}
    for g in range(ngroups):
        at = 12 + g * GROUP.size
        raw, tags_at, _size = src.unpack(GROUP, at, f"vmss group {g}")
        name = raw.split(b"\0")[0].decode("ascii", "replace")
        if name not in wanted or groups.get(name):  # other groups (devices, ...) and repeats are not read
            groups.setdefault(name, {})
            continue
        tags: dict[tuple[str, tuple[int, ...]], tuple[int, int, int]] = {}
        pos = tags_at
        for _ in range(MAX_TAGS):
            flags, name_len = src.unpack("<BB", pos, f"vmss group {name!r} tag header")
            if flags == 0 and name_len == 0:
                break
            tname = src.read(pos + 2, name_len, "vmss tag name").decode("ascii", "replace")
            nidx = (flags >> 6) & 3
            idx = src.unpack(f"<{nidx}I", pos + 2 + name_len, "vmss tag indices") if nidx else ()
            data_at = pos + 2 + name_len + 4 * nidx
            dlen = flags & 0x3F
            if dlen in (62, 63):
                w = 4 if version == 0 else 8
                size, _mem = src.unpack("<II" if w == 4 else "<QQ", data_at, f"vmss tag {tname!r} block size")
                block_at = data_at + 2 * w + 2
                src.check(block_at, size, f"vmss tag {tname!r} block")
                tags[(tname, tuple(idx))] = (size, block_at, flags)
                pos = block_at + size
            else:
                raw_v = src.read(data_at, dlen, f"vmss tag {tname!r} data")
                tags[(tname, tuple(idx))] = (int.from_bytes(raw_v, "little") if dlen <= 8 else dlen, data_at, flags)
                pos = data_at + dlen
        else:
            raise src.error(tags_at, f"vmss group {name!r}", f"more than {MAX_TAGS} tags")
        groups[name] = tags
    return groups


class VmwareSnapshot(RunMappedMemory):
    name = "vmware"
    format_name = "vmware"

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        state_path, vmem_path = _pair(p)
        state = FileSource(state_path, self.format_name)
        try:
            groups = parse_state(state)
        except BaseException:
            state.close()
            raise
        mem = groups.get("memory")
        if mem is None:
            state.close()
            raise FormatError(state_path, None, "vmss group 'memory'", "missing")
        embedded = mem.get(("Memory", (0, 0))) or mem.get(("Memory", (0,))) or mem.get(("Memory", ()))
        if vmem_path is not None:
            super().__init__(FileSource(vmem_path, self.format_name))
            base = 0
            state.close()
        elif embedded is not None:
            super().__init__(state)
            base = embedded[1]
        else:
            state.close()
            raise FormatError(state_path, None, "memory", "no .vmem beside it and no embedded 'Memory' block")
        src = self.source
        count_tag = mem.get(("regionsCount", ()))
        runs: list[tuple[int, int, int]] = []
        where: list[int] = []
        if count_tag is None or count_tag[0] == 0:
            size = (embedded[0] if vmem_path is None and embedded else src.size)
            runs.append((0, size, base))
            where.append(base)
        else:
            n = count_tag[0]
            if n > len(mem):
                raise FormatError(state_path, count_tag[1], "regionsCount", f"{n} regions but only {len(mem)} tags")
            for i in range(n):
                try:
                    ppn, at = mem[("regionPPN", (i,))][:2]
                    page_num = mem[("regionPageNum", (i,))][0]
                    npages = mem[("regionSize", (i,))][0]
                except KeyError as e:
                    raise FormatError(state_path, count_tag[1], f"region {i}", f"missing tag {e}") from e
                runs.append((ppn * PAGE, npages * PAGE, base + page_num * PAGE))
                where.append(at)
        if vmem_path is None and embedded is not None:
            limit = embedded[1] + embedded[0]
            for (s, n, fo), w in zip(runs, where, strict=True):
                if fo + n > limit:
                    raise FormatError(state_path, w, "region", f"region at {s:#x} runs past the Memory block")
        if vmem_path is not None:  # offsets in errors would be the state file's: name it instead
            self._set_runs(RunMap(src, runs, f"memory regions of {Path(state_path).name}", None))
        else:
            self._set_runs(RunMap(src, runs, "vmss memory regions", where))
        self.format_info.update({"state_file": str(state_path), "vmem": str(vmem_path) if vmem_path else None,
                                 "regions": len(runs), "groups": sorted(groups)})
        cpu = groups.get("cpu", {})
        cr3 = cpu.get(("CR", (0, 3))) or cpu.get(("CR64", (0, 3)))
        if cr3 and cr3[0]:
            self.hints["dtb"] = cr3[0] & ~0xFFF


def _pair(p: Path) -> tuple[Path, Path | None]:
    """(state file, vmem or None) for a path naming either."""
    if p.suffix.lower() == ".vmem":
        for ext in (".vmss", ".vmsn"):
            if p.with_suffix(ext).exists():
                return p.with_suffix(ext), p
        raise FormatError(p, None, "state file", "no .vmss or .vmsn beside the .vmem (it holds the memory map)")
    vmem = p.with_suffix(".vmem")
    return p, (vmem if vmem.exists() else None)


def open_vmware(args: dict[str, Any], _input: Any = None) -> VmwareSnapshot:
    return VmwareSnapshot(args["target"])


PLUGIN = PluginSpec("connector", "vmware", "VMware snapshot (.vmem + .vmss/.vmsn, or all-in-one .vmss/.vmsn)",
                    open_vmware, args=file_plugin_args())
