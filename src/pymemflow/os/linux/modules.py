"""Loaded kernel modules from the ``modules`` list (name, base and size of the code)."""

from __future__ import annotations

from ...mem.view import MemoryView
from ..base import ModuleInfo
from .kread import Layouts, read_obj, walk_list

MAX_MODULES = 4096


def kernel_modules(kmem: MemoryView, modules_head: int, t: Layouts, arch: str,
                   warnings: list[str] | None = None) -> list[ModuleInfo]:
    """Modules of the ``modules`` list; a cut-short walk adds to ``warnings``."""
    o = t.offset_of
    list_off, name_off = o("module", "list"), o("module", "name")
    name_len = t.array_len("module", "name")
    if t.has_member("module", "mem"):  # 6.4+: mem[MOD_TEXT]
        base_off, size_off, size_fmt = o("module", "mem") + o("module_memory", "base"), \
            o("module", "mem") + o("module_memory", "size"), "<I"
    elif t.has_member("module", "core_layout"):
        base_off, size_off, size_fmt = o("module", "core_layout.base"), o("module", "core_layout.size"), "<I"
    else:
        base_off, size_off, size_fmt = o("module", "module_core"), o("module", "core_size"), "<I"
    span = max(name_off + name_len, base_off + 8, size_off + 4)
    out = []
    walk = walk_list(kmem, modules_head, limit=MAX_MODULES, what="modules", link_offset=list_off, span=span)
    if warnings is not None:
        warnings += walk.warnings
    for node in walk.entries:
        m = read_obj(kmem, node - list_off, span)
        if not m.ok:
            continue
        name = m.cstr(name_off, name_len)
        out.append(ModuleInfo(name=name, path=name, base=m.ptr(base_off), size=m.u(size_off, size_fmt), arch=arch))
    return out
