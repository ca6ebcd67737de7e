"""NumPy, imported on first use (issue 15: cold start).

Importing NumPy costs 100-200 ms of a new process (and starts OpenBLAS's threads), more than a whole
``pymemflow … ps`` needs once NumPy is out of the way: single reads and small batches run on the compiled
reader or on ``struct``/``bytes``; only big batches (the vectorised page walk, gathers of thousands of pieces,
scans) really need arrays. So the modules of ``mem``/``arch``/``os``/``connectors`` write::

    if TYPE_CHECKING:
        import numpy as np
    else:
        from ..mem.lazynp import np

and keep their code as it was: ``np.X`` imports NumPy the first time any attribute is used, after which the
stand-in holds NumPy's namespace in its own ``__dict__`` (a plain attribute load, as fast as the module's).
Tests that an object is a NumPy array or scalar go through :func:`is_ndarray` / :func:`is_int`, which never
import NumPy (an object cannot be an array unless NumPy is already loaded). :func:`on_load` runs code once
NumPy is there, whoever imported it (``mem.fast`` tells the compiled reader about ``numpy.ndarray``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import numpy
    import numpy.typing as npt

_hooks: list[Callable[[ModuleType], None]] = []
_ready = False


def load() -> ModuleType:
    """Import NumPy (once), fill the stand-in and run the :func:`on_load` hooks; returns the module."""
    global _ready
    import numpy  # the one deliberate import of NumPy behind the stand-in

    if not _ready:
        np.__dict__.update(numpy.__dict__)
        _ready = True
        for hook in _hooks:
            hook(numpy)
    return numpy


class LazyNumpy:
    """Stands in for the ``numpy`` module until something needs it (see the module doc)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load(), name)

    def __repr__(self) -> str:
        return f"<numpy, {'loaded' if _ready else 'not imported yet'} (pymemflow.mem.lazynp)>"


np: Any = LazyNumpy()


def loaded() -> ModuleType | None:
    """The numpy module if anything has imported it (running the hooks if that was not us), else None."""
    m = sys.modules.get("numpy")
    if m is not None and not _ready and hasattr(m, "ndarray"):  # hasattr: not while numpy itself imports
        load()
    return m


def on_load(hook: Callable[[ModuleType], None]) -> None:
    """Run ``hook(numpy)`` when NumPy gets loaded (now, if it already is)."""
    if _ready:
        hook(load())
        return
    _hooks.append(hook)
    loaded()


def is_ndarray(x: object) -> TypeGuard[npt.NDArray[Any]]:
    """``isinstance(x, numpy.ndarray)`` without importing NumPy."""
    m = sys.modules.get("numpy")
    return m is not None and isinstance(x, m.ndarray)


def is_int(x: object) -> TypeGuard[int | numpy.integer[Any]]:
    """A Python or NumPy integer (not a bool), without importing NumPy."""
    if type(x) is int:
        return True
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    m = sys.modules.get("numpy")
    return m is not None and isinstance(x, m.integer)
