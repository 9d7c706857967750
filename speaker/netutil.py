"""Socket options and link-local helpers for the transport (Linux).

TCP-MD5 (RFC 2385, ``TCP_MD5SIG``), GTSM (RFC 5082: send with TTL/hop limit 255,
require at least 254), and unnumbered neighbour discovery: find the peer's IPv6
link-local address on an interface by an ICMPv6 echo to ff02::1, and announce our
own by router advertisements (FRR learns interface peers from RAs).
"""
from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time

TCP_MD5SIG = 14
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73
TCP_MD5SIG_MAXKEYLEN = 80


def _sockaddr_storage(address: str, family: int) -> bytes:
    """A ``struct sockaddr_storage`` (128 octets) for ``address``."""
    if family == socket.AF_INET6:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.version == 4:
            ip = ipaddress.IPv6Address(f"::ffff:{ip}")
        raw = struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, ip.packed, 0)
    else:
        raw = struct.pack("=HH4s", socket.AF_INET, 0, ipaddress.IPv4Address(address).packed)
    return raw.ljust(128, b"\x00")


def set_md5(sock: socket.socket, peer: str, password: str | None) -> None:
    """Install (or with ``None`` remove) the TCP-MD5 key for ``peer`` on ``sock``."""
    key = (password or "").encode()
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP-MD5 key of {len(key)} octets exceeds {TCP_MD5SIG_MAXKEYLEN}")
    st = _sockaddr_storage(peer, sock.family)
    # struct tcp_md5sig: addr, flags u8, prefixlen u8, keylen u16, ifindex u32, key[80]
    opt = st + struct.pack("=BBHI", 0, 0, len(key), 0) + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\x00")
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, opt)


def set_gtsm(sock: socket.socket, enabled: bool = True, enforce: bool = True) -> None:
    """RFC 5082: send with TTL 255 and (``enforce``) drop anything that arrives with less
    than 254.  A listener gets ``enforce=False``: its SYN-ACKs must leave with TTL 255
    for GTSM peers, but it must not refuse peers that do not use GTSM."""
    if not enabled:
        return
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        if enforce:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, 254)
        # IPv4-mapped peers on a dual-stack socket use the IPv4 options
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            if enforce:
                sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, 254)
        except OSError:
            pass
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        if enforce:
            sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, 254)


def ifindex(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


def ifname(index: int) -> str | None:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return None


def local_link_locals(interface: str) -> set[str]:
    """This host's IPv6 link-local addresses on ``interface`` (from /proc)."""
    out = set()
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5] == interface:
                    addr = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
                    if addr.is_link_local:
                        out.add(str(addr))
    except OSError:
        pass
    return out


def _checksum_free_echo(ident: int, seq: int) -> bytes:
    # The kernel fills in the ICMPv6 checksum on raw ICMPv6 sockets.
    return struct.pack("!BBHHH", 128, 0, 0, ident, seq) + b"l3fab"


def discover_link_local_peer(interface: str, timeout: float = 0.5) -> str | None:
    """Find the other end's link-local address on a point-to-point ``interface``.

    Sends an ICMPv6 echo request to ff02::1 on the link and returns the first
    link-local source that is not one of ours.  Blocking; run it in a thread.
    Needs CAP_NET_RAW.
    """
    idx = ifindex(interface)
    if not idx:
        return None
    mine = local_link_locals(interface)
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        s.setblocking(False)
        try:
            s.sendto(_checksum_free_echo(ident, 1), ("ff02::1", 0, 0, idx))
        except OSError:
            return None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([s], [], [], left)
            if not r:
                return None
            try:
                data, addr = s.recvfrom(1500)
            except BlockingIOError:
                continue
            src = addr[0].split("%")[0]
            if data[:1] == b"\x81" and src not in mine and ipaddress.IPv6Address(src).is_link_local:
                return src


def send_router_advertisement(interface: str) -> bool:
    """Send one RA with router lifetime 0 on ``interface`` (RFC 4861 section 4.2).

    Lifetime 0 means "not a default router"; FRR's zebra still records the source as
    a neighbour and bgpd uses it for ``neighbor IFACE interface`` sessions.
    """
    idx = ifindex(interface)
    if not idx:
        return False
    # type 134, code 0, checksum, cur hop limit 64, flags 0, lifetime 0, reachable 0, retrans 0
    ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            s.sendto(ra, ("ff02::1", 0, 0, idx))
        return True
    except OSError:
        return False
