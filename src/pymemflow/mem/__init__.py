"""Memory model: the batched read contract, physical memory, memory maps, middleware."""

from .phys import PhysicalMemory, PhysicalMetadata
from .tuning import tune_allocator
from .view import Batcher, BatchResult, MemoryCursor, MemoryView

tune_allocator()  # see tuning.py: 4x faster batches; PYMEMFLOW_NO_MALLOC_TUNING=1 opts out

__all__ = ["Batcher", "BatchResult", "MemoryCursor", "MemoryView", "PhysicalMemory", "PhysicalMetadata"]
