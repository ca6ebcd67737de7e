"""``pymemflow mount``: a chain's memory, processes and modules as a FUSE file system.

:mod:`pymemflow.fs.tree` is the layout (no FUSE needed), :mod:`pymemflow.fs.fuse` mounts it.
Both are front ends: they use the OS layer's objects and never a second implementation.
"""

from .tree import Dir, File, FsError, Link, MemoryFs, looks_live

__all__ = ["Dir", "File", "FsError", "Link", "MemoryFs", "looks_live"]
