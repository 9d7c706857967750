"""Plain data the RIB hands the FIB: one forwarding entry per (table, prefix).

These classes are frozen and hashable. They hold only what a route means, in
the kernel's vocabulary (RTN_* types, next hops with weights, lightweight
tunnel encapsulation), and never a socket or a netlink handle.

Values are normalised on construction so that two routes that mean the same
forwarding are equal: prefixes are canonical strings (``10.0.0.0/24``),
gateways are compressed address strings, ECMP next hops are sorted.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable

#: The rtm_protocol number l3fab tags its routes with. 186-197 are taken by
#: the kernel's and FRR's daemons (see /etc/iproute2/rt_protos.d/frr.conf:
#: 196 is FRR's "static"); 210 is unassigned. Register the name with
#: ``echo "210 l3fab" > /etc/iproute2/rt_protos.d/l3fab.conf``.
RTPROT_L3FAB = 210

#: The kernel's default metric for IPv6 routes given without one (IP6_RT_PRIO_USER).
IPV6_DEFAULT_METRIC = 1024


class RouteKind(enum.IntEnum):
    """The kernel route type (RTN_*) of a FIB entry."""

    UNICAST = 1
    BLACKHOLE = 6
    UNREACHABLE = 7


class Seg6Mode(enum.IntEnum):
    """SEG6_IPTUN_MODE_* of a seg6 lightweight tunnel."""

    ENCAP = 1
    ENCAP_RED = 3  # "encap.red": with one segment, plain IP-in-IPv6 without an SRH


@dataclass(frozen=True, slots=True)
class Seg6Encap:
    """``encap seg6 mode <mode> segs <segs>``: the segments in the order iproute2 takes them."""

    segs: tuple[str, ...]
    mode: Seg6Mode = Seg6Mode.ENCAP_RED
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        segs = (self.segs,) if isinstance(self.segs, str) else tuple(self.segs)
        if not segs:
            raise ValueError("Seg6Encap.segs: at least one segment is required")
        norm = []
        for seg in segs:
            try:
                norm.append(str(ipaddress.IPv6Address(seg)))
            except ValueError:
                raise ValueError(f"Seg6Encap.segs: {seg!r} is not an IPv6 address") from None
        object.__setattr__(self, "segs", tuple(norm))
        object.__setattr__(self, "mode", Seg6Mode(self.mode))
        object.__setattr__(self, "_hash", hash((self.segs, int(self.mode))))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class FibNextHop:
    """One path of a route.

    ``gateway`` may be IPv6 for an IPv4 route (RFC 8950; the kernel's RTA_VIA);
    a link-local gateway needs ``ifname`` or ``ifindex``. ``ifname`` is resolved
    to an index in the namespace the FIB runs in; ``ifindex`` wins if both are
    given. ``weight`` counts only in ECMP groups (1-256).
    """

    gateway: str | None = None
    ifname: str | None = None
    ifindex: int | None = None
    weight: int = 1
    onlink: bool = False
    encap: Seg6Encap | None = None
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.gateway is not None:
            try:
                gw = ipaddress.ip_address(self.gateway)
            except ValueError:
                raise ValueError(f"FibNextHop.gateway: {self.gateway!r} is not an IP address") from None
            object.__setattr__(self, "gateway", str(gw))
            if gw.is_link_local and self.ifname is None and self.ifindex is None:
                raise ValueError(f"FibNextHop.gateway: link-local {gw} needs ifname or ifindex")
        if not 1 <= self.weight <= 256:
            raise ValueError(f"FibNextHop.weight: {self.weight} is not in 1..256")
        if self.gateway is None and self.ifname is None and self.ifindex is None:
            raise ValueError("FibNextHop: needs a gateway, an ifname or an ifindex")
        object.__setattr__(self, "_hash", hash((self.gateway, self.ifname, self.ifindex,
                                                self.weight, self.onlink, self.encap)))

    def __hash__(self) -> int:  # cached: next hops key the FIB's encoding cache
        return self._hash

    def _sort_key(self) -> tuple:
        return (self.gateway or "", self.ifname or "", self.ifindex or 0, self.weight,
                self.onlink, self.encap.segs if self.encap else ())


@dataclass(frozen=True, slots=True)
class FibRoute:
    """The forwarding entry for ``prefix`` in kernel table ``table``.

    ``kind`` UNREACHABLE and BLACKHOLE carry no next hops. ``metric`` None
    means the kernel's default (0 for IPv4, 1024 for IPv6). ``encap`` is a
    shorthand for giving every next hop the same seg6 encapsulation.
    """

    table: int
    prefix: str
    nexthops: tuple[FibNextHop, ...] = ()
    kind: RouteKind = RouteKind.UNICAST
    metric: int | None = None

    def __post_init__(self) -> None:
        try:
            net = ipaddress.ip_network(self.prefix, strict=True)
        except ValueError as exc:
            raise ValueError(f"FibRoute.prefix: {self.prefix!r}: {exc}") from None
        object.__setattr__(self, "prefix", str(net))
        object.__setattr__(self, "kind", RouteKind(self.kind))
        if not 1 <= self.table < 2**32 or self.table == 255:  # 0 is "unspec", 255 "local"
            raise ValueError(f"FibRoute.table: {self.table} is not a usable table id")
        if self.metric is None:
            object.__setattr__(self, "metric", IPV6_DEFAULT_METRIC if net.version == 6 else 0)
        elif not 0 <= self.metric < 2**32:
            raise ValueError(f"FibRoute.metric: {self.metric} is not a u32")
        nhs = tuple(sorted(self.nexthops, key=FibNextHop._sort_key))
        if self.kind is RouteKind.UNICAST and not nhs:
            raise ValueError(f"FibRoute {self.prefix}: a unicast route needs next hops")
        if self.kind is not RouteKind.UNICAST and nhs:
            raise ValueError(f"FibRoute {self.prefix}: a {self.kind.name.lower()} route has "
                             "no next hops")
        if len(set(nhs)) != len(nhs):
            raise ValueError(f"FibRoute {self.prefix}: duplicate next hops {nhs}")
        object.__setattr__(self, "nexthops", nhs)

    @property
    def family(self) -> int:
        return 6 if ":" in self.prefix else 4

    @property
    def encap(self) -> Seg6Encap | None:
        """The encapsulation shared by all next hops, or None."""
        encaps = {nh.encap for nh in self.nexthops}
        return encaps.pop() if len(encaps) == 1 else None


def unicast(table: int, prefix: str, *nexthops: FibNextHop, metric: int | None = None
            ) -> FibRoute:
    return FibRoute(table, prefix, tuple(nexthops), RouteKind.UNICAST, metric)


def seg6_route(table: int, prefix: str, sid: str, *, ifname: str | None = None,
               ifindex: int | None = None, gateway: str | None = None,
               metric: int | None = None) -> FibRoute:
    """``prefix encap seg6 mode encap.red segs <sid> dev <ifname>``: IP-in-IPv6 to ``sid``."""
    nh = FibNextHop(gateway=gateway, ifname=ifname, ifindex=ifindex,
                    encap=Seg6Encap((sid,), Seg6Mode.ENCAP_RED))
    return FibRoute(table, prefix, (nh,), RouteKind.UNICAST, metric)


def unreachable(table: int, prefix: str, metric: int | None = None) -> FibRoute:
    return FibRoute(table, prefix, (), RouteKind.UNREACHABLE, metric)


def blackhole(table: int, prefix: str, metric: int | None = None) -> FibRoute:
    return FibRoute(table, prefix, (), RouteKind.BLACKHOLE, metric)


def by_prefix(routes: Iterable[FibRoute]) -> dict[str, FibRoute]:
    """``{prefix: route}``, refusing two routes for one prefix."""
    out: dict[str, FibRoute] = {}
    for route in routes:
        if route.prefix in out:
            raise ValueError(f"two routes for {route.prefix} in table {route.table}")
        out[route.prefix] = route
    return out
