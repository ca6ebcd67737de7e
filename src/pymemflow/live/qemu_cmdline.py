"""What a QEMU command line says about the VM: name, machine type, RAM size, memory backends, QMP sockets.

Why: with no QMP socket reachable, the command line is all we know about where guest RAM is, and with
one it tells us where the socket is. QEMU options are ``-opt value`` or ``--opt value``; values are
``key=value`` lists separated by ``,`` where ``,,`` is a literal comma; the first item may be an
implied key (``-name NAME`` == ``-name guest=NAME``, ``-machine q35`` == ``-machine type=q35``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}


def split_opts(value: str) -> list[str]:
    """Split a QEMU option value at ``,`` keeping ``,,`` as a literal comma."""
    items: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == ",":
            if i + 1 < len(value) and value[i + 1] == ",":
                cur.append(",")
                i += 2
                continue
            items.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    items.append("".join(cur))
    return items


def parse_opts(value: str, implied: str) -> dict[str, str]:
    """``"q35,accel=tcg"`` -> ``{"type": "q35", "accel": "tcg"}`` (``implied`` names the first bare item)."""
    d: dict[str, str] = {}
    for n, item in enumerate(split_opts(value)):
        if "=" in item:
            k, _, v = item.partition("=")
            d[k] = v
        elif n == 0:
            d[implied] = item
        elif item:
            d[item] = "on"
    return d


def parse_qemu_size(text: str, default_unit: int = 1) -> int:
    """QEMU sizes: ``512M``, ``4G``, ``4096`` (in ``default_unit``), ``1.5G``; powers of 1024."""
    t = text.strip().lower()
    if t.endswith("ib"):
        t = t[:-2]
    elif t.endswith("b") and len(t) > 1 and t[-2] in _SUFFIX:
        t = t[:-1]
    unit = default_unit
    if t and t[-1] in _SUFFIX and not t[-1].isdigit():
        unit = _SUFFIX[t[-1]]
        t = t[:-1]
    if not t:
        raise ValueError(f"bad QEMU size {text!r}")
    return int(float(t) * unit) if "." in t else int(t, 0) * unit


def is_qemu(argv: list[str]) -> bool:
    if not argv:
        return False
    base = os.path.basename(argv[0])
    return base.startswith("qemu-system-") or base in ("qemu-kvm", "kvm")


@dataclass
class MemoryBackend:
    id: str
    type: str
    size: int | None
    mem_path: str | None = None
    share: bool = False


@dataclass
class QemuCommandLine:
    argv: list[str]
    name: str | None = None
    machine: str = "pc"
    accel: str = ""
    mem_size: int = 128 << 20
    """Guest RAM (``-m``; QEMU's default is 128 MiB)."""
    machine_memory_backend: str | None = None
    backends: dict[str, MemoryBackend] = field(default_factory=dict)
    qmp: list[str] = field(default_factory=list)
    """QMP endpoints: ``unix:PATH`` (absolute) or ``tcp:HOST:PORT``."""

    @property
    def machine_family(self) -> str:
        """``q35`` for any q35 variant, ``pc`` for i440fx variants, else the type itself."""
        m = self.machine.lower()
        if "q35" in m:
            return "q35"
        if m in ("pc", "") or m.startswith("pc-i440fx") or m.startswith("pc-") or m == "isapc":
            return "pc"
        return m

    @property
    def ram_file(self) -> str | None:
        """The file backing main RAM (``memory-backend-file``), if any."""
        be = self.backends.get(self.machine_memory_backend or "") if self.machine_memory_backend else None
        if be is None:
            files = [b for b in self.backends.values() if b.mem_path]
            be = files[0] if len(files) == 1 else None
        return be.mem_path if be else None


def _endpoint(spec: str, cwd: str) -> str | None:
    """A chardev address (``unix:PATH,...``, ``tcp:H:P,...``) as ``unix:ABS`` / ``tcp:H:P``."""
    head = split_opts(spec)[0]
    if head.startswith("unix:"):
        path = head[5:]
        return "unix:" + (path if os.path.isabs(path) else os.path.join(cwd, path))
    if head.startswith("tcp:"):
        return head
    return None


def parse_command_line(argv: list[str], cwd: str = "/") -> QemuCommandLine:
    """Parse a QEMU ``argv`` (relative socket paths are resolved against ``cwd``, the process's cwd)."""
    q = QemuCommandLine(argv=list(argv))
    chardevs: dict[str, str] = {}
    monitors: list[str] = []
    i = 1
    while i < len(argv):
        opt = argv[i]
        if not opt.startswith("-"):
            i += 1
            continue
        key = opt.lstrip("-")
        val = argv[i + 1] if i + 1 < len(argv) else ""
        if val.startswith("-") or key == "enable-kvm":
            # a flag without a value (-nodefaults, -daemonize, -S ...): QEMU values never start with '-'
            if key == "enable-kvm":
                q.accel = "kvm"
            i += 1
            continue
        if key == "name":
            d = parse_opts(val, "guest")
            q.name = d.get("guest") or q.name
        elif key in ("machine", "M"):
            d = parse_opts(val, "type")
            q.machine = d.get("type", q.machine)
            q.accel = d.get("accel", q.accel)
            q.machine_memory_backend = d.get("memory-backend", q.machine_memory_backend)
        elif key == "accel":
            q.accel = parse_opts(val, "accel").get("accel", q.accel)
        elif key == "m":
            d = parse_opts(val, "size")
            if "size" in d:
                try:
                    q.mem_size = parse_qemu_size(d["size"], 1 << 20)
                except ValueError:
                    pass
        elif key == "object":
            d = parse_opts(val, "qom-type")
            t = d.get("qom-type", "")
            if t.startswith("memory-backend-") and "id" in d:
                size = None
                if "size" in d:
                    try:
                        size = parse_qemu_size(d["size"])
                    except ValueError:
                        size = None
                path = d.get("mem-path")
                if path and not os.path.isabs(path):
                    path = os.path.join(cwd, path)
                q.backends[d["id"]] = MemoryBackend(d["id"], t, size, path, d.get("share", "off") in ("on", "yes", "true"))
        elif key in ("qmp", "qmp-pretty"):
            ep = _endpoint(val, cwd)
            if ep:
                q.qmp.append(ep)
        elif key == "chardev":
            d = parse_opts(val, "backend")
            if d.get("backend") == "socket" and "id" in d:
                if "path" in d:
                    p = d["path"]
                    chardevs[d["id"]] = "unix:" + (p if os.path.isabs(p) else os.path.join(cwd, p))
                elif "port" in d:
                    chardevs[d["id"]] = f"tcp:{d.get('host', '127.0.0.1')}:{d['port']}"
        elif key == "mon":
            d = parse_opts(val, "chardev")
            if d.get("mode") == "control" and "chardev" in d:
                monitors.append(d["chardev"])
        i += 2
    for m in monitors:
        if m in chardevs:
            q.qmp.append(chardevs[m])
    if q.machine_memory_backend and q.machine_memory_backend in q.backends:
        be = q.backends[q.machine_memory_backend]
        if be.size:
            q.mem_size = be.size
    return q
