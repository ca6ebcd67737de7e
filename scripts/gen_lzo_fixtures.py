"""Write tests/data/lzo/: sample pages and their LZO1X streams made by the reference implementation.

Needs Debian's liblzo2-2 (``lzo1x_1_compress`` / ``lzo1x_999_compress`` through ctypes) and ``lzop``
(``apt-get install liblzo2-2 lzop``). The samples cover every instruction of the format: a zero page,
an x86-64 page table, English-like text, random bytes, and a 64 KiB block whose repeats lie 20..60 KiB
back (the far matches only blocks over 16 KiB use). Run from the project root:

    python scripts/gen_lzo_fixtures.py
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import struct
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "lzo"
WORDS = ("memory page table kernel process module export physical virtual address read batch "
         "connector layer translate the of and to in a is that for it as with was on").split()


def samples() -> dict[str, bytes]:
    rng = random.Random(13)
    table = b"".join(struct.pack("<Q", (0x1000 * rng.randrange(1, 1 << 20)) | 0x67 if rng.random() < 0.3 else 0)
                     for _ in range(512))
    text = " ".join(rng.choice(WORDS) for _ in range(1200)).encode()[:4096]
    noise = rng.randbytes(4096)
    parts = [rng.randbytes(20 << 10)]
    while sum(map(len, parts)) < 64 << 10:
        back = rng.randrange(20 << 10, min(60 << 10, sum(map(len, parts))) + 1)
        blob = b"".join(parts)
        parts.append(blob[len(blob) - back:len(blob) - back + rng.randrange(3, 300)])
        parts.append(rng.randbytes(rng.randrange(0, 40)))
    mixed = b"".join(parts)[:64 << 10]
    return {"zero": bytes(4096), "pagetable": table, "text": text, "random": noise, "far": mixed}


def lzo2_compress(lib: ctypes.CDLL, data: bytes, level: int) -> bytes:
    dst = ctypes.create_string_buffer(len(data) + len(data) // 16 + 64 + 3)
    dst_len = ctypes.c_size_t(len(dst))
    fn = lib.lzo1x_999_compress if level == 999 else lib.lzo1x_1_compress
    work = ctypes.create_string_buffer(14 * 16384 * 8 if level == 999 else 16384 * 8)
    rc = fn(data, ctypes.c_size_t(len(data)), dst, ctypes.byref(dst_len), work)
    if rc != 0:
        raise RuntimeError(f"lzo1x_{level}_compress returned {rc}")
    return dst.raw[:dst_len.value]


def main() -> None:
    name = ctypes.util.find_library("lzo2")
    if name is None:
        raise SystemExit("liblzo2 not found: apt-get install liblzo2-2")
    lib = ctypes.CDLL(name)
    OUT.mkdir(parents=True, exist_ok=True)
    for key, data in samples().items():
        (OUT / f"{key}.bin").write_bytes(data)
        for level in (1, 999):
            (OUT / f"{key}.lzo1x_{level}").write_bytes(lzo2_compress(lib, data, level))
    for level in ("-1", "-9"):
        subprocess.run(["lzop", level, "-f", "-o", str(OUT / f"far{level}.lzop"), str(OUT / "far.bin")], check=True)
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")


if __name__ == "__main__":
    main()
