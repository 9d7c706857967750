"""rtnetlink route messages, encoded and decoded with :mod:`struct` (sans-IO).

No sockets here: this module turns :class:`~fib.model.FibRoute` into the bytes
of RTM_NEWROUTE/RTM_DELROUTE messages and RTM_NEWROUTE dump messages back into
comparable values. :mod:`fib.kernel` moves the bytes.

Two plain values make a route comparable between what l3fab wants and what the
kernel reports, without building objects per dumped route:

* a **key** ``(table, af, dst, dst_len, metric)``: what identifies a route in
  the kernel (metric included: two metrics are two routes);
* a **signature** ``(kind, nexthops)``: what it forwards to. Each next hop is
  ``(gw_af, gw, oif, weight, onlink, encap)`` with ``gw_af`` 0 for none, and
  ``encap`` ``(encap type, RTA_ENCAP payload)`` or None. The kernel stores a
  seg6 tunnel's SRH as given and dumps it back byte for byte, so comparing the
  payload is exact and costs no decoding. A seg6local payload is dumped as
  the kernel's attributes in type order, which is how it is encoded here; its
  SEG6_LOCAL_COUNTERS (statistics, present with ``count``) are dropped when
  parsing. Single-path routes have weight 1; next hops are sorted.

Layouts follow <linux/netlink.h>, <linux/rtnetlink.h>, <linux/lwtunnel.h>,
<linux/seg6_iptunnel.h>, <linux/seg6.h> and <linux/seg6_local.h>.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable, Iterator, NamedTuple

from l3fab.fib.model import (FibNextHop, FibRoute, RouteKind, Seg6Encap, Seg6Local,
                       Seg6LocalAction, Seg6Mode, RTPROT_L3FAB)

# netlink
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_DUMP = 0x300
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 10, 11, 12

# rtnetlink
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100  # multicast groups
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 1, 4, 5, 6
RTA_MULTIPATH, RTA_TABLE, RTA_VIA = 9, 15, 18
RTA_ENCAP_TYPE, RTA_ENCAP = 21, 22
RTNH_F_ONLINK = 0x4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
LWTUNNEL_ENCAP_SEG6, LWTUNNEL_ENCAP_SEG6_LOCAL = 5, 7
SEG6_IPTUNNEL_SRH = 1
SEG6_LOCAL_ACTION, SEG6_LOCAL_TABLE, SEG6_LOCAL_NH4, SEG6_LOCAL_NH6 = 1, 3, 4, 5
SEG6_LOCAL_COUNTERS = 10
IPV6_SRCRT_TYPE_4 = 4
NLA_TYPE_MASK = 0x3FFF

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
_ADDR_LEN: dict[int, int] = {AF_INET: 4, AF_INET6: 16}

NLMSGHDR = struct.Struct("=IHHII")            # len, type, flags, seq, pid
RTMSG = struct.Struct("=BBBBBBBBI")           # family dst_len src_len tos table protocol scope type flags
NL_RT = struct.Struct("=IHHIIBBBBBBBBI")      # the two above, back to back
RTATTR = struct.Struct("=HH")
RTNEXTHOP = struct.Struct("=HBBi")            # len, flags, hops (weight - 1), ifindex
U32 = struct.Struct("=I")
I32 = struct.Struct("=i")
ERRHDR = struct.Struct("=IHHIIi")             # nlmsghdr + nlmsgerr.error
IFINDEX_FLAGS = struct.Struct("=iI")          # ifinfomsg.ifi_index, .ifi_flags (at +4)
HDR_LEN = NLMSGHDR.size + RTMSG.size          # 28

RouteKey = tuple[int, int, bytes, int, int]  # (table, af, dst, dst_len, metric)
Encap = tuple[int, bytes]  # (lwtunnel encap type, RTA_ENCAP payload)
NextHopSig = tuple[int, bytes, int, int, bool, Encap | None]  # (gw_af, gw, oif, weight, onlink, encap)
Signature = tuple[int, tuple[NextHopSig, ...]]  # (kind, next hops)


class FibRouteError(ValueError):
    """A route cannot be encoded; the message names the route and the field."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def rtattr(kind: int, payload: bytes) -> bytes:
    return RTATTR.pack(4 + len(payload), kind) + payload + b"\0" * (_align(len(payload)) - len(payload))


# -- encoding ----------------------------------------------------------------

def seg6_srh(encap: Seg6Encap) -> bytes:
    """seg6_iptunnel_encap {mode; ipv6_sr_hdr} as iproute2 builds it (segments reversed)."""
    segs = [socket.inet_pton(AF_INET6, s) for s in encap.segs]
    n = len(segs)
    if encap.mode is not Seg6Mode.ENCAP_RED and encap.mode is not Seg6Mode.ENCAP:
        raise FibRouteError(f"Seg6Encap.mode: {encap.mode!r} is not supported")
    srh = struct.pack("=BBBBBBH", 0, 2 * n, IPV6_SRCRT_TYPE_4, n - 1, n - 1, 0, 0)
    return I32.pack(int(encap.mode)) + srh + b"".join(reversed(segs))


def seg6local_payload(local: Seg6Local) -> bytes:
    """The SEG6_LOCAL_* attributes of ``local``, in type order as the kernel dumps them."""
    out = rtattr(SEG6_LOCAL_ACTION, U32.pack(int(local.action)))
    if local.table is not None:
        out += rtattr(SEG6_LOCAL_TABLE, U32.pack(local.table))
    if local.nh4 is not None:
        out += rtattr(SEG6_LOCAL_NH4, socket.inet_pton(AF_INET, local.nh4))
    if local.nh6 is not None:
        out += rtattr(SEG6_LOCAL_NH6, socket.inet_pton(AF_INET6, local.nh6))
    return out


def _encap_attrs(nh: FibNextHop) -> tuple[bytes, Encap | None]:
    """(RTA_ENCAP_TYPE + RTA_ENCAP attributes, encap signature) of a next hop."""
    if nh.encap is not None:
        etype, payload = LWTUNNEL_ENCAP_SEG6, rtattr(SEG6_IPTUNNEL_SRH, seg6_srh(nh.encap))
    elif nh.local is not None:
        etype, payload = LWTUNNEL_ENCAP_SEG6_LOCAL, seg6local_payload(nh.local)
    else:
        return b"", None
    return (rtattr(RTA_ENCAP_TYPE, struct.pack("=H", etype))
            + rtattr(RTA_ENCAP, payload)), (etype, payload)


def _gateway(route_af: int, gateway: str | None) -> tuple[int, bytes]:
    if gateway is None:
        return 0, b""
    gw_af = AF_INET6 if ":" in gateway else AF_INET
    if gw_af == AF_INET and route_af == AF_INET6:
        raise FibRouteError(f"IPv6 route via IPv4 gateway {gateway} is not supported")
    return gw_af, socket.inet_pton(gw_af, gateway)


def _gw_attr(route_af: int, gw_af: int, gw: bytes) -> bytes:
    if not gw_af:
        return b""
    if gw_af != route_af:  # RFC 8950: IPv4 route, IPv6 next hop
        return rtattr(RTA_VIA, struct.pack("=H", gw_af) + gw)
    return rtattr(RTA_GATEWAY, gw)


class Prepared(NamedTuple):
    """A desired route, encoded once: its key, its signature and the message after nlmsghdr.

    A NamedTuple rather than a frozen dataclass: one is built per route, and this is
    four times cheaper to build.
    """

    route: FibRoute
    key: RouteKey
    sig: Signature
    body: bytes      # rtmsg + attributes of RTM_NEWROUTE (nlmsghdr is added per send)


_DST_HDR: dict[int, bytes] = {AF_INET: RTATTR.pack(8, RTA_DST), AF_INET6: RTATTR.pack(20, RTA_DST)}


class Encoder:
    """Turns routes into :class:`Prepared`; what follows RTA_DST is cached per next-hop set."""

    def __init__(self, ifindex: Callable[[str], int], protocol: int = RTPROT_L3FAB,
                 cache_size: int = 65536):
        self.ifindex = ifindex
        self.protocol = protocol
        self.cache_size = cache_size
        self._cache: dict[tuple[object, ...], tuple[bytes, Signature, bytes]] = {}

    def clear(self) -> None:
        self._cache.clear()

    def prepare(self, route: FibRoute) -> Prepared:
        net, _, plen_s = route.prefix.partition("/")
        af = AF_INET6 if ":" in net else AF_INET
        dst = socket.inet_pton(af, net)
        plen = int(plen_s)
        ck = (route.nexthops, route.kind, route.table, route.metric, af, plen)
        hit = self._cache.get(ck)
        if hit is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            hit = self._cache[ck] = self._encode(route, af, plen)
        head, sig, tail = hit
        metric = route.metric
        assert metric is not None  # FibRoute.__post_init__ fills in the kernel's default
        return Prepared(route, (route.table, af, dst, plen, metric), sig, head + dst + tail)

    def _oif(self, route: FibRoute, nh: FibNextHop) -> int:
        if nh.ifindex is not None:
            return nh.ifindex
        if nh.ifname is None:
            return 0
        try:
            return self.ifindex(nh.ifname)
        except (KeyError, OSError):
            raise FibRouteError(f"route {route.prefix} table {route.table}: no interface "
                                f"{nh.ifname!r}") from None

    def _encode(self, route: FibRoute, af: int, plen: int) -> tuple[bytes, Signature, bytes]:
        """(rtmsg + RTA_DST header, signature, attributes after the destination)."""
        nhs: list[tuple[int, bytes, int, int, bool, Encap | None, bytes]] = []
        for nh in route.nexthops:
            gw_af, gw = _gateway(af, nh.gateway)
            enc_attrs, enc_sig = _encap_attrs(nh)
            nhs.append((gw_af, gw, self._oif(route, nh), nh.weight, nh.onlink, enc_sig, enc_attrs))
        nhs.sort(key=_nh_order)
        single = len(nhs) == 1
        sig = (int(route.kind), tuple((a, g, o, 1 if single else w, ol, es)
                                      for a, g, o, w, ol, es, _ea in nhs))
        attrs = [rtattr(RTA_TABLE, U32.pack(route.table)), rtattr(RTA_PRIORITY, U32.pack(route.metric))]
        flags, scope = 0, RT_SCOPE_UNIVERSE
        if single:
            gw_af, gw, oif, _w, onlink, _es, enc_attrs = nhs[0]
            attrs.append(_gw_attr(af, gw_af, gw))
            if oif:
                attrs.append(rtattr(RTA_OIF, U32.pack(oif)))
            attrs.append(enc_attrs)
            flags = RTNH_F_ONLINK if onlink else 0
            # iproute2 sends IPv6 routes with scope universe (the kernel has no IPv6
            # route scope and dumps universe); IPv4 device routes are scope link.
            scope = RT_SCOPE_UNIVERSE if gw_af or af == AF_INET6 else RT_SCOPE_LINK
        elif nhs:
            parts = []
            for gw_af, gw, oif, weight, onlink, _es, enc_attrs in nhs:
                inner = _gw_attr(af, gw_af, gw) + enc_attrs
                parts.append(RTNEXTHOP.pack(8 + len(inner), RTNH_F_ONLINK if onlink else 0,
                                            weight - 1, oif) + inner)
            attrs.append(rtattr(RTA_MULTIPATH, b"".join(parts)))
        head = RTMSG.pack(af, plen, 0, 0, route.table if route.table < 256 else 0, self.protocol,
                          scope, int(route.kind), flags) + _DST_HDR[af]
        return head, sig, b"".join(attrs)


def prepare(route: FibRoute, ifindex: Callable[[str], int] = socket.if_nametoindex,
            protocol: int = RTPROT_L3FAB) -> Prepared:
    """Encode one route (uncached; :class:`Encoder` caches)."""
    return Encoder(ifindex, protocol).prepare(route)


def _nh_order(nh: tuple[Any, ...]) -> tuple[int, bytes, int, int, bool, bytes]:
    return (nh[0], nh[1], nh[2], nh[3], nh[4], nh[5][1] if nh[5] else b"")


def newroute(body: bytes, seq: int, replace: bool) -> bytes:
    """RTM_NEWROUTE with ack: create-only (EXCL) unless ``replace`` (a route l3fab owns)."""
    return NLMSGHDR.pack(16 + len(body), RTM_NEWROUTE, NEW_REPLACE if replace else NEW_CREATE,
                         seq, 0) + body


NEW_REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE
NEW_CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL


# RTM_DELROUTE: nlmsghdr, rtmsg, RTA_DST, RTA_TABLE, RTA_PRIORITY in one pack.
_DEL = {af: struct.Struct(f"=IHHIIBBBBBBBBIHH{n}sHHIHHI") for af, n in _ADDR_LEN.items()}


def delroute(key: RouteKey, seq: int, protocol: int = RTPROT_L3FAB) -> bytes:
    """RTM_DELROUTE for ``key``; the kernel deletes it only if its protocol is ``protocol``."""
    table, af, dst, plen, metric = key
    packer = _DEL[af]
    return packer.pack(packer.size, RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq, 0,
                       af, plen, 0, 0, table if table < 256 else 0, protocol, RT_SCOPE_NOWHERE,
                       0, 0, 4 + len(dst), RTA_DST, dst, 8, RTA_TABLE, table, 8, RTA_PRIORITY,
                       metric)


def getroute_dump(af: int, seq: int, protocol: int = 0, table: int = 0) -> bytes:
    """RTM_GETROUTE dump request; with NETLINK_GET_STRICT_CHK the kernel filters by table/protocol."""
    attrs = rtattr(RTA_TABLE, U32.pack(table)) if table else b""
    return NL_RT.pack(HDR_LEN + len(attrs), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0,
                      af, 0, 0, 0, table if 0 < table < 256 else 0, protocol, 0, 0, 0) + attrs


# -- decoding ----------------------------------------------------------------

def seg6_segments(payload: bytes) -> tuple[int, tuple[str, ...]] | None:
    """(mode, segments in iproute2's order) from a seg6 RTA_ENCAP payload."""
    off = 0
    while off + 4 <= len(payload):
        alen, atype = RTATTR.unpack_from(payload, off)
        if alen < 4:
            break
        if atype & NLA_TYPE_MASK == SEG6_IPTUNNEL_SRH and alen >= 16:
            mode = I32.unpack_from(payload, off + 4)[0]
            n = payload[off + 9] // 2
            segs = [socket.inet_ntop(AF_INET6, payload[off + 16 + 16 * i: off + 32 + 16 * i])
                    for i in range(n)]
            return mode, tuple(reversed(segs))
        off += _align(alen)
    return None


def seg6local_value(payload: bytes) -> Seg6Local:
    """The :class:`Seg6Local` a seg6local RTA_ENCAP payload stands for.

    Raises ValueError for actions or attributes l3fab does not model.
    """
    a = _attrs(payload, 0, len(payload))
    a.pop(SEG6_LOCAL_COUNTERS, None)
    action = a.pop(SEG6_LOCAL_ACTION, None)
    if action is None or len(action) != 4:
        raise ValueError(f"seg6local payload {payload.hex()}: no SEG6_LOCAL_ACTION")
    action_no = U32.unpack(action)[0]
    try:
        action_v = Seg6LocalAction(action_no)
    except ValueError:
        raise ValueError(f"seg6local action {action_no} is not one l3fab models") from None
    table = a.pop(SEG6_LOCAL_TABLE, None)
    nh4 = a.pop(SEG6_LOCAL_NH4, None)
    nh6 = a.pop(SEG6_LOCAL_NH6, None)
    if a:
        raise ValueError(f"seg6local {action_v.label}: attributes {sorted(a)} are not modelled")
    return Seg6Local(action_v, nh4=socket.inet_ntop(AF_INET, nh4) if nh4 else None,
                     nh6=socket.inet_ntop(AF_INET6, nh6) if nh6 else None,
                     table=U32.unpack(table)[0] if table else None)


def _without_counters(payload: bytes) -> bytes:
    """A seg6local payload minus SEG6_LOCAL_COUNTERS (they change with every packet)."""
    p, end, keep = 0, len(payload), []
    while p + 4 <= end:
        alen, atype = RTATTR.unpack_from(payload, p)
        if alen < 4:
            break
        step = _align(alen)
        if atype & NLA_TYPE_MASK != SEG6_LOCAL_COUNTERS:
            keep.append(payload[p:p + step])
        p += step
    return b"".join(keep)


_U32_UNPACK = U32.unpack_from


def _attrs(buf: bytes, p: int, end: int) -> dict[int, bytes]:
    """{type: payload} of the attributes in buf[p:end] (last wins)."""
    out = {}
    while p + 4 <= end:
        alen = buf[p] | (buf[p + 1] << 8)
        if alen < 4:
            break
        out[buf[p + 2] | ((buf[p + 3] & 0x3F) << 8)] = buf[p + 4: p + alen]
        p += (alen + 3) & ~3
    return out


def _nexthop(af: int, a: dict[int, bytes], oif: int, weight: int, flags: int) -> NextHopSig:
    gw_af: int
    gw: bytes
    gateway = a.get(RTA_GATEWAY)
    if gateway is not None:
        gw_af, gw = af, gateway
    else:
        via = a.get(RTA_VIA)
        gw_af, gw = (via[0] | (via[1] << 8), via[2:]) if via else (0, b"")
    encap: Encap | None = None
    enc = a.get(RTA_ENCAP)
    if enc is not None:
        raw_type = a.get(RTA_ENCAP_TYPE, b"\0\0")
        etype = raw_type[0] | (raw_type[1] << 8)
        if etype == LWTUNNEL_ENCAP_SEG6_LOCAL:
            enc = _without_counters(enc)
        encap = (etype, enc)
    return (gw_af, gw, oif, weight, bool(flags & RTNH_F_ONLINK), encap)


def parse_route(buf: bytes, off: int, end: int) -> tuple[RouteKey, Signature, int]:
    """Decode the RTM_NEWROUTE at buf[off:end] (off at nlmsghdr): (key, signature, protocol)."""
    af, plen, table, protocol, kind, rflags = (buf[off + 16], buf[off + 17], buf[off + 20],
                                               buf[off + 21], buf[off + 23], buf[off + 24])
    a = _attrs(buf, off + HDR_LEN, end)
    t = a.get(RTA_TABLE)
    if t is not None:
        table = _U32_UNPACK(t)[0]
    m = a.get(RTA_PRIORITY)
    dst = a.get(RTA_DST) or bytes(_ADDR_LEN.get(af, 0))
    key: RouteKey = (table, af, dst, plen, _U32_UNPACK(m)[0] if m else 0)
    if kind != RouteKind.UNICAST:
        return key, (kind, ()), protocol
    mp = a.get(RTA_MULTIPATH)
    if mp is None:
        o = a.get(RTA_OIF)
        return key, (kind, (_nexthop(af, a, _U32_UNPACK(o)[0] if o else 0, 1, rflags),)), protocol
    out: list[NextHopSig] = []
    q = 0
    while q + 8 <= len(mp):
        nlen, nflags, hops, nif = RTNEXTHOP.unpack_from(mp, q)
        if nlen < 8:
            break
        out.append(_nexthop(af, _attrs(mp, q + 8, q + nlen), nif, hops + 1, nflags))
        q += (nlen + 3) & ~3
    if len(out) == 1:
        out = [out[0][:3] + (1,) + out[0][4:]]
    return key, (kind, tuple(sorted(out, key=_nh_order))), protocol


def iter_messages(buf: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(offset, length, type, flags, seq) of each netlink message in ``buf``."""
    off, n = 0, len(buf)
    unpack = NLMSGHDR.unpack_from
    while off + 16 <= n:
        mlen, mtype, mflags, seq, _pid = unpack(buf, off)
        if mlen < 16 or off + mlen > n:
            break
        yield off, mlen, mtype, mflags, seq
        off += (mlen + 3) & ~3


def interface_events(buf: bytes) -> Iterator[tuple[int, int, int]]:
    """(type, ifindex, ifi_flags) of each link or address notification in ``buf``.

    Link messages (RTM_NEWLINK, RTM_DELLINK) carry an ifinfomsg, address messages
    (RTM_NEWADDR, RTM_DELADDR) an ifaddrmsg, whose flags are not interface flags
    (given as 0). Other and truncated messages are skipped.
    """
    for off, mlen, mtype, _flags, _seq in iter_messages(buf):
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and mlen >= 32:
            index, flags = IFINDEX_FLAGS.unpack_from(buf, off + 20)
            yield mtype, index, flags
        elif mtype in (RTM_NEWADDR, RTM_DELADDR) and mlen >= 24:
            yield mtype, U32.unpack_from(buf, off + 20)[0], 0


def error_code(buf: bytes, off: int) -> int:
    """The (positive) errno of the NLMSG_ERROR at ``off``; 0 is an ack."""
    err: int = I32.unpack_from(buf, off + 16)[0]
    return -err


# -- back to model values (inspection, tests) ----------------------------------

def to_route(key: RouteKey, sig: Signature) -> FibRoute:
    """The :class:`FibRoute` a (key, signature) pair stands for (interfaces by index)."""
    table, af, dst, plen, metric = key
    kind, nhs = sig
    prefix = f"{socket.inet_ntop(af, dst)}/{plen}"
    hops = []
    for gw_af, gw, oif, weight, onlink, encap in nhs:
        enc: Seg6Encap | None = None
        local: Seg6Local | None = None
        if encap is not None and encap[0] == LWTUNNEL_ENCAP_SEG6:
            parsed = seg6_segments(encap[1])
            assert parsed is not None, f"route {prefix} table {table}: seg6 encap without SRH"
            mode, segs = parsed
            enc = Seg6Encap(segs, Seg6Mode(mode))
        elif encap is not None and encap[0] == LWTUNNEL_ENCAP_SEG6_LOCAL:
            try:
                local = seg6local_value(encap[1])
            except ValueError as exc:
                raise ValueError(f"route {prefix} table {table}: {exc}") from None
        hops.append(FibNextHop(gateway=socket.inet_ntop(gw_af, gw) if gw_af else None,
                               ifindex=oif or None, weight=weight, onlink=onlink, encap=enc,
                               local=local))
    return FibRoute(table, prefix, tuple(hops), RouteKind(kind), metric)


def sig_matches(desired: Signature, actual: Signature) -> bool:
    """Whether the kernel's ``actual`` forwarding is what ``desired`` asks for.

    A desired next hop without an interface (oif 0) accepts whatever interface
    the kernel resolved its gateway to.
    """
    if desired == actual:
        return True
    d_kind, d_nhs = desired
    a_kind, a_nhs = actual
    if d_kind != a_kind or len(d_nhs) != len(a_nhs):
        return False
    wild = {(nh[0], nh[1]) for nh in d_nhs if nh[2] == 0}
    if not wild:
        return False
    relaxed = [(a, g, 0 if (a, g) in wild else o, w, ol, e) for a, g, o, w, ol, e in a_nhs]
    return tuple(sorted(relaxed, key=_nh_order)) == d_nhs
