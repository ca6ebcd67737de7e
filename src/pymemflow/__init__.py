"""pymemflow: physical-memory introspection -- connectors, batched address translation, OS layers.

Names below the errors load on first use (PEP 562), so ``import pymemflow`` -- and the CLI talking to a
daemon (``pymemflow -o remote:... ps``) -- does not pay for NumPy and the plugin scan up front.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from .errors import (
    ArgumentError,
    FormatError,
    NotFoundError,
    PartialReadError,
    PluginError,
    PymemflowError,
    RangeError,
    ReadFailure,
    ReadOnlyError,
    TranslationError,
)

if TYPE_CHECKING:
    from .mem import MemoryView, PhysicalMemory
    from .plugins.api import ArgSpec, PluginSpec, TargetInfo
    from .plugins.chain import Chain, OpenedChain, chain
    from .plugins.chain import open_target as open
    from .plugins.connect import Daemon, RemoteChain, connect
    from .plugins.registry import Inventory, default_inventory

__version__ = "0.1.0"

# A library logs, the application decides what to show (the CLI shows warnings at -v).
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY: dict[str, tuple[str, str]] = {
    "MemoryView": (".mem", "MemoryView"),
    "PhysicalMemory": (".mem", "PhysicalMemory"),
    "ArgSpec": (".plugins.api", "ArgSpec"),
    "PluginSpec": (".plugins.api", "PluginSpec"),
    "TargetInfo": (".plugins.api", "TargetInfo"),
    "Chain": (".plugins.chain", "Chain"),
    "OpenedChain": (".plugins.chain", "OpenedChain"),
    "chain": (".plugins.chain", "chain"),
    "open": (".plugins.chain", "open_target"),
    "Inventory": (".plugins.registry", "Inventory"),
    "default_inventory": (".plugins.registry", "default_inventory"),
    "connect": (".plugins.connect", "connect"),
    "Daemon": (".plugins.connect", "Daemon"),
    "RemoteChain": (".plugins.connect", "RemoteChain"),
}


def __getattr__(name: str) -> Any:
    if name == "fleet":  # pymemflow.fleet(...): the fleet front end (and nothing of Dask) on first use
        return importlib.import_module(".fleet", __name__)
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'pymemflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0], __name__), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ArgSpec",
    "ArgumentError",
    "Chain",
    "Daemon",
    "Inventory",
    "OpenedChain",
    "PluginSpec",
    "RemoteChain",
    "TargetInfo",
    "chain",
    "connect",
    "default_inventory",
    "open",
    "FormatError",
    "MemoryView",
    "NotFoundError",
    "PartialReadError",
    "PhysicalMemory",
    "PluginError",
    "PymemflowError",
    "RangeError",
    "ReadFailure",
    "ReadOnlyError",
    "TranslationError",
    "__version__",
]
