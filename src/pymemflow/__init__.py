"""pymemflow: physical-memory introspection -- connectors, batched address translation, OS layers."""

import importlib
import logging
from typing import Any

from .errors import (
    ArgumentError,
    FormatError,
    NotFoundError,
    PartialReadError,
    PluginError,
    PymemflowError,
    ReadFailure,
    ReadOnlyError,
    TranslationError,
)
from .mem import MemoryView, PhysicalMemory
from .plugins.api import ArgSpec, PluginSpec, TargetInfo
from .plugins.chain import Chain, OpenedChain, chain
from .plugins.chain import open_target as open
from .plugins.registry import Inventory, default_inventory

__version__ = "0.1.0"

# A library logs, the application decides what to show (the CLI shows warnings at -v).
logging.getLogger(__name__).addHandler(logging.NullHandler())



def __getattr__(name: str) -> Any:
    """``pymemflow.fleet(...)`` imports the fleet front end (and nothing of Dask) on first use."""
    if name == "fleet":
        return importlib.import_module(".fleet", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArgSpec",
    "ArgumentError",
    "Chain",
    "Inventory",
    "OpenedChain",
    "PluginSpec",
    "TargetInfo",
    "chain",
    "default_inventory",
    "open",
    "FormatError",
    "MemoryView",
    "NotFoundError",
    "PartialReadError",
    "PhysicalMemory",
    "PluginError",
    "PymemflowError",
    "ReadFailure",
    "ReadOnlyError",
    "TranslationError",
    "__version__",
]
