"""What every snapshot connector shares: the file, metadata, hints, the memory map and ``close``."""

from __future__ import annotations

from typing import Any

from ...mem.phys import PhysicalMemory, PhysicalMetadata, PhysRange
from ...types import ArgSpec, parse_int
from .source import FileSource


class SnapshotMemory(PhysicalMemory):
    """A read-only physical address space backed by a dump file.

    Subclasses parse their header in ``__init__`` and call :meth:`_finish` with the memory map;
    ``format_info`` holds format-specific facts (shown by ``info``) next to the generic hints.
    """

    name = "snapshot"
    format_name = "snapshot"

    def __init__(self, source: FileSource) -> None:
        super().__init__()
        self.source = source
        self.path = source.path
        self.format_info: dict[str, Any] = {}
        self._map: list[tuple[int, int]] = []

    def _finish(self, ranges: list[tuple[int, int]]) -> None:
        """Set metadata from the ``(start, end)`` physical ranges this dump holds."""
        self._map = sorted(ranges)
        max_address = max((e for _, e in self._map), default=0)
        real = sum(e - s for s, e in self._map)
        self.metadata = PhysicalMetadata(max_address=max_address, real_size=real, readonly=True,
                                         ideal_batch_size=4096)

    def memory_map(self) -> list[tuple[int, int]]:
        """Backed physical ranges as ``(start, end)`` pairs (end exclusive), sorted."""
        return list(self._map)

    def phys_ranges(self) -> list[PhysRange]:
        return [PhysRange(s, e) for s, e in self._map]

    def info(self) -> dict[str, Any]:
        d = super().info()
        d["format"] = self.format_name
        d["file"] = str(self.path)
        d["ranges"] = len(self._map)
        if self.format_info:
            d["format_info"] = dict(self.format_info)
        return d

    def close(self) -> None:
        self.source.close()


def file_plugin_args(*, compressed: bool = False) -> list[ArgSpec]:
    """The arguments a snapshot connector takes: ``NAME:PATH``, plus ``chunk_cache=N`` for the
    ``compressed`` formats (decoded chunks kept in memory).

    ``chunk_cache`` is not called ``cache``: that name is the page-cache middleware key
    (``NAME:PATH:cache=true``)."""
    args = [ArgSpec("target", "path of the dump file", required=True)]
    if compressed:
        args.append(ArgSpec("chunk_cache", "decoded chunks (pages/frames) kept in memory; the format's default "
                            "when not given (not the page cache: that is NAME:PATH:cache=true)",
                            default=None, parse=parse_int, minimum=1, maximum=1 << 20, unit=" chunks"))
    return args
