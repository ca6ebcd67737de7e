"""The guest's initramfs: Debian's busybox-static, our init, the marker and worker programs (gcc -static) and
two modules of the booted kernel, packed as a gzip'd cpio "newc" archive written here in Python (device nodes
included, so no root is needed). Builds are cached under the testbed folder, keyed by a hash of their inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

from testbed import provision

GUEST = Path(__file__).resolve().parent / "guest"
PROGRAMS = {"marker": "marker.c", "pmfwork": "worker.c"}
"""Guest /bin name -> C source in guest/."""


class CpioWriter:
    """An archive in the kernel's initramfs format (cpio newc, see the kernel's early-userspace docs)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = [self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        self.ino += 1
        self.out += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + name.encode() + b"\0"
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def applets(busybox: Path) -> list[str]:
    """Applet names of a busybox runnable on this host (the amd64 one: same Debian build as the i386 one)."""
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    return sorted(a for a in out.split() if a and a != "busybox")


def compile_program(source: Path, arch: str, out: Path) -> None:
    cmd = ["gcc", *(["-m32"] if arch == "i386" else []), "-static", "-O2", "-pthread", "-Wall", "-o", str(out),
           str(source)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise provision.ProvisionError(f"building the guest program {source.name} failed ({' '.join(cmd)}):\n"
                                       f"{r.stderr[-2000:]}")


def build(flavour: str, arch: str) -> Path:
    """The initramfs for a kernel flavour (x86_64, i386, i386-nopae or a package) of guest ``arch``."""
    bb = provision.busybox(arch)
    host_bb = provision.busybox("x86_64")
    kdir = provision.kernel_dir(flavour)
    modules = sorted(p for p in kdir.glob("*.ko"))
    h = hashlib.sha256()
    for p in [bb, *sorted(GUEST.iterdir()), *modules]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(arch.encode())
    out = provision.HOME / "build" / f"initramfs-{flavour}-{h.hexdigest()[:16]}.cpio.gz"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cpio = CpioWriter()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "lib", "lib/pmf"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", bb.read_bytes())
    for a in applets(host_bb):
        cpio.symlink(f"bin/{a}", "busybox")
    cpio.file("init", (GUEST / "init").read_bytes())
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        for name, src in PROGRAMS.items():
            compile_program(GUEST / src, arch, Path(tmp) / name)
            cpio.file(f"bin/{name}", (Path(tmp) / name).read_bytes())
    for m in modules:
        cpio.file(f"lib/pmf/{m.name}", m.read_bytes(), 0o644)
    part = out.with_name(out.name + f".{os.getpid()}")
    part.write_bytes(gzip.compress(cpio.finish(), 6, mtime=0))
    part.replace(out)
    return out
