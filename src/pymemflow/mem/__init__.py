"""Memory model: the batched read contract, physical memory, memory maps, middleware."""

from .phys import PhysicalMemory, PhysicalMetadata
from .view import Batcher, BatchResult, MemoryCursor, MemoryView

__all__ = ["Batcher", "BatchResult", "MemoryCursor", "MemoryView", "PhysicalMemory", "PhysicalMetadata"]
