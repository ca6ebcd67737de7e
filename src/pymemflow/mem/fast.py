"""Which read path runs: the compiled fast path (``pymemflow.mem._speedups``) or pure Python.

The extension is optional (a machine without a compiler installs without it) and ``PYMEMFLOW_PURE=1``
turns it off, so both paths stay selectable and tested; the pure-Python code is the reference the
compiled path must match byte for byte and failure for failure (tests/core/test_speedups.py).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..errors import PluginError
from . import lazynp
from .view import BatchResult

PURE_ENV = "PYMEMFLOW_PURE"


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None, f"pure Python ({PURE_ENV}=1)"
    try:
        from . import _speedups  # type: ignore[attr-defined]  # lazy: optional; PYMEMFLOW_PURE=1 skips it
    except ImportError as e:  # not built (no compiler at install time) or built for another Python
        return None, f"pure Python (compiled path not available: {e})"
    _speedups.configure(_NoArrays, BatchResult)  # until NumPy is loaded: see _numpy_loaded
    return _speedups, "compiled (pymemflow.mem._speedups)"


class _NoArrays:
    """Stands for ``numpy.ndarray`` in the compiled reader's set-up until NumPy is loaded (never instantiated,
    so the reader's exact-type test for arrays matches nothing; an ndarray would still be read through the
    buffer protocol)."""


def _numpy_loaded(numpy: ModuleType) -> None:
    """NumPy is there (we needed it, or the caller imported it): the compiled reader reads ndarrays' fields
    directly from now on (their buffer export costs more than a whole small batch)."""
    global ndarray_configured
    if speedups is not None:
        speedups.configure(numpy.ndarray, BatchResult)
        ndarray_configured = True


ndarray_configured = False
"""True once the compiled reader knows ``numpy.ndarray`` (NumPy loaded, by us or by the caller)."""


speedups, READ_PATH = _load()
"""The extension module, or None on the pure-Python path; ``READ_PATH`` says which and why."""
lazynp.on_load(_numpy_loaded)


def compiled() -> bool:
    """True when the compiled read path is in use."""
    return speedups is not None


TYPED = ("read_u8", "read_u16", "read_u32", "read_u64", "read_i8", "read_i16", "read_i32", "read_i64",
         "read_f32", "read_f64")
FORMATS = "BHIQbhiqfd"
"""The typed reads the compiled readers replace, and their struct formats (same order)."""
BOUND = (*TYPED, "read", "read_ptr", "read_batch", "_compiled_in_process")


def unbind(view: Any) -> None:
    """Drop a view's compiled reader and the methods bound from it (back to the class's pure ones).
    Touches the instance's ``__dict__`` only when something was bound: materialising it would slow every
    attribute load of a pure-path view (CPython keeps small instances' attributes inline otherwise)."""
    old = getattr(view, "_compiled_reader", None)
    if old is None:
        return
    if hasattr(old, "release"):
        old.release()
    d = view.__dict__
    for name in (*BOUND, "_compiled_reader"):
        d.pop(name, None)


def force_pure(view: Any) -> Any:
    """Keep ``view`` on the pure-Python path for good (tests compare the two paths in one process);
    returns the view. A virtual view over it is pure too (it has no compiled physical reader)."""
    view._force_pure = True
    unbind(view)
    return view


def _fallbacks(view: Any) -> tuple[Callable[[str, int], Any], Callable[..., bytes], Callable[..., Any]]:
    """The class's pure-Python typed read and ``read``, called through a weak reference so the view does
    not hold itself alive through its reader (an mmap is released when the view goes, as before)."""
    cls = type(view)
    typed = {f: getattr(cls, name) for f, name in zip(FORMATS, TYPED, strict=True)}
    read, read_batch = cls.read, cls.read_batch
    ref = weakref.ref(view)

    def alive() -> Any:
        v = ref()
        if v is None:
            raise PluginError(f"{cls.__name__}: the memory view behind this bound method is gone")
        return v

    def pure_typed(fmt: str, addr: int) -> Any:
        return typed[fmt](alive(), addr)

    def pure_read(addr: int, n: int, *, zero_fill: bool = False) -> bytes:
        return read(alive(), addr, n, zero_fill=zero_fill)  # type: ignore[no-any-return]

    def pure_batch(addrs: Any, lengths: Any) -> Any:
        return read_batch(alive(), addrs, lengths)

    return pure_typed, pure_read, pure_batch


def _bind(view: Any, reader: Any, owner: type, batch_method: str) -> None:
    cls = type(view)
    view.__dict__["_compiled_reader"] = reader
    # a subclass's own override stays in charge: of that method, and of every single read when it
    # reads single pieces its own way
    singles = cls._read_single is owner._read_single  # type: ignore[attr-defined]
    for name in (*TYPED, "read"):
        if singles and getattr(cls, name) is getattr(owner, name):
            view.__dict__[name] = getattr(reader, name)
    if getattr(cls, batch_method) is getattr(owner, batch_method) and cls.read_batch is owner.read_batch:  # type: ignore[attr-defined]
        view.__dict__["read_batch"] = reader.read_batch


def bind_map_reader(view: Any, buffer: Any, bases: list[int], lengths: list[int], reals: list[int],
                    owner: type, pid: int = 0) -> Any:
    """Give a physical view backed by one buffer (an mmap) compiled single reads and small gathers over
    the ranges ``bases[i] .. + lengths[i]`` at buffer offsets ``reals[i]`` (sorted, not overlapping);
    with ``pid`` instead of a buffer, ``reals`` are addresses in that process, read with one
    ``process_vm_readv`` per read or small batch (the ``qemu`` connector).
    ``owner``: the class whose pure methods the reader replaces. Returns the reader (None: pure path)."""
    unbind(view)
    if speedups is None or (buffer is None and pid <= 0) or getattr(view, "_force_pure", False):
        return None
    lazynp.loaded()  # NumPy imported by the caller since: configure the reader for ndarrays
    pure_typed, pure_read, pure_batch = _fallbacks(view)
    reader = speedups.MapReader(buffer if pid <= 0 else None, bases, lengths, reals, bool(view.little_endian),
                                int(view.pointer_size), pure_typed, pure_read, pure_batch, pid=max(pid, 0))
    _bind(view, reader, owner, "_read_batch")
    view.__dict__["_compiled_in_process"] = pid <= 0
    return reader


def bind_virt_reader(view: Any, single: dict[int, Any], phys_reader: Any, owner: type,
                     generation: Any = None) -> Any:
    """Compiled virtual reads for ``view`` through its single-address TLB dict onto the physical
    view's compiled reader. ``generation``: the TLB's counter (an ``array('Q')`` of one item, bumped
    whenever the TLB drops or changes an entry); with it the reader keeps its page cache between calls.
    Returns the reader (None: pure path)."""
    unbind(view)
    if speedups is None or phys_reader is None or getattr(view, "_force_pure", False):
        return None
    lazynp.loaded()
    pure_typed, pure_read, pure_batch = _fallbacks(view)
    reader = speedups.VirtReader(single, phys_reader, None, int(view.pointer_size), pure_typed, pure_read,
                                 pure_batch, generation)
    _bind(view, reader, owner, "_read_batch")
    if "read_u64" in view.__dict__ and type(view).read_ptr is owner.read_ptr:  # type: ignore[attr-defined]  # pointer width: fixed by the arch
        view.__dict__["read_ptr"] = reader.read_ptr
    return reader


class RebindOnSettings:
    """Mixin for views with a compiled reader: the reader copies ``little_endian`` and ``pointer_size``, so
    setting either after opening (an ELF header read late, a test flipping the byte order) rebuilds it and
    reads stay exactly what the pure path would give. Only setting costs anything; reading them does not."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in ("little_endian", "pointer_size") and getattr(self, "_compiled_reader", None) is not None:
            self._bind_compiled()  # type: ignore[attr-defined]
