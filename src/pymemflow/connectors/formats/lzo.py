"""LZO1X decompression (what makedumpfile's ``-l`` and lzop write), bounded, in pure Python.

Why our own: the binding of liblzo2 (python-lzo) has no wheels and needs a compiler and liblzo2-dev,
so ``pip install 'pymemflow[compress]'`` failed on a fresh machine. The decoder is small: a stream of
instructions, each a copy of literals from the input or of an earlier run of the output. One
decoder reads every LZO1X compression level (1X-1, 1X-999 share the stream format).

The format (Linux ``Documentation/staging/lzo.rst``): the first byte may start with a literal run; after
that, an instruction byte ``t`` and the *state* (how many literals the previous instruction copied:
0, 1..3, or 4 for "4 or more") say what follows:

=========  ================================================================================
``t``      meaning
=========  ================================================================================
0..15      state 0: a run of ``3 + L`` literals (L == 0: 15 + 255 per zero byte + next byte);
           state 1..3: copy 2 bytes from distance ``(H << 2) + D + 1``;
           state 4: copy 3 bytes from distance ``(H << 2) + D + 2049``
16..31     copy ``2 + L`` bytes (L in 3 bits, extended as above) from ``16384 + (H << 14) + D``
           (D from the next LE16 >> 2); distance 16384 ends the stream
32..63     copy ``2 + L`` bytes (L in 5 bits, extended) from ``D + 1`` (D from LE16 >> 2)
64..255    copy ``3 + L`` / ``5 + L`` bytes from ``(H << 3) + D + 1`` (one more byte H)
=========  ================================================================================

Every match carries ``S`` (0..3): that many literals follow it. The decoder never writes past ``size``
and never reads past the input: corrupt or hostile data is an :class:`LzoError`, never a hang.
"""

from __future__ import annotations


class LzoError(ValueError):
    """The data is not a valid LZO1X stream for the expected size (says where and why)."""


def _extend(data: bytes, ip: int, base: int) -> tuple[int, int]:
    """A zero length field: each following zero byte adds 255, the first non-zero byte ends it."""
    n = len(data)
    start = ip
    while ip < n and data[ip] == 0:
        ip += 1
    if ip >= n:
        raise LzoError(f"input ends inside a length at input offset {start}")
    return base + 255 * (ip - start) + data[ip], ip + 1


def decompress(data: bytes, size: int) -> bytes:
    """Decode the LZO1X stream ``data``, which must produce exactly ``size`` bytes and end with the
    end-of-stream marker."""
    src = bytes(data)
    n = len(src)
    out = bytearray()
    ip = 0
    state = 0
    if n == 0:
        raise LzoError("empty input")

    def literals(count: int) -> None:
        nonlocal ip
        if ip + count > n:
            raise LzoError(f"literal run of {count} bytes at input offset {ip} passes the end of the input ({n})")
        if len(out) + count > size:
            raise LzoError(f"literal run of {count} bytes at output offset {len(out)} passes the expected size {size}")
        out.extend(src[ip:ip + count])
        ip += count

    def match(dist: int, length: int) -> None:
        op = len(out)
        if dist > op:
            raise LzoError(f"match at output offset {op} looks back {dist} bytes, before the start")
        if op + length > size:
            raise LzoError(f"match of {length} bytes at output offset {op} passes the expected size {size}")
        start = op - dist
        if dist >= length:
            out.extend(out[start:start + length])
        else:  # overlapping: the run repeats the last `dist` bytes
            chunk = out[start:op]
            reps, rest = divmod(length, dist)
            out.extend(chunk * reps + chunk[:rest])

    def le16() -> int:
        nonlocal ip
        if ip + 2 > n:
            raise LzoError(f"input ends inside a match distance at input offset {ip}")
        v = src[ip] | (src[ip + 1] << 8)
        ip += 2
        return v

    def byte() -> int:
        nonlocal ip
        if ip >= n:
            raise LzoError(f"input ends inside a match at input offset {ip}")
        ip += 1
        return src[ip - 1]

    if src[0] > 17:  # the stream starts with a literal run of t - 17 bytes
        t = src[0] - 17
        ip = 1
        literals(t)
        state = t if t < 4 else 4
    while True:
        if ip >= n:
            raise LzoError(f"input ends at offset {n} without the end-of-stream marker")
        t = src[ip]
        ip += 1
        if t < 16:
            if state == 0:
                if t:
                    length = 3 + t
                else:
                    length, ip = _extend(src, ip, 15 + 3)
                literals(length)
                state = 4
                continue
            h = byte()
            if state < 4:
                match((h << 2) + (t >> 2) + 1, 2)
            else:
                match((h << 2) + (t >> 2) + 2049, 3)
            s = t & 3
        elif t < 32:
            length = t & 7
            if not length:
                length, ip = _extend(src, ip, 7)
            v = le16()
            dist = 16384 + ((t & 8) << 11) + (v >> 2)
            if dist == 16384:
                if length != 1:
                    raise LzoError(f"bad end-of-stream marker at input offset {ip - 3}")
                break
            match(dist, length + 2)
            s = v & 3
        elif t < 64:
            length = t & 31
            if not length:
                length, ip = _extend(src, ip, 31)
            v = le16()
            match((v >> 2) + 1, length + 2)
            s = v & 3
        else:
            h = byte()
            dist = (h << 3) + ((t >> 2) & 7) + 1
            length = 3 + ((t >> 5) & 1) if t < 128 else 5 + ((t >> 5) & 3)
            match(dist, length)
            s = t & 3
        state = s
        if s:
            literals(s)
    if len(out) != size:
        raise LzoError(f"stream decodes to {len(out)} bytes, expected {size}")
    if ip != n:
        raise LzoError(f"{n - ip} bytes after the end-of-stream marker at input offset {ip}")
    return bytes(out)
