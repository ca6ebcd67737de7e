"""What a scan looks for: byte patterns with wildcards, strings (ASCII/UTF-8 and UTF-16LE), YARA rules.

Every matcher finds *every* start position in a buffer slice (overlapping matches included), so the
result does not depend on where a scan cuts memory into chunks: the engine hands each chunk with an
overlap of ``max_length - 1`` bytes and keeps only matches starting in the chunk's own part.
Exact byte strings use ``bytes.find``/``mmap.find`` on the buffer in place (short ones a literal
regex, which is faster for them: :data:`SHORT`); wildcards become a bytes regex under ``re.DOTALL``; YARA rules run through ``yara-python`` (optional extra ``yara``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..errors import ArgumentError

__all__ = ["BytesMatcher", "FoldedMatcher", "Matcher", "RegexMatcher", "YaraMatcher", "exact_matcher", "parse_pattern", "pattern_matcher",
           "string_matchers", "yara_matcher"]

Match = tuple[int, int, str]
"""``(offset in the buffer, length, rule name)``."""


class Matcher:
    """One thing to look for; ``find`` yields the matches that start in ``[start, stop)``."""

    name: str = ""
    max_length: int = 1
    """Longest match; the engine overlaps chunks by ``max_length - 1`` bytes."""

    def find(self, buf: Any, start: int, stop: int, end: int) -> Iterator[Match]:
        """Matches starting in ``buf[start:stop]`` and ending by ``end`` (``stop <= end <= len(buf)``)."""
        raise NotImplementedError


class BytesMatcher(Matcher):
    """An exact byte string: ``find`` on the buffer itself (bytes, mmap), no regex, no copy."""

    def __init__(self, needle: bytes, name: str) -> None:
        if not needle:
            raise ArgumentError("scan: an empty pattern matches everywhere; give at least one byte")
        self.needle = bytes(needle)
        self.name = name
        self.max_length = len(needle)

    def find(self, buf: Any, start: int, stop: int, end: int) -> Iterator[Match]:
        needle, n = self.needle, len(self.needle)
        at = buf.find(needle, start, end)
        while 0 <= at < stop:
            yield at, n, self.name
            at = buf.find(needle, at + 1, end)


SHORT = 8
"""Exact needles shorter than this search faster as a literal regex: ``_sre`` skips to the first byte
with memchr (SIMD), while ``bytes.find`` pays its skip-table set-up and short skips; longer needles
skip further with ``find`` (1 GiB of random bytes, CPU s: 4 bytes find 0.58 / re 0.33; 12 bytes
0.28 / 0.33; 24 bytes 0.15 / 0.33 -- benchmarks/bench_scan.py measures the whole command)."""


def exact_matcher(needle: bytes, name: str) -> Matcher:
    """The faster of ``find`` and a literal regex for these bytes (see :data:`SHORT`)."""
    if 0 < len(needle) < SHORT:
        return RegexMatcher(re.escape(needle), len(needle), name)
    return BytesMatcher(needle, name)


class RegexMatcher(Matcher):
    """A compiled bytes regex of fixed length (wildcards, case-folded strings)."""

    def __init__(self, regex: bytes, length: int, name: str, flags: int = 0) -> None:
        self.regex = re.compile(regex, re.DOTALL | flags)
        self.name = name
        self.max_length = length

    def find(self, buf: Any, start: int, stop: int, end: int) -> Iterator[Match]:
        search = self.regex.search
        m = search(buf, start, end)
        while m is not None and m.start() < stop:
            yield m.start(), m.end() - m.start(), self.name
            m = search(buf, m.start() + 1, end)


class FoldedMatcher(Matcher):
    """An ASCII-case-insensitive byte string: ``find`` in the buffer slice after ``bytes.lower()``
    (C speed; a regex with ``re.IGNORECASE`` has no literal prefix to skip with and runs ~20x slower).
    ``lower()`` folds only ASCII letters, so a UTF-16LE needle folds its letters and keeps its zeros.
    The lowered copy of a slice is shared by the folded matchers of one scan step."""

    _cache: tuple[Any, int, int, bytes] | None = None

    def __init__(self, needle: bytes, name: str) -> None:
        self.needle = needle.lower()
        self.name = name
        self.max_length = len(needle)

    @classmethod
    def _lowered(cls, buf: Any, start: int, end: int) -> bytes:
        c = cls._cache
        if c is not None and c[0] is buf and c[1] == start and c[2] == end:
            return c[3]
        low = bytes(buf[start:end]).lower()
        FoldedMatcher._cache = (buf, start, end, low)  # holds buf: its id cannot be reused meanwhile
        return low

    @classmethod
    def release(cls) -> None:
        """Drop the shared lowered copy (the scan is over)."""
        FoldedMatcher._cache = None

    def find(self, buf: Any, start: int, stop: int, end: int) -> Iterator[Match]:
        low = self._lowered(buf, start, end)
        needle, n = self.needle, len(self.needle)
        at = low.find(needle)
        while 0 <= at < stop - start:
            yield start + at, n, self.name
            at = low.find(needle, at + 1)


_TOKEN = re.compile(r"^[0-9a-fA-F?]{2}$")


def parse_pattern(text: str) -> list[int | None | tuple[int, int]]:
    """``"48 8B ?? ?? 89"`` (spaces optional: ``"488B????89"``) as a list of byte values; ``None``
    is a whole-byte wildcard, ``(value, mask)`` a nibble wildcard (``4?`` -> ``(0x40, 0xF0)``)."""
    compact = "".join(text.split())
    if not compact or len(compact) % 2:
        raise ArgumentError(f"scan: pattern {text!r}: give whole bytes as two hex digits or ?? "
                            "(e.g. '48 8B ?? ?? 89')")
    out: list[int | None | tuple[int, int]] = []
    for i in range(0, len(compact), 2):
        tok = compact[i:i + 2]
        if not _TOKEN.match(tok):
            raise ArgumentError(f"scan: pattern {text!r}: {tok!r} at byte {i // 2} is not hex or a ?? wildcard")
        if tok == "??":
            out.append(None)
        elif "?" in tok:
            out.append((int(tok[1], 16), 0x0F) if tok[0] == "?" else (int(tok[0], 16) << 4, 0xF0))
        else:
            out.append(int(tok, 16))
    if all(b is None for b in out):
        raise ArgumentError(f"scan: pattern {text!r} is only wildcards; it would match everywhere")
    return out


def pattern_matcher(text: str, name: str | None = None) -> Matcher:
    """A hex pattern with ``??`` / nibble wildcards; exact patterns get the ``find`` fast path."""
    parts = parse_pattern(text)
    label = name or " ".join(text.split()).upper()
    if all(isinstance(b, int) for b in parts):
        return exact_matcher(bytes(parts), label)  # type: ignore[arg-type]
    rx = b""
    for b in parts:
        if b is None:
            rx += b"."
        elif isinstance(b, int):
            rx += re.escape(bytes([b]))
        else:
            value, mask = b
            rx += b"[" + b"".join(re.escape(bytes([v])) for v in range(256) if v & mask == value) + b"]"
    return RegexMatcher(rx, len(parts), label)


def string_matchers(text: str, *, ascii: bool = True, utf16: bool = True, ignore_case: bool = False) -> list[Matcher]:
    """``text`` as UTF-8 (plain ASCII for ASCII text) and as UTF-16LE. ``ignore_case`` folds ASCII
    letters (``bytes.lower``); other letters match as given."""
    if not text:
        raise ArgumentError("scan: --string needs a non-empty text")
    out: list[Matcher] = []
    for wanted, enc, label in ((ascii, "utf-8", "ascii" if text.isascii() else "utf-8"),
                               (utf16, "utf-16-le", "utf-16le")):
        if not wanted:
            continue
        raw = text.encode(enc)
        name = f"{label}:{text}"
        if ignore_case and any(c.isalpha() for c in text):
            out.append(FoldedMatcher(raw, name))
        else:
            out.append(exact_matcher(raw, name))
    return out


class YaraMatcher(Matcher):
    """Compiled YARA rules: each matching string instance is one hit named ``rule:$string``.

    YARA sees one chunk at a time (chunk plus overlap), so a rule's condition is judged per chunk;
    string instances longer than the overlap can be cut at a chunk boundary."""

    def __init__(self, rules: Any, name: str, max_length: int) -> None:
        self.rules = rules
        self.name = name
        self.max_length = max_length

    def find(self, buf: Any, start: int, stop: int, end: int) -> Iterator[Match]:
        data = bytes(buf[start:end])
        found: list[Match] = []
        for m in self.rules.match(data=data):
            for s in m.strings:
                for inst in s.instances:
                    if inst.offset < stop - start:
                        found.append((start + inst.offset, inst.matched_length, f"{m.rule}:{s.identifier}"))
        found.sort()
        yield from found


def yara_matcher(path: str, max_length: int = 4096) -> YaraMatcher:
    """Rules from a file (clear error naming the file and line when they do not compile)."""
    try:
        import yara  # optional extra `yara` (yara-python): the YARA engine itself
    except ImportError as e:
        raise ArgumentError("scan --yara needs yara-python: pip install 'pymemflow[yara]'") from e
    try:
        rules = yara.compile(filepath=path)
    except yara.SyntaxError as e:
        raise ArgumentError(f"scan --yara {path}: {e}") from e
    except yara.Error as e:
        raise ArgumentError(f"scan --yara {path}: {e}") from e
    return YaraMatcher(rules, path, max_length)
