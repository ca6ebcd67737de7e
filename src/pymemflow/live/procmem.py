"""Reading and writing another process's memory: ``process_vm_readv``/``writev`` through ctypes.

Why this shape: one syscall moves up to ``IOV_MAX`` pieces, so a batch of N pieces costs N/1024
syscalls; the kernel copies fastest into page-aligned destinations (a buffer offset by 16 bytes, what
``malloc`` gives for big blocks, halved the copy speed on the testbed host), so large reads go to
page-aligned buffers (:func:`aligned_empty`). ``/proc/PID/mem`` is the fallback where the syscall is
missing (ENOSYS, seccomp) -- it is slower and needs the same ptrace permission.

Partial transfers: the kernel stops at the first page it cannot pin and returns the bytes copied so
far. We then mark one page failed and go on after it, so every unreadable page is reported exactly.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PymemflowError, ReadFailure
from ..mem.view import SMALL_BATCH, BatchResult, I64Array, U8Array, U64Array, as_pieces

IOV_MAX = 1024
PAGE = 4096
_ALIGN_COPY_MIN = 64 * 1024
"""Destinations at least this big that are not cache-line aligned go through an aligned bounce buffer."""



class PtracePermissionError(PymemflowError):
    """Reading another process's memory was refused by the kernel (ptrace access mode check)."""


class ProcessGoneError(PymemflowError):
    """The target process exited."""


def ptrace_advice(pid: int, err: int) -> str:
    scope = ""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = f.read().strip()
    except OSError:
        pass
    hint = (
        f"cannot read memory of process {pid}: {os.strerror(err)}. Reading another process's memory needs "
        "ptrace access: run as the same user as the target (and not across a setuid boundary), or as root "
        "with CAP_SYS_PTRACE (e.g. `sudo`, or `setcap cap_sys_ptrace+ep` on the Python binary)"
    )
    if scope and scope != "0":
        hint += f"; /proc/sys/kernel/yama/ptrace_scope is {scope} (set it to 0, or use CAP_SYS_PTRACE)"
    return hint


def aligned_empty(n: int, align: int = PAGE) -> U8Array:
    """A uint8 array of ``n`` bytes whose data starts on an ``align`` boundary (a view of a slightly
    bigger array, so NumPy still owns and frees the memory)."""
    raw = np.empty(n + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off : off + n]


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _libc_fn(name: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_ssize_t
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    return fn


_readv = _libc_fn("process_vm_readv")
_writev = _libc_fn("process_vm_writev")


@dataclass
class IoPlan:
    """Pieces of host memory to move: ``remote[i]``, ``length[i]`` bytes, to/from ``local[i]`` (an
    absolute address in our process) for request piece ``index[i]``."""

    remote: U64Array
    local: U64Array
    length: U64Array
    index: I64Array


class ProcessMemoryIO:
    """Batched raw access to the address space of process ``pid`` (host virtual addresses).

    ``use`` is ``"auto"`` (process_vm_readv, falling back to /proc/PID/mem when the syscall is
    unavailable), ``"readv"`` or ``"procmem"``.
    """

    def __init__(self, pid: int, use: str = "auto", writable: bool = False) -> None:
        self.pid = pid
        self.writable = writable
        self.method = "procmem" if use == "procmem" or _readv is None else "readv"
        self._memfd: int | None = None
        self._allow_fallback = use == "auto"

    # -- setup / teardown -----------------------------------------------------------------------
    def close(self) -> None:
        if self._memfd is not None:
            os.close(self._memfd)
            self._memfd = None

    def _mem_fd(self) -> int:
        if self._memfd is None:
            try:
                self._memfd = os.open(f"/proc/{self.pid}/mem", os.O_RDWR if self.writable else os.O_RDONLY)
            except PermissionError as e:
                raise PtracePermissionError(ptrace_advice(self.pid, e.errno or errno.EACCES)) from None
            except FileNotFoundError:
                raise ProcessGoneError(f"process {self.pid} does not exist (any more)") from None
        return self._memfd

    def check_access(self, addr: int) -> None:
        """Raise a clear error now (not a traceback later) when the kernel refuses access."""
        buf = aligned_empty(1)
        fails = self.transfer(IoPlan(np.array([addr], np.uint64), np.array([buf.ctypes.data], np.uint64),
                                     np.array([1], np.uint64), np.array([0], np.int64)), write=False)
        if fails:
            raise PymemflowError(f"process {self.pid}: address {addr:#x} is not readable: {fails[0].reason}")

    # -- the batched primitive ------------------------------------------------------------------
    def transfer(self, plan: IoPlan, write: bool = False) -> list[ReadFailure]:
        """Move every piece of ``plan``; returns failures (failed local bytes are zeroed on reads)."""
        n = plan.remote.shape[0]
        if n == 0:
            return []
        if self.method == "readv":
            try:
                return self._transfer_vm(plan, write)
            except OSError as e:
                if e.errno != errno.ENOSYS or not self._allow_fallback:
                    raise
                self.method = "procmem"
            except PtracePermissionError:
                # seccomp profiles (e.g. containers) may refuse the syscall but allow /proc/PID/mem
                if not self._allow_fallback:
                    raise
                self._allow_fallback = False
                fails = self._transfer_procmem(plan, write)
                self.method = "procmem"
                return fails
        return self._transfer_procmem(plan, write)

    def _raise_for(self, err: int) -> None:
        if err in (errno.EPERM, errno.EACCES):
            raise PtracePermissionError(ptrace_advice(self.pid, err))
        if err == errno.ESRCH:
            raise ProcessGoneError(f"process {self.pid} exited")
        raise OSError(err, os.strerror(err))

    def _transfer_vm(self, plan: IoPlan, write: bool) -> list[ReadFailure]:
        fn = _writev if write else _readv
        assert fn is not None
        # iovec arrays: (base, len) pairs as uint64, laid out exactly like struct iovec on LP64
        n = plan.remote.shape[0]
        liov = np.empty((n, 2), dtype=np.uint64)
        riov = np.empty((n, 2), dtype=np.uint64)
        liov[:, 0] = plan.local
        liov[:, 1] = plan.length
        riov[:, 0] = plan.remote
        riov[:, 1] = plan.length
        lptr = liov.ctypes.data
        rptr = riov.ctypes.data
        failures: list[ReadFailure] = []
        pid = self.pid
        i = 0
        while i < n:
            m = min(IOV_MAX, n - i)
            want = int(plan.length[i : i + m].sum())
            got = fn(pid, lptr + 16 * i, m, rptr + 16 * i, m, 0)
            if got == want:
                i += m
                continue
            if got < 0:
                err = ctypes.get_errno()
                if err != errno.EFAULT:
                    if err == errno.ENOSYS:
                        raise OSError(err, os.strerror(err))
                    self._raise_for(err)
                got = 0
            # find the piece where the transfer stopped and how far into it
            cum = np.cumsum(plan.length[i : i + m])
            k = int(np.searchsorted(cum, got, side="right"))
            done_in_k = got - (int(cum[k - 1]) if k else 0)
            j = i + k
            failures.extend(self._finish_piece(plan, j, done_in_k, write))
            i = j + 1
        return failures

    def _finish_piece(self, plan: IoPlan, j: int, done: int, write: bool) -> list[ReadFailure]:
        """Piece ``j`` failed after ``done`` bytes: go on page by page, reporting failing runs."""
        remote = int(plan.remote[j])
        local = int(plan.local[j])
        total = int(plan.length[j])
        idx = int(plan.index[j])
        failures: list[ReadFailure] = []
        pos = done
        bad_start = -1
        while pos < total:
            step = min(PAGE - ((remote + pos) % PAGE), total - pos)
            ok = self._one(remote + pos, local + pos, step, write)
            if ok:
                if bad_start >= 0:
                    failures.append(ReadFailure(idx, remote + bad_start, pos - bad_start, "memory not readable (unmapped or no access)"))
                    bad_start = -1
            else:
                if not write:
                    ctypes.memset(local + pos, 0, step)
                if bad_start < 0:
                    bad_start = pos
            pos += step
        if bad_start >= 0:
            failures.append(ReadFailure(idx, remote + bad_start, total - bad_start,
                                        "memory not " + ("writable" if write else "readable") + " (unmapped or no access)"))
        return failures

    def _one(self, remote: int, local: int, n: int, write: bool) -> bool:
        fn = _writev if write else _readv
        if self.method == "readv" and fn is not None:
            li = _Iovec(local, n)
            ri = _Iovec(remote, n)
            got = fn(self.pid, ctypes.addressof(li), 1, ctypes.addressof(ri), 1, 0)
            if got == n:
                return True
            if got < 0:
                err = ctypes.get_errno()
                if err != errno.EFAULT:
                    self._raise_for(err)
            return False
        fd = self._mem_fd()
        buf = (ctypes.c_char * n).from_address(local)
        try:
            if write:
                return os.pwrite(fd, bytes(buf), remote) == n
            got_b = os.preadv(fd, [buf], remote)
            return got_b == n
        except OSError as e:
            if e.errno in (errno.EIO, errno.EFAULT):
                return False
            self._raise_for(e.errno or errno.EIO)
            return False

    def _transfer_procmem(self, plan: IoPlan, write: bool) -> list[ReadFailure]:
        fd = self._mem_fd()
        failures: list[ReadFailure] = []
        for j in range(plan.remote.shape[0]):
            remote, local, n = int(plan.remote[j]), int(plan.local[j]), int(plan.length[j])
            buf = (ctypes.c_char * n).from_address(local)
            try:
                got = os.pwrite(fd, bytes(buf), remote) if write else os.preadv(fd, [buf], remote)
            except OSError as e:
                if e.errno not in (errno.EIO, errno.EFAULT):
                    self._raise_for(e.errno or errno.EIO)
                got = 0
            if got != n:
                failures.extend(self._finish_piece(plan, j, got, write))
        return failures


def plan_into(
    out: U8Array, remote: U64Array, lengths: U64Array, out_offsets: U64Array, index: I64Array
) -> IoPlan:
    """An :class:`IoPlan` that lands piece ``i`` at ``out[out_offsets[i]:]``."""
    base = np.uint64(out.ctypes.data)
    return IoPlan(remote, out_offsets + base, lengths, index)


def read_maybe_bounced(
    io: ProcessMemoryIO, out: U8Array, remote: U64Array, lengths: U64Array, out_offsets: U64Array,
    index: I64Array,
) -> list[ReadFailure]:
    """Read into ``out``; when ``out`` is big and not cache-line aligned, read into an aligned buffer
    and copy (the kernel copy into a misaligned buffer is ~2x slower than read + memcpy)."""
    if out.size >= _ALIGN_COPY_MIN and out.ctypes.data % 64:
        tmp = aligned_empty(out.size)
        fails = io.transfer(plan_into(tmp, remote, lengths, out_offsets, index))
        np.copyto(out, tmp)
        return fails
    return io.transfer(plan_into(out, remote, lengths, out_offsets, index))


class AlignedReadsMixin:
    """For :class:`~pymemflow.mem.view.MemoryView` subclasses that read with process_vm_readv:
    ``read_batch``/``read_gather`` return page-aligned arrays (the kernel copies ~2x faster into them),
    and ``read_batch_into`` fills a caller's buffer -- the way to reach raw syscall speed for big reads,
    since fresh memory costs a page fault per page (on the testbed host more than the copy itself)."""

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        raise NotImplementedError

    def _read_small(self, addrs: Any, lengths: Any) -> BatchResult | None:
        return None

    def read_batch(self, addrs: Any, lengths: Any) -> BatchResult:
        small = self._read_small(addrs, lengths)  # a few small pieces: no NumPy set-up (see SingleReadMixin)
        if small is not None:
            return small
        a, n = as_pieces(addrs, lengths)
        out = aligned_empty(int(n.sum()))
        failures = self._read_batch(a, n, out) if a.size else []
        offs = np.zeros(n.shape[0], dtype=np.int64)
        if n.shape[0] > 1:
            np.cumsum(n[:-1], out=offs[1:])
        return BatchResult(out, offs, n, failures)

    def read_gather(self, addrs: Any, size: int) -> tuple[U8Array, list[ReadFailure]]:
        a, n = as_pieces(addrs, size)
        out = aligned_empty(a.shape[0] * size)
        failures = self._read_batch(a, n, out) if a.size else []
        return out.reshape(a.shape[0], size), failures

    def read_batch_into(self, addrs: Any, lengths: Any, out: Any) -> list[ReadFailure]:
        """Read piece ``i`` into ``out`` at the exclusive cumulative sum of ``lengths`` (``out``: any
        writable buffer of at least ``sum(lengths)`` bytes). Returns the failures (failed bytes zeroed)."""
        a, n = as_pieces(addrs, lengths)
        arr = out if isinstance(out, np.ndarray) else np.frombuffer(memoryview(out).cast("B"), dtype=np.uint8)
        arr = arr.reshape(-1).view(np.uint8)
        total = int(n.sum())
        if arr.size < total:
            raise ValueError(f"buffer of {arr.size} bytes for {total} bytes of pieces")
        return self._read_batch(a, n, arr[:total]) if a.size else []


class SingleReadMixin:
    """A fast single small read: one prebuilt iovec pair and a scratch buffer, no NumPy (the syscall
    is most of the ~5 us; everything else here is kept under a microsecond). Only the thread that
    created the object uses the scratch buffer; other threads take the batched path."""

    _SCRATCH = 65536

    def _init_single(self, pid: int) -> None:
        import threading

        self._owner = threading.get_ident()
        self._scratch = ctypes.create_string_buffer(self._SCRATCH)
        self._scratch_addr = ctypes.addressof(self._scratch)
        self._liov = _Iovec(self._scratch_addr, 0)
        self._riov = _Iovec(0, 0)
        self._liov_p = ctypes.addressof(self._liov)
        self._riov_p = ctypes.addressof(self._riov)
        self._single_pid = pid
        self._small_riov = (_Iovec * SMALL_BATCH)()

    def _try_small(self, hosts: list[int], lengths: list[int]) -> bytearray | None:
        """The pieces at host addresses ``hosts`` back to back, read with one process_vm_readv (one remote
        iovec per piece, one local iovec over the scratch buffer); None when anything did not arrive (the
        caller then takes the batched path, which reports failures per piece)."""
        import threading

        total = sum(lengths)
        if (_readv is None or total > self._SCRATCH or len(hosts) > len(self._small_riov)
                or threading.get_ident() != self._owner):
            return None
        riov = self._small_riov
        j = 0
        for h, n in zip(hosts, lengths, strict=True):
            if n:
                riov[j].iov_base = h
                riov[j].iov_len = n
                j += 1
        if j == 0:
            return bytearray()
        self._liov.iov_len = total
        got = _readv(self._single_pid, self._liov_p, 1, ctypes.addressof(riov), j, 0)
        if got == total:
            return bytearray(ctypes.string_at(self._scratch_addr, total))
        return None

    def _try_single(self, host: int, n: int) -> bytes | None:
        """Bytes at host address ``host`` or None (caller then takes the batched path)."""
        import threading

        if _readv is None or n > self._SCRATCH or threading.get_ident() != self._owner:
            return None
        self._liov.iov_len = n
        self._riov.iov_base = host
        self._riov.iov_len = n
        got = _readv(self._single_pid, self._liov_p, 1, self._riov_p, 1, 0)
        if got == n:
            return ctypes.string_at(self._scratch_addr, n)
        return None
