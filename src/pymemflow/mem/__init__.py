"""Memory model: the batched read contract, physical memory, memory maps, middleware."""

from .memmap import MemoryMap, MemRange
from .pagetype import PageType, page_type_hint
from .phys import PhysicalMemory, PhysicalMetadata
from .tuning import tune_allocator
from .view import Batcher, BatchResult, MemoryCursor, MemoryView, Scatter

tune_allocator()  # see tuning.py: 4x faster batches; PYMEMFLOW_NO_MALLOC_TUNING=1 opts out

__all__ = [
    "Batcher",
    "BatchResult",
    "MemRange",
    "MemoryCursor",
    "MemoryMap",
    "MemoryView",
    "PageType",
    "PhysicalMemory",
    "PhysicalMetadata",
    "Scatter",
    "page_type_hint",
    "tune_allocator",
]
