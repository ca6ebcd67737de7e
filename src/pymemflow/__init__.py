"""pymemflow: physical-memory introspection -- connectors, batched address translation, OS layers."""

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

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
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
