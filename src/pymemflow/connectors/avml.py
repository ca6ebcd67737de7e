"""AVML dumps (Microsoft's Acquire Volatile Memory for Linux).

Layout (AVML's ``image.rs``, the format volatility3 reads): a sequence of blocks, each a 32-byte
header ``magic 0x4C4D5641 ("AVML"), version u32, start u64, end u64 (inclusive), padding u64``.
Version 2 follows it with a snappy *framed* stream (``framing_format.txt``: stream identifier
chunk 0xff "sNaPpY", compressed chunks 0x00 and stored chunks 0x01, each with a masked CRC-32C, at
most 64 KiB of data; 0x80..0xfe are skippable padding) of ``end - start + 1`` bytes and then a
u64 holding the stream's length. Version 1 stores the bytes as they are (no trailer).
Each frame chunk becomes one cache chunk, decoded on demand.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..types import PluginSpec
from .formats import codecs
from .formats.base import file_plugin_args
from .formats.chunked import ChunkedMemory
from .formats.source import FileSource

AVML_MAGIC = 0x4C4D5641
AVML_HEADER = struct.Struct("<IIQQQ")
MAX_FRAME_DATA = 65536
STREAM_ID = b"sNaPpY"
MAX_EMPTY_FRAMES = 1 << 16
"""Frames that carry no data (stream identifiers, padding) allowed per block: enough for any encoder."""


class AvmlDump(ChunkedMemory):
    name = "avml"
    format_name = "avml"

    def __init__(self, path: str | Path, chunk_cache: int = 256, source: FileSource | None = None) -> None:
        super().__init__(source or FileSource(path, self.format_name))
        self.cache_chunks = max(1, chunk_cache)
        src = self.source
        starts: list[int] = []
        lengths: list[int] = []
        self._where: list[int] = []   # file offset of the chunk's payload
        self._csize: list[int] = []   # payload size in the file
        self._kind: list[int] = []    # 0 snappy, 1 stored
        pos = blocks = 0
        while pos < src.size:
            magic, version, start, end, _ = src.unpack(AVML_HEADER, pos, f"AVML header {blocks}")
            if magic != AVML_MAGIC:
                raise src.error(pos, "avml header.magic", f"bad magic {magic:#x} (expected {AVML_MAGIC:#x})")
            if version not in (1, 2):
                raise src.error(pos + 4, "avml header.version", f"unsupported version {version}")
            if end < start:
                raise src.error(pos + 16, "avml header.end", f"end {end:#x} < start {start:#x}")
            size = end - start + 1
            data = pos + AVML_HEADER.size
            if version == 1:
                if data + size > src.size:
                    raise src.error(pos + 16, "avml header.end", f"block of {size:#x} bytes runs past the end")
                for off in range(0, size, MAX_FRAME_DATA):
                    n = min(MAX_FRAME_DATA, size - off)
                    starts.append(start + off)
                    lengths.append(n)
                    self._where.append(data + off)
                    self._csize.append(n)
                    self._kind.append(1)
                pos = data + size
            else:
                pos = self._frames(src, data, start, size, starts, lengths)
                (stream_len,) = src.unpack("<Q", pos, "avml block trailer (stream length)")
                if stream_len != pos - data:
                    raise src.error(pos, "avml block trailer",
                                    f"says the stream is {stream_len:#x} bytes, found {pos - data:#x}")
                pos += 8
            blocks += 1
        if not starts:
            raise src.error(0, "avml header", "no blocks (empty file)")
        st = np.array(starts, dtype=np.uint64)
        ln = np.array(lengths, dtype=np.uint64)
        order = np.argsort(st, kind="stable")
        st, ln = st[order], ln[order]
        if st.size > 1 and (st[1:] < st[:-1] + ln[:-1]).any():
            i = int(np.flatnonzero(st[1:] < st[:-1] + ln[:-1])[0]) + 1
            raise src.error(None, "avml header.start", f"block at {int(st[i]):#x} overlaps the previous one")
        self._order = order
        self._where_a = np.array(self._where, dtype=np.int64)[order]
        self._csize_a = np.array(self._csize, dtype=np.int64)[order]
        self._kind_a = np.array(self._kind, dtype=np.int8)[order]
        self._set_chunks(st, ln)
        self.format_info.update({"blocks": blocks, "frames": int(st.size)})

    def _frames(self, src: FileSource, pos: int, start: int, size: int,
                starts: list[int], lengths: list[int]) -> int:
        """Index one framed snappy stream; returns the file offset just after it."""
        done = 0
        seen_id = False
        empty = 0
        while done < size:
            (word,) = src.unpack("<I", pos, "snappy frame header")
            ctype, clen = word & 0xFF, word >> 8
            body = pos + 4
            src.check(body, clen, f"snappy frame (type {ctype:#x}) body")
            if ctype == 0xFF:
                if clen != 6 or src.read(body, 6, "snappy stream identifier") != STREAM_ID:
                    raise src.error(pos, "snappy stream identifier", "is not 'sNaPpY'")
                seen_id = True
            elif ctype in (0x00, 0x01):
                if not seen_id:
                    raise src.error(pos, "snappy frame", "data chunk before the stream identifier")
                if clen < 4:
                    raise src.error(pos, "snappy frame length", f"{clen} is too short for its CRC")
                payload, plen = body + 4, clen - 4
                if ctype == 0x00:
                    n = codecs.snappy_raw_length(src.read(payload, min(plen, 5), "snappy block length"))
                else:
                    n = plen
                if n <= 0 or n > MAX_FRAME_DATA or done + n > size:
                    raise src.error(pos, "snappy frame length",
                                    f"chunk declares {n} bytes (at most {MAX_FRAME_DATA}, {size - done} left)")
                starts.append(start + done)
                lengths.append(n)
                self._where.append(payload)
                self._csize.append(plen)
                self._kind.append(0 if ctype == 0x00 else 1)
                done += n
            elif 0x02 <= ctype <= 0x7F:
                raise src.error(pos, "snappy frame type", f"unskippable reserved chunk type {ctype:#x}")
            if ctype not in (0x00, 0x01):
                empty += 1
                if empty > MAX_EMPTY_FRAMES:
                    raise src.error(pos, "snappy frame", f"more than {MAX_EMPTY_FRAMES} frames without data")
            pos = body + clen
        return pos

    def _decode_chunk(self, i: int) -> Any:
        where, csize = int(self._where_a[i]), int(self._csize_a[i])
        n = int(self.chunk_ends[i] - self.chunk_starts[i])
        data = self.source.read(where, csize, "snappy frame data")
        if self._kind_a[i] == 1:
            return np.frombuffer(data, dtype=np.uint8)
        return codecs.decode("snappy", data, n, self.path, where, "snappy frame data")


def open_avml(args: dict[str, Any], _input: Any = None) -> AvmlDump:
    return AvmlDump(args["target"], chunk_cache=int(args.get("chunk_cache") or 256))


PLUGIN = PluginSpec("connector", "avml", "AVML memory dump (snappy-compressed LiME-like blocks)", open_avml,
                    args=file_plugin_args(compressed=True))
