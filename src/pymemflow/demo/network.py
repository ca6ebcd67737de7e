"""tcpip.sys and its endpoints: a driver image with a CodeView record and a version resource, and TCP
listeners (pool tag TcpL), TCP endpoints (TcpE) and UDP endpoints (UdpA) in the non-paged pool at the
layout of the machine's build (the generated table of :mod:`pymemflow.os.win32.net.layouts`), owned by the
machine's processes -- one of them the unlinked one. Ground truth: ``facts["network"]`` (rows as
``vol windows.netscan`` prints them) and ``facts["tcpip"]``."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from ..os.win32.net.layouts import choose
from .base import BuilderBase
from .pe import RDATA, TEXT, PeSpec, Section, build_pe
from .pool import pool_alloc
from .profiles import FILETIME_2021
from .structs import utf16

AF_INET, AF_INET6 = 2, 0x17
# one of the 85 tcpip.pdb identities of the JPCERT ISF set (tests/data/windows/isf-forensic/tcpip.pdb/)
TCPIP_PDB = ("tcpip.pdb", "021C12B15F95E1F661DCDEEFB190095A", 1)
RESOURCE_RVA = 0x1800
STATES = {"LISTENING": 1, "ESTABLISHED": 4, "CLOSE_WAIT": 7}


def version_resource(version: str) -> bytes:
    """A VS_VERSIONINFO block holding VS_FIXEDFILEINFO (FileVersion = ProductVersion = ``version``)."""
    a, b, c, d = (int(x) for x in version.split("."))
    ms, ls = (a << 16) | b, (c << 16) | d
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x10000, ms, ls, ms, ls, 0x3F, 0, 0x40004, 3, 6, 0, 0)
    key = utf16("VS_VERSION_INFO") + b"\0\0"
    head = struct.pack("<HHH", 0, len(fixed), 0) + key
    head += bytes(-len(head) % 4)
    blob = bytearray(head + fixed)
    struct.pack_into("<H", blob, 0, len(blob))
    return bytes(blob)


def resource_directory(rva: int, data: bytes) -> bytes:
    """A resource tree RT_VERSION(16) / 1 / 0x409 -> ``data`` (placed right after the tree at ``rva``)."""
    def directory(entry_id: int, target: int) -> bytes:
        return struct.pack("<IIHHHH", 0, 0, 0, 0, 0, 1) + struct.pack("<II", entry_id, target)

    tree = directory(16, 0x80000000 | 24) + directory(1, 0x80000000 | 48) + directory(0x409, 72)
    tree += struct.pack("<IIII", rva + 88, len(data), 0, 0)
    return tree + data


class NetworkMixin(BuilderBase):
    def tcpip_version(self) -> str:
        return f"{self.p.major}.{self.p.minor}.{self.p.build}.1202"

    def build_network(self) -> None:
        """Rewrite tcpip.sys's headers (CodeView, resources) and allocate the endpoints."""
        mod = next(m for m in self.kmods if m.name == "tcpip.sys")
        version = self.tcpip_version()
        pdb, guid, age = TCPIP_PDB
        spec = PeSpec(mod.name, "x64" if self.x64 else "x86", mod.base, mod.size,
                      [Section(".rdata", 0x1000, 0x1000, RDATA), Section(".text", 0x2000, mod.size - 0x2000, TEXT)],
                      entry_rva=0x2000, subsystem=1, dll=False, pdb_name=pdb, pdb_guid=guid, pdb_age=age)
        blobs = build_pe(spec)
        res = resource_directory(RESOURCE_RVA, version_resource(version))
        hdr = bytearray(blobs[0])
        (lfanew,) = struct.unpack_from("<I", hdr, 0x3C)
        dirs = lfanew + 0x18 + (0x70 if self.x64 else 0x60)
        struct.pack_into("<II", hdr, dirs + 2 * 8, RESOURCE_RVA, len(res))
        blobs[0] = bytes(hdr)
        blobs[RESOURCE_RVA] = res
        self.map_image(self.kas, mod.base, blobs, [], user=False)
        choice = choose(self.p.arch, self.p.major, self.p.minor, self.p.build)
        self.facts["tcpip"] = {"base": mod.base, "pdb_name": pdb, "guid_age": f"{guid}{age:X}", "version": version,
                               "layout": choice.name}
        self.facts["network"] = []
        if choice.layout is not None:
            self.build_endpoints(choice.layout)

    # ---- endpoints ------------------------------------------------------------------------------
    def build_endpoints(self, lay: dict[str, Any]) -> None:
        procs = {p["name"]: p for p in reversed(self.facts["processes"])}
        hidden = self.facts.get("unlinked_processes") or []
        owner = {n: procs[n] for n in ("System", "svchost.exe", "lsass.exe", "explorer.exe", "notepad.exe")}
        af_obj = {}
        for af in (AF_INET, AF_INET6):
            blob = bytearray(lay["inet_af_family"] + 8)
            struct.pack_into("<H", blob, lay["inet_af_family"], af)
            af_obj[af] = self.pool.put(bytes(blob), 16)
        self._af_obj = af_obj
        t = FILETIME_2021 + 600_000_000
        for i, (af, local, port, who) in enumerate([(AF_INET, None, 135, "svchost.exe"), (AF_INET6, None, 445, "System"),
                                                    (AF_INET, "127.0.0.1", 5939, "lsass.exe"),
                                                    (AF_INET6, "fe80::1c2d:3e4f:5a6b:7c8d", 3389, "svchost.exe")]):
            self.listener(lay, af, local, port, owner[who], t + i * 10_000_000)
        conns = [(AF_INET, "192.168.56.10", 49712, "93.184.216.34", 443, "ESTABLISHED", owner["explorer.exe"]),
                 (AF_INET6, "2001:db8::10", 49713, "2606:2800:220:1:248:1893:25c8:1946", 443, "ESTABLISHED",
                  owner["notepad.exe"]),
                 (AF_INET, "192.168.56.10", 49714, "10.0.0.5", 8443, "CLOSE_WAIT", owner["svchost.exe"])]
        if hidden:  # the unlinked process talks to its controller
            conns.append((AF_INET, "192.168.56.10", 49715, "203.0.113.66", 4444, "ESTABLISHED", hidden[0]))
        for i, c in enumerate(conns):
            self.endpoint(lay, *c, t + (10 + i) * 10_000_000)
        for i, (af, local, port, who) in enumerate([(AF_INET, None, 5353, "svchost.exe"),
                                                    (AF_INET, "192.168.56.10", 137, "System"),
                                                    (AF_INET6, None, 5355, "svchost.exe")]):
            self.udp(lay, af, local, port, owner[who], t + (20 + i) * 10_000_000)

    def _ptr_chain(self, path: list[int], target: int) -> list[tuple[int, int]]:
        """Objects for a pointer path ending at ``target``: returns (offset in the endpoint, pointer value)
        for the first hop; the intermediate structures are allocated here."""
        cur = target
        for off in reversed(path[1:]):
            holder = bytearray(off + self.ps)
            holder[off : off + self.ps] = self.pack_ptr(cur)
            cur = self.pool.put(bytes(holder), 16)
        return [(path[0], cur)]

    def _addr(self, af: int, text: str) -> int:
        raw = ipaddress.ip_address(text).packed
        return self.pool.put(raw + bytes(16 - len(raw)), 16)

    def _body(self, rec: dict[str, Any], extra: int, af: int, owner: dict[str, Any], when: int) -> bytearray:
        need = max([rec["size"], rec["owner"] + self.ps, rec["create_time"] + 8, extra])
        body = bytearray(need)
        body[rec["inet_af"] : rec["inet_af"] + self.ps] = self.pack_ptr(self._af_obj[af])
        body[rec["owner"] : rec["owner"] + self.ps] = self.pack_ptr(owner["eprocess"])
        struct.pack_into("<Q", body, rec["create_time"], when)
        return body

    def _row(self, proto: str, local: str, lport: int, remote: str, rport: int, state: str,
             owner: dict[str, Any], when: int, addr: int) -> None:
        self.facts["network"].append({"proto": proto, "local": local, "local_port": lport, "remote": remote,
                                      "remote_port": rport, "state": state, "pid": owner["pid"],
                                      "owner": owner["image_file_name"], "create_time": when, "address": addr})

    def _set_local(self, body: bytearray, path: list[int], af: int, local: str | None) -> None:
        if local is None:
            return
        for off, val in self._ptr_chain(path, self._addr(af, local)):
            body[off : off + self.ps] = self.pack_ptr(val)

    def _dual(self, af: int, local: str | None) -> list[tuple[str, str, str]]:
        """(version, local, any) rows of a listener / UDP endpoint as netstat shows them: unbound IPv6
        sockets are dual-stack (both an IPv4 and an IPv6 row)."""
        if local is not None:
            return [("v4", local, "0.0.0.0")] if af == AF_INET else [("v6", local, "::")]
        return [("v4", "0.0.0.0", "0.0.0.0")] + ([("v6", "::", "::")] if af == AF_INET6 else [])

    def listener(self, lay: dict[str, Any], af: int, local: str | None, port: int, owner: dict[str, Any],
                 when: int) -> None:
        rec = lay["tcp_listener"]
        body = self._body(rec, rec["port"] + 2, af, owner, when)
        struct.pack_into(">H", body, rec["port"], port)
        self._set_local(body, rec["local_addr"], af, local)
        va = pool_alloc(self.pool, self.kas, self.x64, b"TcpL", bytes(body))
        for ver, laddr, raddr in self._dual(af, local):
            self._row("TCP" + ver, laddr, port, raddr, 0, "LISTENING", owner, when, va)

    def endpoint(self, lay: dict[str, Any], af: int, local: str, lport: int, remote: str, rport: int, state: str,
                 owner: dict[str, Any], when: int) -> None:
        rec = lay["tcp_endpoint"]
        body = self._body(rec, rec["remote_port"] + 2, af, owner, when)
        struct.pack_into("<I", body, rec["state"], STATES[state])
        struct.pack_into(">HH", body, rec["local_port"], lport, rport)
        # local and remote share the first hop (_ADDRINFO): build it with both members
        lp, rp = rec["local_addr"], rec["remote_addr"]
        assert lp[0] == rp[0] and len(rp) == 2, "layout with separate address objects"
        (_, local_obj), = self._ptr_chain(lp[1:], self._addr(af, local))
        info = bytearray(max(lp[1], rp[1]) + self.ps)
        info[lp[1] : lp[1] + self.ps] = self.pack_ptr(local_obj)
        info[rp[1] : rp[1] + self.ps] = self.pack_ptr(self._addr(af, remote))
        body[lp[0] : lp[0] + self.ps] = self.pack_ptr(self.pool.put(bytes(info), 16))
        va = pool_alloc(self.pool, self.kas, self.x64, b"TcpE", bytes(body))
        self._row("TCPv4" if af == AF_INET else "TCPv6", local, lport, remote, rport, state, owner, when, va)

    def udp(self, lay: dict[str, Any], af: int, local: str | None, port: int, owner: dict[str, Any],
            when: int) -> None:
        rec = lay["udp_endpoint"]
        body = self._body(rec, max(rec["port"] + 2, rec["local_addr"][0] + self.ps), af, owner, when)
        struct.pack_into(">H", body, rec["port"], port)
        self._set_local(body, rec["local_addr"], af, local)
        va = pool_alloc(self.pool, self.kas, self.x64, b"UdpA", bytes(body))
        for ver, laddr, _ in self._dual(af, local):
            self._row("UDP" + ver, laddr, port, "*", 0, "", owner, when, va)
