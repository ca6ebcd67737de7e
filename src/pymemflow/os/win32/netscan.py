"""netscan: TCP endpoints (pool tag ``TcpE``), TCP listeners (``TcpL``) and UDP endpoints (``UdpA``)
carved from physical memory by pool tag, as volatility's netscan does (not by walking tcpip's partition
and port-pool tables: closed and orphaned endpoints still show).

Public tcpip PDBs carry no types, so the field layout comes from the generated per-build table
(:mod:`.net.layouts`), chosen by tcpip.sys's own FileVersion (its version resource, found through the
kernel module list) or, without one, the kernel's build; an unknown build is a warning naming it. A
block counts when its address family object says IPv4/IPv6, a TCP endpoint's state is a real TCP state
and its owner (if any) is a process object. Unbound listeners and UDP endpoints of an IPv6 socket are
dual-stack: shown as an IPv4 and an IPv6 row, as Windows' netstat does.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from ...errors import PymemflowError
from ...types import task_progress
from ..forensics import SocketInfo, iso_from_filetime
from . import pe
from .net.layouts import LayoutChoice, choose
from .net.version import file_version
from .pool import kernel_va, scan_pool

if TYPE_CHECKING:
    from .kernel import Win32Kernel

AF_INET, AF_INET6 = 2, 0x17
TAGS = {b"TcpE": "tcp_endpoint", b"TcpL": "tcp_listener", b"UdpA": "udp_endpoint"}
MAX_PORT = 0xFFFF


def tcpip_identity(k: Win32Kernel) -> dict[str, Any]:
    """tcpip.sys as loaded: base, FileVersion, CodeView PDB identity (what picks the layout)."""
    out: dict[str, Any] = {"module": None, "version": None, "pdb": None}
    try:
        mods = k.kernel_modules()
    except PymemflowError:
        return out
    mod = next((m for m in mods if m.name.lower() == "tcpip.sys"), None)
    if mod is None:
        return out
    out["module"] = mod.base
    try:
        hdr = pe.read_headers(k.kmem, mod.base)
    except PymemflowError:
        return out
    ver = file_version(k.kmem, mod.base, hdr)
    if ver is not None:
        out["version"] = ".".join(str(v) for v in ver)
    cv = pe.codeview(k.kmem, mod.base, hdr)
    if cv is not None:
        out["pdb"] = f"{cv.pdb_name} {cv.guid_age}"
    return out


def layout_for(k: Win32Kernel, ident: dict[str, Any]) -> LayoutChoice:
    if ident["version"]:
        major, minor, build, rev = (int(x) for x in ident["version"].split("."))
        return choose(k.facts.arch, major, minor, build, rev, source="tcpip.sys FileVersion")
    parts = [int(x) for x in (k.facts.version or "0.0").split(".")[:2]]
    major, minor = (parts + [0, 0])[:2]
    return choose(k.facts.arch, major, minor, k.facts.build, 0, source="kernel build; tcpip.sys version unread")


class _Reader:
    """Pointer-chasing through kernel memory with a per-scan cache of process owners."""

    def __init__(self, k: Win32Kernel, lay: dict[str, Any]) -> None:
        self.k = k
        self.ptr = lay["pointer"]
        self.family_off = lay["inet_af_family"]
        self.owners: dict[int, tuple[int, str] | None] = {}

    def ptr_at(self, va: int) -> int:
        if not va:
            raise PymemflowError("null pointer")
        return self.k.kmem.read_ptr(va) if self.ptr == self.k.kmem.pointer_size else self.k.kmem.read_u32(va)

    def family(self, inet_af: int) -> int | None:
        try:
            return self.k.kmem.read_u16(inet_af + self.family_off) if inet_af else None
        except PymemflowError:
            return None

    def address(self, body: bytes, path: list[int], af: int) -> str | None:
        """Follow a pointer path (first hop read from the carved body); None when it breaks."""
        try:
            cur = int.from_bytes(body[path[0] : path[0] + self.ptr], "little")
            for off in path[1:]:
                cur = self.ptr_at(cur + off) if cur else 0
            if not cur:
                return None
            raw = self.k.kmem.read(cur, 4 if af == AF_INET else 16)
        except PymemflowError:
            return None
        return str(ipaddress.ip_address(raw))

    def owner(self, va: int) -> tuple[int, str] | None:
        """(pid, image name) of the EPROCESS at ``va`` when it is one."""
        if not va:
            return None
        if va not in self.owners:
            e = self.k.eproc
            try:
                b = self.k.kmem.read(va, e.size)
                ok = b[0] == 3  # a process dispatcher header
                pid = int.from_bytes(b[e.pid : e.pid + e.ptr], "little")
                name = b[e.name : e.name + 15].split(b"\0", 1)[0]
                ok = ok and pid % 4 == 0 and pid < 1 << 26 and all(0x20 <= c <= 0x7E for c in name)
                self.owners[va] = (pid, name.decode("ascii")) if ok else None
            except PymemflowError:
                self.owners[va] = None
        return self.owners[va]


def _u(b: bytes, off: int, n: int) -> int:
    return int.from_bytes(b[off : off + n], "little")


def _port(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 2], "big")


def netscan(k: Win32Kernel) -> list[SocketInfo]:
    ident = tcpip_identity(k)
    choice = layout_for(k, ident)
    if not choice.exact:
        k._warn([f"netscan: {choice.note}"])
    if choice.layout is None:
        return []
    lay = choice.layout
    r = _Reader(k, lay)
    ptr = r.ptr
    x64 = k.facts.arch == "x64"
    hs = 16 if x64 else 8
    tags = {t: lay[kind]["size"] + hs for t, kind in TAGS.items()}
    states = lay["tcp_states"]
    info = {"tcpip_layout": choice.name, "tcpip_version": ident["version"], "tcpip_pdb": ident["pdb"]}
    out: list[SocketInfo] = []
    warnings: list[str] = []
    progress = task_progress(getattr(k, "progress", None), "netscan: scanning for tcpip pool blocks")
    for blk in scan_pool(k.phys, tags, x64, progress=progress, warnings=warnings):
        kind = TAGS[blk.tag]
        rec = lay[kind]
        body = blk.data[hs:]
        need = max(v if isinstance(v, int) else v[0] for key, v in rec.items() if key != "size") + 8
        if len(body) < need:
            body = body + k.phys.read(blk.pa + blk.size, need - len(body), zero_fill=True)
        af = r.family(_u(body, rec["inet_af"], ptr))
        if af not in (AF_INET, AF_INET6):
            continue
        owner = r.owner(_u(body, rec["owner"], ptr))
        pid, pname = owner if owner else (None, "")
        created = iso_from_filetime(_u(body, rec["create_time"], 8))
        extra = {**info, "physical_address": blk.body_pa, "pool_tag": blk.tag.decode(), "pool_free": blk.pool_type == 0}
        if kind == "tcp_endpoint":
            st = _u(body, rec["state"], 4)
            if str(st) not in states:
                continue
            local = r.address(body, rec["local_addr"], af)
            if local is None and (pid is None or pid == 0):
                continue  # neither an address nor an owner: not an endpoint
            remote = r.address(body, rec["remote_addr"], af)
            proto = "tcp" if af == AF_INET else "tcp6"
            out.append(SocketInfo(proto, local or "", _port(body, rec["local_port"]), remote or "",
                                  _port(body, rec["remote_port"]), states[str(st)], pid, pname, created,
                                  kernel_va(k.kmem, blk.body_pa), extra))
            continue
        local = r.address(body, rec["local_addr"], af)
        port = _port(body, rec["port"])
        rows = [(AF_INET, local)] if local is not None and af == AF_INET else \
            [(AF_INET6, local)] if local is not None else \
            [(AF_INET, "0.0.0.0")] + ([(AF_INET6, "::")] if af == AF_INET6 else [])
        for fam, laddr in rows:
            if kind == "tcp_listener":
                out.append(SocketInfo("tcp" if fam == AF_INET else "tcp6", laddr, port,
                                      "0.0.0.0" if fam == AF_INET else "::", 0, "LISTENING", pid, pname, created,
                                      kernel_va(k.kmem, blk.body_pa), extra))
            else:
                out.append(SocketInfo("udp" if fam == AF_INET else "udp6", laddr, port, "*", 0, "", pid, pname,
                                      created, kernel_va(k.kmem, blk.body_pa), extra))
    if warnings:
        k._warn(warnings)
    out.sort(key=lambda s: (s.address, s.protocol))
    return out
