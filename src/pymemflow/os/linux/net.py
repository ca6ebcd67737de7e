"""Sockets of Linux processes, reached from their fd tables (:mod:`files`): ``file->private_data`` is the
``struct socket``, ``socket->sk`` the ``struct sock`` whose ``sock_common`` holds family, state, addresses
and ports (``inet_sock``'s fields live there since 2.6.x), ``unix_sock`` the path and peer of a unix socket.

What ``ss``/``netstat -p`` show: protocol (tcp, tcp6, udp, udp6, unix, raw, netlink ...), local and remote
address and port, state (the kernel's TCP state names; unix sockets: their socket state), and every pid
holding the socket (``pid`` is the lowest, ``extra["pids"]`` all of them).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ...mem.view import MemoryView
from ..forensics import SocketInfo
from .files import OpenFile
from .kread import Layouts, read_obj

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET = 1, 2, 10, 16, 17
SOCK_RAW = 3
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
              7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}
"""include/net/tcp_states.h (what /proc/net/tcp's ``st`` column numbers)."""
SS_STATES = {0: "FREE", 1: "UNCONNECTED", 2: "CONNECTING", 3: "CONNECTED", 4: "DISCONNECTING"}
INET_PROTOCOLS = {6: "tcp", 17: "udp", 136: "udplite", 132: "sctp", 1: "icmp", 58: "icmp"}
UNIX_PATH_MAX = 108


@dataclass
class SockOffsets:
    sock_state: int
    sock_type: int
    sock_sk: int
    daddr: int
    rcv_saddr: int
    dport: int
    num: int
    family: int
    state: int
    v6_daddr: int | None
    v6_saddr: int | None
    protocol: int
    u_addr: int | None
    u_peer: int | None
    ua_len: int
    ua_name: int

    @classmethod
    def from_layouts(cls, t: Layouts) -> SockOffsets:
        o = t.offset_of
        sc = o("sock", "__sk_common")
        v6 = t.has_member("sock_common", "skc_v6_daddr")
        unix = t.has_member("unix_sock", "addr") and t.has_member("unix_sock", "peer")
        return cls(sock_state=o("socket", "state"), sock_type=o("socket", "type"), sock_sk=o("socket", "sk"),
                   daddr=sc + o("sock_common", "skc_daddr"), rcv_saddr=sc + o("sock_common", "skc_rcv_saddr"),
                   dport=sc + o("sock_common", "skc_dport"), num=sc + o("sock_common", "skc_num"),
                   family=sc + o("sock_common", "skc_family"), state=sc + o("sock_common", "skc_state"),
                   v6_daddr=sc + o("sock_common", "skc_v6_daddr") if v6 else None,
                   v6_saddr=sc + o("sock_common", "skc_v6_rcv_saddr") if v6 else None,
                   protocol=o("sock", "sk_protocol"),
                   u_addr=o("unix_sock", "addr") if unix else None, u_peer=o("unix_sock", "peer") if unix else None,
                   ua_len=o("unix_address", "len") if unix else 0, ua_name=o("unix_address", "name") if unix else 0)


class SocketReader:
    def __init__(self, kmem: MemoryView, t: Layouts) -> None:
        self.kmem = kmem
        self.off = SockOffsets.from_layouts(t)
        o = self.off
        ps = kmem.pointer_size
        self._span = max(o.daddr + 4, o.rcv_saddr + 4, o.dport + 2, o.num + 2, o.family + 2, o.state + 1,
                         (o.v6_daddr or 0) + 16, (o.v6_saddr or 0) + 16, o.protocol + 1,
                         (o.u_addr or 0) + ps, (o.u_peer or 0) + ps)

    def sockets(self, owners: list[tuple[int, str, OpenFile]], warnings: list[str]) -> list[SocketInfo]:
        """One record per socket among ``owners`` ((pid, process name, open file) of socket fds)."""
        by_sock: dict[int, SocketInfo] = {}
        for pid, name, f in owners:
            rec = by_sock.get(f.private_data)
            if rec is None:
                got = self._socket(f, warnings)
                if got is None:
                    continue
                rec = by_sock[f.private_data] = got
                rec.pid, rec.owner = pid, name
            pids = rec.extra.setdefault("pids", [])
            if pid not in pids:
                pids.append(pid)
            if pid < (rec.pid or 0):
                rec.pid, rec.owner = pid, name
        return sorted(by_sock.values(), key=lambda s: (s.protocol, s.local_port, s.local_address, s.pid or 0))

    def _socket(self, f: OpenFile, warnings: list[str]) -> SocketInfo | None:
        k, o = self.kmem, self.off
        so = read_obj(k, f.private_data, max(o.sock_state + 4, o.sock_type + 2, o.sock_sk + k.pointer_size))
        if not so.ok or not so.ptr(o.sock_sk):
            warnings.append(f"socket:[{f.inode}]: struct socket {f.private_data:#x} or its sock unreadable")
            return None
        sk = read_obj(k, so.ptr(o.sock_sk), self._span)
        if not sk.ok:
            warnings.append(f"socket:[{f.inode}]: struct sock {so.ptr(o.sock_sk):#x} unreadable")
            return None
        family = sk.u(o.family, "<H")
        extra = {"inode": f.inode, "family": family, "fd": f.fd}
        if family == AF_UNIX:
            ss = so.u32(o.sock_state)
            state = "LISTEN" if sk.data[o.state] == 10 else SS_STATES.get(ss, str(ss))
            peer = sk.ptr(o.u_peer) if o.u_peer is not None else 0
            return SocketInfo("unix", self._unix_path(sk.ptr(o.u_addr) if o.u_addr is not None else 0), 0,
                              self._unix_path(self._peer_addr(peer)), 0, state, address=sk.addr,
                              extra={**extra, "peer": peer})
        stype = so.u(o.sock_type, "<H")
        if family in (AF_INET, AF_INET6):
            proto = "raw" if stype == SOCK_RAW else INET_PROTOCOLS.get(sk.data[o.protocol], f"ip-{sk.data[o.protocol]}")
            if family == AF_INET6 and o.v6_saddr is not None and o.v6_daddr is not None:
                local: str = str(ipaddress.IPv6Address(sk.data[o.v6_saddr:o.v6_saddr + 16]))
                remote: str = str(ipaddress.IPv6Address(sk.data[o.v6_daddr:o.v6_daddr + 16]))
                proto += "6"
            else:
                local = str(ipaddress.IPv4Address(sk.data[o.rcv_saddr:o.rcv_saddr + 4]))
                remote = str(ipaddress.IPv4Address(sk.data[o.daddr:o.daddr + 4]))
            st = sk.data[o.state]
            return SocketInfo(proto, local, sk.u(o.num, "<H"), remote, sk.u(o.dport, ">H"),
                              TCP_STATES.get(st, str(st)), address=sk.addr, extra=extra)
        name = {AF_NETLINK: "netlink", AF_PACKET: "packet"}.get(family, f"family-{family}")
        return SocketInfo(name, "", 0, address=sk.addr, extra=extra)

    def _peer_addr(self, peer: int) -> int:
        if not peer or self.off.u_addr is None:
            return 0
        p = read_obj(self.kmem, peer + self.off.u_addr, self.kmem.pointer_size)
        return p.ptr(0) if p.ok else 0

    def _unix_path(self, addr: int) -> str:
        """``sun_path`` of a ``unix_address`` ('' when unbound; ``@name`` for the abstract namespace)."""
        if not addr:
            return ""
        o = self.off
        a = read_obj(self.kmem, addr, o.ua_name + 2 + UNIX_PATH_MAX)
        if not a.ok:
            return ""
        n = min(max(a.u32(o.ua_len) - 2, 0), UNIX_PATH_MAX)
        raw = a.data[o.ua_name + 2:o.ua_name + 2 + n]
        if raw[:1] == b"\0":
            return "@" + raw[1:].decode("utf-8", "replace")
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
