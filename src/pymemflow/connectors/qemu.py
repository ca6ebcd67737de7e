"""``qemu`` connector: the guest-physical memory of a running QEMU VM, read from the QEMU process.

Guest RAM is an ordinary mapping of the QEMU process; we find it (QMP when the VM has a socket we can
reach, else the machine type's memory map -- see :mod:`pymemflow.live.qemu_ram`) and read it with
``process_vm_readv`` (batched, up to IOV_MAX pieces per syscall). The VM keeps running: reads see
memory as it changes, unless ``pause=open`` (paused from open to close) or ``pause=read`` (paused
around every batch) is given. ``writable=true`` enables writes (``process_vm_writev``).

With an OS layer as input (``-o native -c qemu:VM`` or a QEMU inside another machine's memory), the
QEMU process is found in that OS's process list and read through its process memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ArgumentError, NotFoundError, PluginError, PymemflowError, ReadFailure
from ..live import procfs
from ..live.procmem import (
    IOV_MAX,
    AlignedReadsMixin,
    ProcessMemoryIO,
    PtracePermissionError,
    SingleReadMixin,
    aligned_empty,
    plan_into,
    ptrace_advice,
    read_maybe_bounced,
)
from ..live.qemu_cmdline import QemuCommandLine, is_qemu, parse_command_line
from ..live.qemu_ram import RamLayout, RamNotFoundError, layout_from_heuristic, layout_from_qmp
from ..live.qemu_regs import paging_arch
from ..live.qmp import QmpBusyError, QmpClient, QmpError
from ..live.rangemap import HostRangeMap
from ..mem import fast
from ..mem.phys import PhysicalMemory, PhysicalMetadata, PhysRange
from ..mem.view import BatchResult, I64Array, MemoryView, U8Array, U64Array, small_pieces
from ..types import (
    ArgSpec,
    MemoryRegion,
    PluginSpec,
    TargetInfo,
    choice,
    parse_bool,
    parse_duration,
    parse_int,
)

DEFAULT_CACHE_TIME = 0.1
"""Seconds a page cache / TLB entry over a running VM stays valid by default (see docs/live.md)."""


# ------------------------------------------------------------------------------------------------
# finding VMs


@dataclass
class VmInfo:
    pid: int
    cmd: QemuCommandLine

    @property
    def name(self) -> str:
        return self.cmd.name or f"pid{self.pid}"


def list_vms(proc: str = procfs.PROC) -> list[VmInfo]:
    """Running QEMU system emulators on this host (every /proc entry whose argv[0] is qemu-system-*)."""
    vms = []
    for pid in procfs.pids(proc):
        argv = procfs.cmdline(pid, proc)
        if argv and is_qemu(argv):
            try:
                cwd = os.readlink(f"{proc}/{pid}/cwd")
            except OSError:
                cwd = "/"
            vms.append(VmInfo(pid, parse_command_line(argv, cwd)))
    return vms


def find_vm(target: str | int | None, vms: list[VmInfo]) -> VmInfo:
    """A VM by pid (digits) or name (``-name guest=NAME``); with no target, the only running VM."""
    if target is None or str(target) == "":
        if len(vms) == 1:
            return vms[0]
        names = ", ".join(f"{v.name} (pid {v.pid})" for v in vms) or "none"
        raise ArgumentError(f"qemu: name a VM (by name or pid); running VMs: {names}")
    t = str(target)
    for v in vms:
        if (t.isdigit() and v.pid == int(t)) or v.cmd.name == t:
            return v
    names = ", ".join(f"{v.name} (pid {v.pid})" for v in vms) or "none"
    raise NotFoundError(f"qemu: no running VM named or with pid {t!r}; running VMs: {names}")


def targets() -> list[TargetInfo]:
    out = []
    for v in list_vms():
        c = v.cmd
        out.append(TargetInfo(v.name, f"pid {v.pid}, {c.machine}, {c.mem_size >> 20} MiB"
                              + (f", QMP {c.qmp[0]}" if c.qmp else ", no QMP socket"),
                              {"pid": v.pid, "machine": c.machine, "mem_size": c.mem_size, "qmp": list(c.qmp)}))
    return out


# ------------------------------------------------------------------------------------------------
# host access: our own process_vm_readv, or another OS layer's process memory


class _HostAccess:
    """Reads (and writes) of the QEMU process's memory at host addresses."""

    def read(self, out: U8Array, host: U64Array, lengths: U64Array, offsets: U64Array,
             index: I64Array) -> list[ReadFailure]:
        raise NotImplementedError

    def write(self, data: U8Array, host: U64Array, lengths: U64Array, offsets: U64Array,
              index: I64Array) -> list[ReadFailure]:
        raise NotImplementedError

    def read_bytes(self, host: int, n: int) -> bytes | None:
        """``n`` bytes at host address ``host``, or None if any failed."""
        out = aligned_empty(n)
        fails = self.read(out, np.array([host], np.uint64), np.array([n], np.uint64),
                          np.array([0], np.uint64), np.array([0], np.int64))
        return None if fails else out.tobytes()

    def close(self) -> None:
        pass


class _LocalAccess(_HostAccess):
    def __init__(self, pid: int, method: str, writable: bool) -> None:
        self.io = ProcessMemoryIO(pid, method, writable)

    def read(self, out: U8Array, host: U64Array, lengths: U64Array, offsets: U64Array,
             index: I64Array) -> list[ReadFailure]:
        return read_maybe_bounced(self.io, out, host, lengths, offsets, index)

    def write(self, data: U8Array, host: U64Array, lengths: U64Array, offsets: U64Array,
              index: I64Array) -> list[ReadFailure]:
        return self.io.transfer(plan_into(data, host, lengths, offsets, index), write=True)

    def close(self) -> None:
        self.io.close()


class _ViewAccess(_HostAccess):
    """Through a :class:`MemoryView` of the QEMU process (an OS layer's process memory)."""

    def __init__(self, view: MemoryView) -> None:
        self.view = view

    def read(self, out: U8Array, host: U64Array, lengths: U64Array, offsets: U64Array,
             index: I64Array) -> list[ReadFailure]:
        res = self.view.read_batch(host, lengths.astype(np.int64))
        fails = []
        for k in range(host.shape[0]):
            o, n, src = int(offsets[k]), int(lengths[k]), int(res.offsets[k])
            out[o : o + n] = res.data[src : src + n]
        for f in res.failures:
            fails.append(ReadFailure(int(index[f.index]), f.address, f.length, f.reason))
        return fails

    def write(self, data: U8Array, host: U64Array, lengths: U64Array, offsets: U64Array,
              index: I64Array) -> list[ReadFailure]:
        pieces = [data[int(o) : int(o) + int(n)].tobytes() for o, n in zip(offsets, lengths, strict=False)]
        return [ReadFailure(int(index[f.index]), f.address, f.length, f.reason)
                for f in self.view.write_batch(host, pieces)]


# ------------------------------------------------------------------------------------------------
# the connector


def _parse_pause(text: str) -> str:
    t = text.strip().lower()
    if t in ("open", "true", "yes", "on", "1", ""):
        return "open"
    if t in ("read", "batch", "per-read"):
        return "read"
    if t in ("off", "false", "no", "0"):
        return "off"
    raise ValueError(f"{text!r}: use pause=open (paused while open), pause=read (around each read) or off")


class QemuConnector(AlignedReadsMixin, SingleReadMixin, PhysicalMemory):
    """Guest-physical memory of a QEMU VM. Build with :func:`open_qemu` (or the plugin chain)."""

    name = "qemu"

    def __init__(self, pid: int, cmd: QemuCommandLine, access: _HostAccess, layout: RamLayout, *,
                 writable: bool = False, qmp_endpoints: list[str] | None = None, pause: str = "off",
                 qmp_timeout: float = 2.0) -> None:
        super().__init__()
        self.pid = pid
        self.cmd = cmd
        self.layout = layout
        self.map = HostRangeMap(layout.ranges)
        self._access = access
        self._local = access.io if isinstance(access, _LocalAccess) else None
        self.qmp_endpoints = list(qmp_endpoints or [])
        self.qmp_timeout = qmp_timeout
        self.pause_mode = pause
        self._qmp: QmpClient | None = None
        self._we_paused = False
        self._closed = False
        self.metadata = PhysicalMetadata(max_address=self.map.max_address, real_size=self.map.real_size,
                                         readonly=not writable, ideal_batch_size=IOV_MAX)
        self.hints.update({
            "live": True,
            "cache_time": DEFAULT_CACHE_TIME,
            "machine": cmd.machine,
            "vm_name": cmd.name or "",
            "qemu_pid": pid,
        })
        if layout.registers:
            # facts from QEMU at open time: a valid page-table root and the paging mode of CPU 0
            self.hints["cpu_registers"] = layout.registers
            self.hints["dtb"] = layout.registers[0]["cr3"] & ~0xFFF
            arch = paging_arch(layout.registers[0])
            if arch:
                self.hints["arch"] = arch
        self._init_single(pid)
        if self._local is not None and self._local.method == "readv" and pause != "read":
            # compiled single reads and small batches: one process_vm_readv each (mem/fast.py)
            rs = sorted(self.map.ranges, key=lambda r: r.base)
            fast.bind_map_reader(self, None, [r.base for r in rs], [r.size for r in rs], [r.host for r in rs],
                                 QemuConnector, pid=pid)
        if pause == "open":
            self.pause()

    # -- QMP ------------------------------------------------------------------------------------
    def _client(self) -> QmpClient:
        if self._qmp is not None:
            return self._qmp
        errors = []
        for ep in self.qmp_endpoints:
            try:
                self._qmp = QmpClient(ep, self.qmp_timeout)
                return self._qmp
            except QmpError as e:
                errors.append(str(e))
        raise PluginError("qemu: no usable QMP socket for pause/resume"
                          + (": " + "; ".join(errors) if errors else
                             " (the VM has no -qmp option; give qmp=PATH)"))

    def _release_qmp(self) -> None:
        """Let go of the QMP socket (it serves one client at a time) unless pause=read needs it."""
        if self._qmp is not None and self.pause_mode != "read":
            self._qmp.close()
            self._qmp = None

    def qmp(self, command: str, **arguments: Any) -> Any:
        """Run a QMP command on the VM (connects, runs, lets the socket go)."""
        try:
            return self._client().cmd(command, **arguments)
        finally:
            self._release_qmp()

    def is_running(self) -> bool:
        return bool(self.qmp("query-status").get("running"))

    def pause(self) -> None:
        """Stop the VM's CPUs (QMP ``stop``) so reads see one consistent state."""
        try:
            q = self._client()
            if q.cmd("query-status").get("running"):
                q.cmd("stop")
                self._we_paused = True
        finally:
            self._release_qmp()

    def resume(self) -> None:
        """Continue the VM (QMP ``cont``) if we paused it."""
        if not self._we_paused:
            return
        try:
            self._client().cmd("cont")
            self._we_paused = False
        finally:
            self._release_qmp()

    @contextlib.contextmanager
    def paused(self) -> Iterator[QemuConnector]:
        """``with conn.paused(): ...`` -- the VM is stopped inside the block (resumed after, if it ran)."""
        was = self._we_paused
        self.pause()
        try:
            yield self
        finally:
            if not was:
                self.resume()

    def phys_ranges(self) -> list[PhysRange]:
        """The guest's RAM blocks (from QMP or the heuristic), not the MMIO holes between them."""
        return [PhysRange(r.base, r.end) for r in self.map.ranges]

    # -- reads ----------------------------------------------------------------------------------
    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        if self.pause_mode == "read":
            with self.paused():
                return self._read_batch_now(addrs, lengths, out)
        return self._read_batch_now(addrs, lengths, out)

    def _read_batch_now(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        if self._fast_gather_into(addrs, lengths, out):
            return []  # up to IOV_MAX pieces inside RAM blocks, all read by one process_vm_readv
        offsets = np.zeros(lengths.shape[0], dtype=np.uint64)
        if lengths.shape[0] > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        plan = self.map.split(addrs, lengths, offsets)
        fails = self.map.hole_failures(plan, out) if plan.holes else []
        if plan.host.shape[0]:
            fails.extend(self._host_failures(self._access.read(out, plan.host, plan.length, plan.out_offset,
                                                               plan.index), plan, addrs, offsets))
        return fails

    def _read_small(self, addrs: Any, lengths: Any) -> BatchResult | None:
        """A few small pieces inside RAM blocks: one process_vm_readv, no NumPy set-up (the pure path's
        answer to small scatter batches; the compiled path does the same in C)."""
        if self._local is None or self.pause_mode == "read" or self._local.method != "readv":
            return None
        small = small_pieces(addrs, lengths)
        if small is None:
            return None
        al, ln = small
        hosts = []
        lookup = self.map.lookup
        for a, n in zip(al, ln, strict=True):
            h = lookup(a, n) if n else 0
            if h is None:
                return None
            hosts.append(h)
        data = self._try_small(hosts, ln)
        return None if data is None else BatchResult(data, None, ln, [], len(al))

    def _host_failures(self, fails: list[ReadFailure], plan: Any, addrs: U64Array,
                       offsets: U64Array) -> list[ReadFailure]:
        """Host failures name host addresses; report guest-physical ones."""
        out = []
        for f in fails:
            hosts = plan.host[plan.index == f.index]
            outs = plan.out_offset[plan.index == f.index]
            gpa = f.address
            for h, o in zip(hosts.tolist(), outs.tolist(), strict=False):
                if h <= f.address:
                    gpa = int(addrs[f.index]) + (o - int(offsets[f.index])) + (f.address - h)
            out.append(ReadFailure(f.index, gpa, f.length, f.reason))
        return out

    def _read_single(self, addr: int, n: int) -> tuple[bytes, list[ReadFailure]]:
        if self._local is not None and self.pause_mode != "read" and self._local.method == "readv":
            host = self.map.lookup(addr, n)
            if host is not None:
                data = self._try_single(host, n)
                if data is not None:
                    return data, []
        out = aligned_empty(n)
        fails = self._read_batch(np.array([addr], np.uint64), np.array([n], np.int64), out)
        return out.tobytes(), fails

    # -- writes ---------------------------------------------------------------------------------
    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        if self.metadata.readonly:
            return super()._write_batch(addrs, lengths, data)
        offsets = np.zeros(lengths.shape[0], dtype=np.uint64)
        if lengths.shape[0] > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        plan = self.map.split(addrs, lengths, offsets)
        fails = [ReadFailure(i, a, n, "no guest RAM at this physical address") for i, a, n, _ in plan.holes]
        data = np.ascontiguousarray(data)
        if plan.host.shape[0]:
            fails.extend(self._host_failures(self._access.write(data, plan.host, plan.length, plan.out_offset,
                                                                plan.index), plan, addrs, offsets))
        return fails

    # -- info / close ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update({
            "pid": self.pid,
            "vm_name": self.cmd.name,
            "machine": self.cmd.machine,
            "ram_layout_method": self.layout.method,
            "ram_ranges": [{"base": r.base, "size": r.size, "host": r.host} for r in self.map.ranges],
            "notes": list(self.layout.notes),
            "pause": self.pause_mode,
            "io": self._local.method if self._local else "input os",
        })
        return d

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        fast.unbind(self)
        try:
            if self._we_paused:
                self.pause_mode = "off"
                try:
                    self.resume()
                except PymemflowError as e:  # the VM may be gone; close() must not fail
                    warnings.warn(f"qemu: could not resume VM {self.cmd.name or self.pid}: {e}", UserWarning,
                                  stacklevel=2)
        finally:
            if self._qmp is not None:
                self._qmp.close()
                self._qmp = None
            self._access.close()


# ------------------------------------------------------------------------------------------------
# opening


def _local_maps(pid: int) -> list[procfs.MapEntry]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
    except PermissionError as e:
        raise PtracePermissionError(ptrace_advice(pid, e.errno or errno.EACCES)) from None
    except FileNotFoundError:
        raise NotFoundError(f"qemu: process {pid} does not exist (any more)") from None
    return procfs.parse_maps(text)


def _locate(cmd: QemuCommandLine, maps: list[procfs.MapEntry], access: _HostAccess, endpoints: list[str],
            layout: str, map_base: int | None, map_size: int | None, qmp_timeout: float) -> RamLayout:
    if map_base is not None or layout == "heuristic":
        return layout_from_heuristic(cmd, maps, map_base, map_size)
    problems: list[str] = []
    if layout in ("auto", "qmp"):
        for ep in endpoints:
            try:
                with QmpClient(ep, qmp_timeout) as q:
                    return layout_from_qmp(q, maps, access.read_bytes)
            except QmpBusyError as e:
                problems.append(str(e))
            except (QmpError, RamNotFoundError) as e:
                problems.append(f"{ep}: {e}")
        if layout == "qmp":
            raise PluginError("qemu: layout=qmp but no QMP socket could be used: "
                              + ("; ".join(problems) or "the VM has no -qmp option (give qmp=PATH)"))
    lay = layout_from_heuristic(cmd, maps, None, map_size)
    why = "; ".join(problems) if problems else "the VM has no QMP socket on its command line (give qmp=PATH)"
    warnings.warn(f"qemu: guest RAM located by heuristic, not QMP ({why}): {'; '.join(lay.notes)}",
                  UserWarning, stacklevel=3)
    return lay


def open_qemu(target: str | int | None = None, *, qmp: str | None = None, map_base: int | None = None,
              map_size: int | None = None, pause: str = "off", writable: bool = False, io: str = "auto",
              layout: str = "auto", qmp_timeout: float = 2.0, input: HostOs | None = None) -> QemuConnector:
    """Open a VM on this host (or in ``input``, an OS layer) by name or pid."""
    endpoints = []
    if qmp:
        endpoints.append(qmp if qmp.startswith(("unix:", "tcp:")) else "unix:" + os.path.abspath(qmp))
    if input is not None and not getattr(input, "is_local_host", False):
        return _open_in_os(input, target, map_base, map_size, writable, layout)
    vm = find_vm(target, list_vms())
    endpoints += [e for e in vm.cmd.qmp if e not in endpoints]
    maps = _local_maps(vm.pid)
    access = _LocalAccess(vm.pid, io, writable)
    try:
        lay = _locate(vm.cmd, maps, access, endpoints, layout, map_base, map_size, qmp_timeout)
        if not lay.ranges:
            raise RamNotFoundError("qemu: the VM has no RAM ranges")
        access.io.check_access(lay.ranges[0].host)
        return QemuConnector(vm.pid, vm.cmd, access, lay, writable=writable, qmp_endpoints=endpoints,
                             pause=pause, qmp_timeout=qmp_timeout)
    except BaseException:
        access.close()
        raise


class HostProcessInfo(Protocol):
    """What the connector reads of a process record of the OS layer it runs on (``ProcessInfo``)."""

    pid: int
    name: str
    path: str
    command_line: str


class HostProcess(Protocol):
    @property
    def memory(self) -> MemoryView: ...


class HostOs(Protocol):
    """The OS layer a ``qemu`` connector runs on (``-o native -c qemu:VM``, or a QEMU process inside
    another machine's memory), structurally: a connector may not import the OS layers above it.
    ``OsLayer`` provides all of it."""

    def process_info_list(self) -> Sequence[HostProcessInfo]: ...

    def process_from_info(self, info: Any) -> HostProcess: ...

    def memory_regions(self, proc: Any) -> Sequence[MemoryRegion]: ...


def _open_in_os(os_layer: HostOs, target: str | int | None, map_base: int | None, map_size: int | None,
                writable: bool, layout: str) -> QemuConnector:
    """A QEMU process inside another OS layer: command line and maps from that OS, heuristic layout."""
    infos = [i for i in os_layer.process_info_list()
             if i.name.startswith("qemu-system") or os.path.basename(i.path).startswith("qemu-system")
             or i.name in ("qemu-kvm", "kvm")]
    vms = [VmInfo(i.pid, parse_command_line(shlex.split(i.command_line) if i.command_line else [i.path]))
           for i in infos]
    vm = find_vm(target, vms)
    proc = os_layer.process_from_info(next(i for i in infos if i.pid == vm.pid))
    regions = os_layer.memory_regions(proc)
    maps = [procfs.MapEntry(r.start, r.end, (r.protection + "p")[:4], 0, "", 0 if not r.path else 1, r.path)
            for r in regions]
    if layout == "qmp":
        raise ArgumentError("qemu: layout=qmp is not possible for a VM inside another OS layer")
    lay = layout_from_heuristic(vm.cmd, maps, map_base, map_size)
    if map_base is None:
        warnings.warn("qemu: guest RAM of a VM inside an OS layer located by heuristic: " + "; ".join(lay.notes),
                      UserWarning, stacklevel=3)
    return QemuConnector(vm.pid, vm.cmd, _ViewAccess(proc.memory), lay, writable=writable)


def _factory(args: dict[str, Any], input: Any) -> QemuConnector:
    return open_qemu(args.get("target"), qmp=args.get("qmp"), map_base=args.get("map_base"),
                     map_size=args.get("map_size"), pause=args.get("pause") or "off",
                     writable=bool(args.get("writable")), io=args.get("io") or "auto",
                     layout=args.get("layout") or "auto", qmp_timeout=float(args.get("qmp_timeout") or 2.0),
                     input=input)


PLUGIN = PluginSpec(
    kind="connector",
    name="qemu",
    description="Running QEMU VM on this host (by name or pid), read live from the QEMU process",
    factory=_factory,
    args=[
        ArgSpec("target", "VM name (-name guest=NAME) or QEMU pid; optional when one VM runs"),
        ArgSpec("qmp", "QMP socket path (default: the VM's -qmp sockets from its command line)"),
        ArgSpec("map_base", "host address of guest RAM (skips QMP; layout from the machine type)", parse=parse_int),
        ArgSpec("map_size", "size of guest RAM at map_base (default: -m of the VM)", parse=parse_int),
        ArgSpec("pause", "off | open (VM paused while open) | read (paused around each read)", default="off",
                parse=_parse_pause),
        ArgSpec("writable", "allow writes to guest memory (process_vm_writev)", default=False, parse=parse_bool),
        ArgSpec("io", "auto | readv (process_vm_readv) | procmem (/proc/PID/mem)", default="auto",
                parse=choice("auto", "readv", "procmem")),
        ArgSpec("layout", "auto (QMP, else heuristic) | qmp | heuristic", default="auto",
                parse=choice("auto", "qmp", "heuristic")),
        ArgSpec("qmp_timeout", "seconds to wait for a QMP greeting", default=2.0, parse=parse_duration),
    ],
    targets=targets,
    accepts_input=True,
)

__all__ = ["PLUGIN", "QemuConnector", "VmInfo", "find_vm", "list_vms", "open_qemu", "targets"]
