"""First-use set-up of the testbed: host tools from apt, Debian kernels and busybox fetched into a private
apt state under the testbed's cache folder. Idempotent and locked (several pytest sessions may start at once).

Only Debian's package registry is used. Installing host packages needs root (apt-get); everything else
(apt-get update/download with private lists, dpkg-deb) runs as any user. When a step cannot be done here,
:class:`ProvisionError` says exactly which command to run.
"""

from __future__ import annotations

import ctypes.util
import fcntl
import fnmatch
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HOME = Path(os.environ.get("PYMEMFLOW_TESTBED_HOME") or Path.home() / ".cache" / "pymemflow-own-testbed")
"""Everything the testbed makes lives here (kernels, busybox, initramfs builds, running guests)."""

KERNEL_METAPACKAGES = {"x86_64": ("amd64", "linux-image-amd64"), "i386": ("i386", "linux-image-686-pae"),
                       "i386-nopae": ("i386", "linux-image-686")}
"""Kernel flavour -> (Debian architecture, metapackage naming the current image package)."""
MODULES = ("dummy.ko", "crc-itu-t.ko")
"""Two tiny dependency-free modules taken from each kernel package, loaded by the guest (module ground truth)."""
SETUP_COMMAND = "python tests/testbed setup all"


class ProvisionError(RuntimeError):
    """The testbed cannot be prepared on this machine; the message names the command that fixes it."""


def _run(cmd: list[str], what: str, **kw: object) -> subprocess.CompletedProcess[str]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]
    except FileNotFoundError as e:
        raise ProvisionError(f"{what}: {cmd[0]} not found (a Debian machine with apt is needed)") from e
    if r.returncode != 0:
        raise ProvisionError(f"{what} failed ({' '.join(cmd)}):\n{(r.stderr or r.stdout)[-2000:]}")
    return r


@contextmanager
def locked() -> Iterator[None]:
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------- host packages
def missing_host_packages(arches: tuple[str, ...] = ("x86_64", "i386")) -> list[str]:
    """Debian packages the host lacks: QEMU, a C compiler with static libc (and its 32-bit part for i386)."""
    need = []
    if not shutil.which("qemu-system-x86_64") or ("i386" in arches and not shutil.which("qemu-system-i386")):
        need.append("qemu-system-x86")
    if not shutil.which("gcc"):
        need.append("gcc")
    if not list(Path("/usr/lib").glob("*-linux-gnu/libc.a")):
        need.append("libc6-dev")
    if "i386" in arches and not Path("/usr/lib32/libc.a").exists():
        need.append("gcc-multilib")  # gcc -m32 -static: the guest programs of the i386 guests
    if not shutil.which("dpkg-deb") or not shutil.which("apt-get"):
        need += ["dpkg", "apt"]
    return need


def missing_test_tools() -> list[str]:
    """Debian packages other tests use: clang + lld + llvm (PE/PDB files made and checked here),
    libsnappy1v5 (volatility3 reads AVML with it), liblzo2-2 (LZO streams to check our decoder), fuse3 (libfuse3 + fusermount3 for `pymemflow mount`),
    gdb, file and binutils (the mount's and gdbserver's real clients)."""
    need = [pkg for tool, pkg in (("clang", "clang"), ("lld-link", "lld"), ("llvm-pdbutil", "llvm"),
                                  # tests/fs mount for real and read with file/strings; tests/gdb drive gdb
                                  ("fusermount3", "fuse3"), ("gdb", "gdb"), ("file", "file"), ("strings", "binutils"))
            if not shutil.which(tool)]
    if not ctypes.util.find_library("snappy"):
        need.append("libsnappy1v5")
    if not ctypes.util.find_library("lzo2"):
        need.append("liblzo2-2")  # reference LZO1X streams for tests/snapshots/test_lzo.py (through ctypes)
    return need


def install_test_tools() -> None:
    """At the start of a root session: the suite's other system packages, so none of its tests skips."""
    _apt_install(missing_test_tools(), missing_test_tools)


def install_host_packages(arches: tuple[str, ...] = ("x86_64", "i386")) -> None:
    _apt_install(missing_host_packages(arches), lambda: missing_host_packages(arches))


def _apt_install(need: list[str], still_missing: Callable[[], list[str]]) -> None:
    if not need:
        return
    cmd = "apt-get update && apt-get install -y --no-install-recommends " + " ".join(need)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ProvisionError(f"the Debian packages {', '.join(need)} are missing; run as root: {cmd}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"], "apt-get update", env=env)
    _run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends", *need],
         f"apt-get install {' '.join(need)}", env=env)
    still = still_missing()
    if still:
        raise ProvisionError(f"still missing after apt-get install: {', '.join(still)}")


# ---------------------------------------------------------------- private apt state
def _apt_opts(deb_arch: str) -> list[str]:
    """A private apt state per architecture: the machine's own apt lists and caches stay untouched."""
    st = HOME / f"apt-{deb_arch}"
    (st / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (st / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    return [f"-oAPT::Architecture={deb_arch}", f"-oAPT::Architectures={deb_arch}",
            f"-oDir::State::Lists={st}/lists", f"-oDir::Cache={st}/cache", "-oDebug::NoLocking=1"]


def _has_index(lists: Path) -> bool:
    return any("_Packages" in p.name for p in lists.glob("*"))  # apt may keep them compressed (.lz4 ...)


def _apt_update(deb_arch: str) -> None:
    lists = HOME / f"apt-{deb_arch}" / "lists"
    if _has_index(lists):
        return
    r = subprocess.run(["apt-get", *_apt_opts(deb_arch), "update", "-qq"], capture_output=True, text=True,
                       timeout=900)
    if not _has_index(lists):
        raise ProvisionError(f"apt-get update for {deb_arch} (private lists in {lists}) gave no package "
                             f"index; check /etc/apt/sources.list and the network:\n{r.stderr[-2000:]}")


def _download(deb_arch: str, package: str, dest: Path) -> Path:
    _apt_update(deb_arch)
    _run(["apt-get", *_apt_opts(deb_arch), "download", package], f"apt-get download {package} ({deb_arch})",
         cwd=dest)
    debs = sorted(dest.glob("*.deb"))
    if not debs:
        raise ProvisionError(f"apt-get download {package} ({deb_arch}) wrote no .deb into {dest}")
    return debs[0]


def _image_package(deb_arch: str, meta: str) -> str:
    """The versioned image package a kernel metapackage depends on (itself if it is already one)."""
    _apt_update(deb_arch)
    out = _run(["apt-cache", *_apt_opts(deb_arch), "depends", meta], f"apt-cache depends {meta}").stdout
    for line in out.splitlines():
        dep = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and dep.startswith("linux-image-") and dep[12:13].isdigit():
            return dep
    return meta


def _extract(deb: Path, dest: Path, want: tuple[str, ...]) -> list[Path]:
    """Regular files of a .deb's data whose path matches one of the ``want`` patterns (flat into ``dest``)."""
    p = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    got = []
    assert p.stdout is not None
    with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
        for m in tf:
            name = m.name.rsplit("/", 1)[-1]
            if m.isfile() and any(fnmatch.fnmatch(m.name, w) for w in want):
                f = tf.extractfile(m)
                assert f is not None
                (dest / name).write_bytes(f.read())
                got.append(dest / name)
    if p.wait() != 0:
        raise ProvisionError(f"dpkg-deb --fsys-tarfile {deb} failed")
    return got


def kernel_dir(flavour_or_package: str) -> Path:
    """Folder with ``vmlinuz-*``, ``System.map-*``, ``config-*`` and the test modules of one kernel.

    ``flavour_or_package``: x86_64, i386 (686-pae), i386-nopae (686), or any Debian kernel image package or
    metapackage (``linux-image-cloud-amd64``, ``linux-image-6.1.0-28-rt-amd64`` ...: the extra kernels).
    """
    deb_arch, meta = KERNEL_METAPACKAGES.get(flavour_or_package) or (
        "i386" if flavour_or_package.endswith(("-686", "-686-pae")) else "amd64", flavour_or_package)
    d = HOME / "kernels" / flavour_or_package
    if list(d.glob("vmlinuz-*")):
        return d
    with locked():
        if list(d.glob("vmlinuz-*")):
            return d
        pkg = _image_package(deb_arch, meta)
        with tempfile.TemporaryDirectory(dir=HOME) as tmp:
            deb = _download(deb_arch, pkg, Path(tmp))
            part = Path(tmp) / "k"
            part.mkdir()
            got = _extract(deb, part, ("*/boot/vmlinuz-*", "*/boot/System.map-*", "*/boot/config-*",
                                              *(f"*/{m}" for m in MODULES)))
            if not any(g.name.startswith("vmlinuz-") for g in got):
                raise ProvisionError(f"{pkg} ({deb}) holds no /boot/vmlinuz-*")
            (part / "package").write_text(pkg + "\n")
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(d, ignore_errors=True)
            part.rename(d)
    return d


def vmlinuz(flavour_or_package: str) -> Path:
    return sorted(kernel_dir(flavour_or_package).glob("vmlinuz-*"))[-1]


def busybox(arch: str) -> Path:
    """Debian's busybox-static for the guest architecture (x86_64 or i386), from the private apt state."""
    deb_arch = "amd64" if arch == "x86_64" else "i386"
    out = HOME / "busybox" / deb_arch / "busybox"
    if out.exists():
        return out
    with locked():
        if out.exists():
            return out
        with tempfile.TemporaryDirectory(dir=HOME) as tmp:
            deb = _download(deb_arch, "busybox-static", Path(tmp))
            got = _extract(deb, Path(tmp), ("*bin/busybox",))
            if not got:
                raise ProvisionError(f"{deb} holds no busybox binary")
            out.parent.mkdir(parents=True, exist_ok=True)
            got[0].chmod(0o755)
            shutil.move(str(got[0]), out)
    return out


def ensure(arch: str = "x86_64") -> None:
    """Everything a guest of ``arch`` (x86_64 or i386) needs, installed or fetched on first use."""
    install_host_packages(("x86_64",) if arch == "x86_64" else ("x86_64", "i386"))
    busybox(arch)
    for flavour in (("x86_64",) if arch == "x86_64" else ("i386", "i386-nopae")):
        kernel_dir(flavour)


def setup(what: str = "all") -> list[str]:
    """``python tests/testbed setup [x86_64|i386|all]``: prepare ahead of time; returns what is ready."""
    arches = ("x86_64", "i386") if what == "all" else (what,)
    install_host_packages(arches)
    install_test_tools()
    for a in arches:
        ensure(a)
    return [str(vmlinuz(f)) for f in ("x86_64", "i386", "i386-nopae") if f.split("-")[0] in arches]
