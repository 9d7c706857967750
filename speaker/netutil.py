"""Socket options and link-local helpers for the transport (Linux).

TCP-MD5 (RFC 2385, ``TCP_MD5SIG``; keys for an address prefix with
``TCP_MD5SIG_EXT``), GTSM (RFC 5082: send with TTL/hop limit 255, require at least
254; the TTL of the SYN that opened a connection from ``TCP_SAVED_SYN``), TCP
keepalives, how much of what we wrote the peer has not acknowledged (``SIOCOUTQ``),
and unnumbered neighbour discovery: find the peer's IPv6 link-local address on an
interface by an ICMPv6 echo to ff02::1, and announce our own by router
advertisements (FRR learns interface peers from RAs).
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import select
import socket
import struct
import time
from typing import Protocol

TCP_MD5SIG = 14
TCP_MD5SIG_EXT = 32  # include/uapi/linux/tcp.h: struct tcp_md5sig with flags and prefix length
TCP_MD5SIG_FLAG_PREFIX = 0x1
TCP_SAVE_SYN = 27
TCP_SAVED_SYN = 28
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73
TCP_MD5SIG_MAXKEYLEN = 80
SIOCOUTQ = 0x5411  # TIOCOUTQ: octets in the send queue not yet acknowledged by the peer
GTSM_MIN_TTL = 254
LINK_LOCAL_PREFIX = ("fe80::", 10)

# TCP keepalives on BGP connections: the hold timer is the liveness check, but not
# when the negotiated hold time is 0, nor for a half-open connection that never
# got to the OPEN exchange.  A peer that vanished is found within
# KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT seconds (90).
KEEPALIVE_IDLE = 60
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3


class SocketLike(Protocol):
    """A socket, or asyncio's ``TransportSocket`` wrapper of one."""

    @property
    def family(self) -> int: ...

    def setsockopt(self, level: int, optname: int, value: int | bytes, /) -> None: ...

    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...

    def fileno(self) -> int: ...


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


def set_md5(sock: socket.socket, peer: str, password: str | None, prefixlen: int | None = None) -> None:
    """Install (or with ``None`` remove) the TCP-MD5 key for ``peer`` on ``sock``.

    ``prefixlen``: the key is for every address in ``peer``/``prefixlen`` (``TCP_MD5SIG_EXT``
    with ``TCP_MD5SIG_FLAG_PREFIX``); the kernel uses the longest matching key.  Linux
    scopes a key to an interface (``TCP_MD5SIG_FLAG_IFINDEX``) only for an L3 master
    (VRF) device, so a key for one link's link-local peers is scoped by the socket
    instead: a listener bound to that interface (see ``speaker.server``).
    """
    key = (password or "").encode()
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP-MD5 key of {len(key)} octets exceeds {TCP_MD5SIG_MAXKEYLEN}")
    st = _sockaddr_storage(peer, sock.family)
    flags, plen, optname = (0, 0, TCP_MD5SIG) if prefixlen is None else (TCP_MD5SIG_FLAG_PREFIX, prefixlen,
                                                                           TCP_MD5SIG_EXT)
    # struct tcp_md5sig: addr, flags u8, prefixlen u8, keylen u16, ifindex u32, key[80]
    opt = st + struct.pack("=BBHI", flags, plen, len(key), 0) + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\x00")
    sock.setsockopt(socket.IPPROTO_TCP, optname, opt)


def set_tcp_keepalive(sock: SocketLike, idle: int = KEEPALIVE_IDLE, interval: int = KEEPALIVE_INTERVAL,
                      count: int = KEEPALIVE_COUNT) -> None:
    """TCP keepalives on a connection: probe after ``idle`` s of silence, every
    ``interval`` s, give up after ``count`` unanswered probes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


def save_syn(sock: SocketLike) -> None:
    """Have the kernel keep the SYN of every connection a listener accepts (read with
    :func:`syn_hop_limit`)."""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_SAVE_SYN, 1)


def syn_hop_limit(sock: SocketLike) -> int | None:
    """The IPv4 TTL or IPv6 hop limit of the SYN that opened this accepted connection,
    when its listener had :func:`save_syn` (None when unknown).  The kernel hands the
    saved headers out once."""
    try:
        hdr = sock.getsockopt(socket.IPPROTO_TCP, TCP_SAVED_SYN, 512)
    except OSError:
        return None
    if len(hdr) >= 20 and hdr[0] >> 4 == 4:
        return hdr[8]
    if len(hdr) >= 40 and hdr[0] >> 4 == 6:
        return hdr[7]
    return None


def unacknowledged_octets(sock: SocketLike) -> int | None:
    """Octets written to this TCP socket that the peer has not acknowledged yet
    (``SIOCOUTQ``: sent and unsent alike), or None when the kernel does not say."""
    try:
        buf = fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\x00\x00\x00\x00")
    except OSError:
        return None
    return int(struct.unpack("=i", buf)[0])


def set_gtsm(sock: SocketLike, enabled: bool = True, enforce: bool = True) -> None:
    """RFC 5082: send with TTL 255 and (``enforce``) drop anything that arrives with less
    than 254.  On a listener, enforcing drops a far SYN before the handshake; a listener
    shared with neighbours that do not use GTSM gets ``enforce=False`` (its SYN-ACKs
    still leave with TTL 255) and the TTL of each connection's SYN is checked after
    accept (:func:`syn_hop_limit`)."""
    if not enabled:
        return
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        if enforce:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, GTSM_MIN_TTL)
        # IPv4-mapped peers on a dual-stack socket use the IPv4 options
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            if enforce:
                sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, GTSM_MIN_TTL)
        except OSError:
            pass
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        if enforce:
            sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, GTSM_MIN_TTL)


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
