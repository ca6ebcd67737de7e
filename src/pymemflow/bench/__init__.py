"""Measurements users run on their own chains (``pymemflow bench``)."""

from .readbench import BATCH_SIZES, CHUNK_SIZES, BenchCell, read_bench

__all__ = ["BATCH_SIZES", "CHUNK_SIZES", "BenchCell", "read_bench"]
