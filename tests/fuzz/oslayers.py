"""Fuzz cases for the OS layers: kernel structures mutated in memory, then walked.

Two targets: the synthetic Windows machines (``pymemflow.demo``: x64 Windows 10 and x86-PAE Windows 7)
and a real Linux guest's RAM (a paused testbed guest copied to a file; its path in ``PMF_FUZZ_LINUX_RAM``).
The warm-up opens each clean target once and records where its structures are -- process lists,
loader lists, VAD trees, page tables, PE headers (Windows); task lists, maple trees, VMAs, page tables,
kallsyms, BTF, VMCOREINFO (Linux) -- as physical ranges. A case copies the target (copy-on-write),
mutates one structure with :func:`~fuzz.harness.mutate`, opens the OS layer and runs every listing on
it. A case passes when each step returns (partial results and warnings are fine) or raises a
:class:`~pymemflow.errors.PymemflowError`; the harness catches everything else.
"""

from __future__ import annotations

import mmap
import os
import random
import warnings
from typing import Any

from pymemflow.errors import PymemflowError
from pymemflow.mem.buffer import MmapMemory
from pymemflow.mem.memmap import MemoryMap

from .harness import mutate

WIN_PROFILES = ("win10-19041-x64", "win7-7601-x86pae")
WIN_KINDS = ("process_list", "eprocess", "loader_list", "vad_tree", "page_tables", "pe_header", "threads",
             "handle_table")
LINUX_KINDS = ("task_list", "task_struct", "maple_tree", "vma", "page_tables", "kallsyms", "btf", "vmcoreinfo",
               "fd_table", "socket", "pid_idr", "timekeeper")
FORENSIC_KINDS = {"task_list", "task_struct", "fd_table", "socket", "pid_idr", "timekeeper"}
"""Kinds whose cases also run threads/handles/netscan/psscan/malfind/timeline (the others skip them: time)."""
ENV_LINUX = "PMF_FUZZ_LINUX_RAM"
PAGE = 0x1000

_WIN: dict[str, tuple[bytes, dict[str, Any], dict[str, list[tuple[int, int]]]]] = {}
_LINUX: dict[str, list[tuple[int, int]]] = {}


# ---- warm-up: where the structures are -------------------------------------------------------------
def _phys(mm: Any, size: int) -> MmapMemory:
    return MmapMemory(mm, MemoryMap.identity(size), writable=False)


def _pa_ranges(vm: Any, va: int, n: int) -> list[tuple[int, int]]:
    """Physical pieces of ``[va, va+n)`` (page by page; unmapped parts left out)."""
    out: list[tuple[int, int]] = []
    pos = va
    while pos < va + n:
        take = min(va + n - pos, PAGE - (pos & (PAGE - 1)))
        try:
            out.append((vm.translate(pos), take))
        except PymemflowError:
            pass
        pos += take
    return out


def _table_pages(phys: Any, dtb: int, va: int, levels: int, entry: int = 8) -> list[tuple[int, int]]:
    """The page-table pages a 4-level (or PAE 3-level) walk of ``va`` goes through."""
    out: list[tuple[int, int]] = []
    table = dtb & ~0xFFF
    shifts = (39, 30, 21, 12) if levels == 4 else (30, 21, 12)
    for i, shift in enumerate(shifts):
        out.append((table, PAGE) if not (levels == 3 and i == 0) else (dtb & ~0x1F, 32))
        idx = (va >> shift) & (511 if not (levels == 3 and i == 0) else 3)
        try:
            e = phys.read_u64(table + idx * entry if not (levels == 3 and i == 0) else (dtb & ~0x1F) + idx * 8)
        except PymemflowError:
            break
        if not e & 1 or (i < len(shifts) - 1 and e & 0x80 and i > 0):
            break
        table = e & 0x000FFFFFFFFFF000
    return out


def warm_windows() -> None:
    from pymemflow.demo import build_image
    from pymemflow.os.win32.fields import user_layout
    from pymemflow.os.win32.kernel import Win32Kernel

    for profile in WIN_PROFILES:
        img = build_image(profile, seed=5, size=64 << 20)
        mm = mmap.mmap(-1, img.size)
        img.fill(mm)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k = Win32Kernel.open(_phys(mm, img.size), progress=False)
            infos = k.process_info_list()
        lay = k.eproc
        ptr = lay.ptr
        where: dict[str, list[tuple[int, int]]] = {kind: [] for kind in WIN_KINDS}
        levels = 4 if k.facts.arch == "x64" else 3
        ul = user_layout(k.offsets)
        for info in infos:
            where["process_list"] += _pa_ranges(k.kmem, info.address + lay.links - 2 * ptr, 6 * ptr)
            where["eprocess"] += _pa_ranges(k.kmem, info.address, lay.size)
        for p in img.facts["processes"]:
            vm = k.process(p["pid"]).memory if p["pid"] else k.kmem
            for m in p["modules"][:4]:
                if m.get("ldr_entry"):
                    where["loader_list"] += _pa_ranges(vm, m["ldr_entry"], ul.entry_span)
                where["pe_header"] += _pa_ranges(vm, m["base"], 0x400)
            for v in p["vads"][:16]:
                where["vad_tree"] += _pa_ranges(k.kmem, v["node"], 0x80)
            for th in p["threads"][:4]:  # ETHREADs (list links, Cid, start addresses, times)
                where["threads"] += _pa_ranges(k.kmem, th["ethread"], k.offsets.size("_ETHREAD") or 0x400)
            if p.get("handles"):  # the table's pages and the objects' headers (type index, info mask, names)
                table = k.kmem.read_ptr(p["eprocess"] + k.offsets["_EPROCESS.ObjectTable"])
                code = k.kmem.read_ptr(table + k.offsets["_HANDLE_TABLE.TableCode"])
                where["handle_table"] += _pa_ranges(k.kmem, table, 0x40) + _pa_ranges(k.kmem, code & ~3, PAGE)
                for h in p["handles"][:8]:
                    where["handle_table"] += _pa_ranges(k.kmem, h["object"] - 0x60, 0x80)
            if p["dtb"] and p["modules"]:
                where["page_tables"] += _table_pages(k.phys, p["dtb"], p["modules"][0]["base"], levels)
        # the kernel's own: the list head, the page tables mapping ntoskrnl
        where["process_list"] += _pa_ranges(k.kmem, k.facts.ps_active_process_head, 2 * ptr)
        where["page_tables"] += _table_pages(k.phys, k.facts.dtb, k.facts.kernel_base, levels)
        for m in img.facts["kernel_modules"][:8]:
            if m.get("ldr_entry"):
                where["loader_list"] += _pa_ranges(k.kmem, m["ldr_entry"], 0x80)
        facts = {"dtb": k.facts.dtb, "kernel_base": k.facts.kernel_base, "arch": k.facts.arch}
        _WIN[profile] = (bytes(mm), facts, {kk: v for kk, v in where.items() if v})
        k.close()


def warm_linux() -> None:
    from pymemflow.connectors.raw import RawFileMemory
    from pymemflow.os.linux import maps as maps_mod
    from pymemflow.os.linux.kread import read_obj, read_ptr
    from pymemflow.os.linux.layer import LinuxOs

    path = os.environ.get(ENV_LINUX)
    if not path:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lx = LinuxOs(RawFileMemory(path))
        infos = lx.process_info_list()
    off = lx._toff
    k = lx.kmem
    where: dict[str, list[tuple[int, int]]] = {kind: [] for kind in LINUX_KINDS}
    fields = [off.tasks, off.pid, off.comm, off.real_parent, off.mm, off.signal, off.real_cred,
              off.thread_node or off.tasks]
    voff = maps_mod.VmaOffsets.from_layouts(lx.types)
    for info in infos:
        where["task_list"] += _pa_ranges(k, info.address + off.tasks, 16)
        for f in fields:
            where["task_struct"] += _pa_ranges(k, info.address + max(f - 32, 0), 64)
        mm = int(info.extra.get("mm") or 0)
        if not mm or info.extra.get("kernel_thread"):
            continue
        root = read_ptr(k, mm + voff.mm_mt_root) if voff.mm_mt_root is not None else None
        if root and root & 3 == 2:
            node = root & ~0xFF
            where["maple_tree"] += _pa_ranges(k, node, maps_mod.NODE_SIZE)
            n = read_obj(k, node, maps_mod.NODE_SIZE)
            for i in range(voff.a64_slots):
                child = n.ptr(voff.a64_slot + i * k.pointer_size)
                if child and child & 3 == 2:
                    where["maple_tree"] += _pa_ranges(k, child & ~0xFF, maps_mod.NODE_SIZE)
        for vma in maps_mod.vma_list(k, mm, voff)[:8]:
            where["vma"] += _pa_ranges(k, vma, 64)
        if info.dtb:
            regions = lx.memory_regions(lx.process_from_info(info))
            if regions:
                where["page_tables"] += _table_pages(lx.phys, info.dtb, regions[0].start, 4)
    s = lx.vmcoreinfo.symbols
    for name in ("kallsyms_names", "kallsyms_token_table", "kallsyms_token_index", "kallsyms_offsets",
                 "kallsyms_num_syms"):
        if name in s:
            where["kallsyms"] += _pa_ranges(k, s[name], 0x400)
    start, stop = lx.symbols.get("__start_BTF"), lx.symbols.get("__stop_BTF")
    if start and stop:
        rng = random.Random(0)
        where["btf"] += _pa_ranges(k, start, 0x100)
        for _ in range(32):
            where["btf"] += _pa_ranges(k, rng.randrange(start, stop - 0x100) & ~7, 0x100)
    if lx.vmcoreinfo.location is not None:
        where["vmcoreinfo"].append((lx.vmcoreinfo.location, 0x800))
    _warm_forensics(lx, infos, where)
    _LINUX.update({kk: v for kk, v in where.items() if v})
    _LINUX["file"] = [(0, 0)]
    globals()["_LINUX_PATH"] = path


def _warm_forensics(lx: Any, infos: list[Any], where: dict[str, list[tuple[int, int]]]) -> None:
    """Where the fd tables, struct files, sockets, the pid idr's top nodes and the timekeeper are."""
    from pymemflow.os.linux.files import FileOffsets
    from pymemflow.os.linux.kread import read_obj, read_ptr
    from pymemflow.os.linux.psscan import IdrOffsets

    k, t = lx.kmem, lx.types
    fo = FileOffsets.from_layouts(t, k.pointer_size)
    for info in infos:
        if info.extra.get("kernel_thread"):
            continue
        files = read_ptr(k, info.address + fo.task_files)
        fdt = read_ptr(k, files + fo.fdt) if files else None
        if not fdt:
            continue
        where["fd_table"] += _pa_ranges(k, fdt, 0x40)
        tab = read_obj(k, fdt, 0x40)
        arr = tab.ptr(fo.fd)
        where["fd_table"] += _pa_ranges(k, arr, 0x80)
        for i in range(16):
            f = read_ptr(k, arr + 8 * i)
            if f:
                where["fd_table"] += _pa_ranges(k, f, 0x100)
    for _pid, _name, f in lx._open_files(None):
        if f.type == "socket" and f.private_data:
            where["socket"] += _pa_ranges(k, f.private_data, 0x40)
            sk = read_ptr(k, f.private_data + t.offset_of("socket", "sk"))
            if sk:
                where["socket"] += _pa_ranges(k, sk, 0x60)
    ns = lx.symbols.get("init_pid_ns")
    if ns:
        io = IdrOffsets.from_layouts(t)
        where["pid_idr"] += _pa_ranges(k, ns + io.idr_head - 8, 0x20)
        root = read_ptr(k, ns + io.idr_head) or 0
        if root & 3 == io.internal_tag:
            where["pid_idr"] += _pa_ranges(k, root - io.internal_tag, io.node_slots + 64 * 8)
    tk = lx.symbols.get("tk_core")
    if tk:
        where["timekeeper"] += _pa_ranges(k, tk, 0x140)


# ---- cases --------------------------------------------------------------------------------------------
def _mutate_ranges(mm: Any, ranges: list[tuple[int, int]], rng: random.Random) -> None:
    """Mutate one to three of ``ranges`` in place (same length: a truncated mutant keeps the rest)."""
    for _ in range(rng.randint(1, 3)):
        pa, n = rng.choice(ranges)
        old = bytes(mm[pa: pa + n])
        new = mutate(old, rng)
        mm[pa: pa + len(new)] = new


def _quiet(fn: Any, *args: Any) -> Any:
    """One listing step: a documented error ends only this step (the next ones still run)."""
    try:
        return fn(*args)
    except PymemflowError:
        return None


def windows_case(profile: str, kind: str, seed: int) -> None:
    from pymemflow.os.win32.kernel import Win32Kernel

    image, facts, where = _WIN[profile]
    rng = random.Random(f"{profile}/{kind}/{seed}")
    mm = mmap.mmap(-1, len(image))
    mm[:] = image
    _mutate_ranges(mm, where[kind], rng)
    phys = _phys(mm, len(image))
    warnings.simplefilter("ignore")
    hinted = rng.random() < 0.8  # else full discovery (root scan, kernel scan) on the mutant
    k = (Win32Kernel.open(phys, dtb=facts["dtb"], kernel_base=facts["kernel_base"], arch=facts["arch"],
                          progress=False) if hinted else Win32Kernel.open(phys, progress=False))
    infos = k.process_info_list()
    _quiet(k.kernel_modules)
    for info in infos[:6]:
        proc = _quiet(k.process_from_info, info)
        if proc is None:
            continue
        mods = _quiet(proc.module_list) or []
        _quiet(lambda: proc.maps(vad=True))  # noqa: B023 - called right here
        for m in mods[:2]:
            _quiet(proc.exports, m)
            _quiet(proc.sections, m)
        _quiet(k.threads, proc)
        _quiet(k.handles, proc)
        _quiet(k.malfind, proc)
    _quiet(k.timeline)


def linux_case(kind: str, seed: int) -> None:
    from pymemflow.os.linux.layer import LinuxOs

    if kind not in _LINUX:
        return  # the clean guest has no such structure to mutate (counted as ok)
    path = globals()["_LINUX_PATH"]
    rng = random.Random(f"linux/{kind}/{seed}")
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private: mutations stay in this case
    _mutate_ranges(mm, _LINUX[kind], rng)
    warnings.simplefilter("ignore")
    lx = LinuxOs(_phys(mm, len(mm)))
    infos = lx.process_info_list()
    _quiet(lx.kernel_modules)
    _quiet(lx.dmesg)
    users = [i for i in infos if not i.extra.get("kernel_thread")]
    forensic = kind in FORENSIC_KINDS
    if forensic:
        for step in (lx.threads, lx.handles, lx.netscan, lx.psscan, lx.timeline):
            _quiet(step)
    for info in users[:4]:
        proc = _quiet(lx.process_from_info, info)
        if proc is None:
            continue
        _quiet(proc.maps)
        _quiet(proc.module_list)
        if forensic:
            _quiet(lx.malfind, proc)

