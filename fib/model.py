"""Plain data the RIB hands the FIB: one forwarding entry per (table, prefix).

These classes are frozen and hashable. They hold only what a route means, in
the kernel's vocabulary (RTN_* types, next hops with weights, lightweight
tunnel encapsulation: seg6 towards a SID, seg6local at the SID), and never a
socket or a netlink handle.

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


class Seg6LocalAction(enum.IntEnum):
    """The SEG6_LOCAL_ACTION_* l3fab installs (<linux/seg6_local.h>); labels as iproute2's."""

    END_DX6 = 5   # decapsulate, forward the inner IPv6 packet towards nh6
    END_DX4 = 6   # decapsulate, forward the inner IPv4 packet towards nh4
    END_DT6 = 7   # decapsulate, look the inner IPv6 destination up in a table

    @property
    def label(self) -> str:
        return _ACTION_LABELS[self]

    @classmethod
    def parse(cls, value: "str | int | Seg6LocalAction") -> "Seg6LocalAction":
        if isinstance(value, str):
            for action, label in _ACTION_LABELS.items():
                if label.lower() == value.strip().lower():
                    return action
        elif isinstance(value, int) and not isinstance(value, bool):
            if value in cls._value2member_map_:
                return cls(value)
        raise ValueError(f"Seg6Local.action: {value!r} is not one of "
                         f"{', '.join(_ACTION_LABELS.values())}")


_ACTION_LABELS = {Seg6LocalAction.END_DX4: "End.DX4", Seg6LocalAction.END_DX6: "End.DX6",
                  Seg6LocalAction.END_DT6: "End.DT6"}
#: Which of nh4 / nh6 / table each action takes (exactly that one).
_ACTION_FIELD = {Seg6LocalAction.END_DX4: "nh4", Seg6LocalAction.END_DX6: "nh6",
                 Seg6LocalAction.END_DT6: "table"}


@dataclass(frozen=True, slots=True)
class Seg6Local:
    """``encap seg6local action <action> {nh4 A | nh6 A | table N}``: what a SID does on arrival.

    End.DX4/End.DX6 look ``nh4``/``nh6`` up in the main table, so each endpoint
    gets a unique handle with its own route: IPv4 ``handle/32 dev vm-e`` (the
    kernel then resolves the inner destination on vm-e), IPv6 ``handle/128 via
    <endpoint's link-local> dev vm-e`` (IPv6 resolves the handle itself unless
    the route has a gateway). End.DT6 looks the inner destination up in
    ``table``. ``nh4 0.0.0.0`` (route by the inner destination) is allowed.
    """

    action: Seg6LocalAction
    nh4: str | None = None
    nh6: str | None = None
    table: int | None = None

    def __post_init__(self) -> None:
        action = Seg6LocalAction.parse(self.action)
        object.__setattr__(self, "action", action)
        needed = _ACTION_FIELD[action]
        for name in ("nh4", "nh6", "table"):
            value = getattr(self, name)
            if name != needed:
                if value is not None:
                    raise ValueError(f"Seg6Local.{name}: {action.label} takes no {name} "
                                     f"(got {value!r})")
                continue
            if value is None:
                raise ValueError(f"Seg6Local.{name}: {action.label} needs {name}")
        if self.nh4 is not None:
            try:
                object.__setattr__(self, "nh4", str(ipaddress.IPv4Address(self.nh4)))
            except ValueError:
                raise ValueError(f"Seg6Local.nh4: {self.nh4!r} is not an IPv4 address") from None
        if self.nh6 is not None:
            try:
                object.__setattr__(self, "nh6", str(ipaddress.IPv6Address(self.nh6)))
            except ValueError:
                raise ValueError(f"Seg6Local.nh6: {self.nh6!r} is not an IPv6 address") from None
        table = self.table
        if table is not None and (isinstance(table, bool) or not isinstance(table, int)
                                  or not 1 <= table < 2**32):
            raise ValueError(f"Seg6Local.table: {table!r} is not a table id in 1..2^32-1")

    def __str__(self) -> str:
        field_name = _ACTION_FIELD[self.action]
        return f"seg6local action {self.action.label} {field_name} {getattr(self, field_name)}"


@dataclass(frozen=True, slots=True)
class FibNextHop:
    """One path of a route.

    ``gateway`` may be IPv6 for an IPv4 route (RFC 8950; the kernel's RTA_VIA);
    a link-local gateway needs ``ifname`` or ``ifindex``. ``ifname`` is resolved
    to an index in the namespace the FIB runs in; ``ifindex`` wins if both are
    given. ``weight`` counts only in ECMP groups (1-256). ``encap`` (seg6,
    towards a SID) and ``local`` (seg6local, at a SID; IPv6 routes only) exclude
    each other; ``local`` needs an interface.
    """

    gateway: str | None = None
    ifname: str | None = None
    ifindex: int | None = None
    weight: int = 1
    onlink: bool = False
    encap: Seg6Encap | None = None
    local: Seg6Local | None = None
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.local is not None:
            if not isinstance(self.local, Seg6Local):
                raise ValueError(f"FibNextHop.local: {self.local!r} is not a Seg6Local")
            if self.encap is not None:
                raise ValueError("FibNextHop.local: a next hop has either encap (seg6) or "
                                 "local (seg6local), not both")
            if self.ifname is None and self.ifindex is None:
                raise ValueError(f"FibNextHop.local: {self.local} needs ifname or ifindex")
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
                                                self.weight, self.onlink, self.encap,
                                                self.local)))

    def __hash__(self) -> int:  # cached: next hops key the FIB's encoding cache
        return self._hash

    def _sort_key(self) -> tuple[object, ...]:
        return (self.gateway or "", self.ifname or "", self.ifindex or 0, self.weight,
                self.onlink, self.encap.segs if self.encap else (),
                (self.local.action, self.local.nh4 or "", self.local.nh6 or "",
                 self.local.table or 0) if self.local else ())


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
        if net.version == 4 and any(nh.local is not None for nh in nhs):
            raise ValueError(f"FibRoute {self.prefix}: seg6local next hops need an IPv6 "
                             "prefix (the SID)")
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


def seg6local_route(table: int, sid_prefix: str, *, action: str | Seg6LocalAction,
                    nh4: str | None = None, nh6: str | None = None,
                    table_id: int | None = None, ifname: str | None = None,
                    ifindex: int | None = None, metric: int | None = None) -> FibRoute:
    """``SID/128 encap seg6local action <action> ... dev <ifname>`` in ``table``.

    ``sid_prefix`` is a SID (made a /128) or an IPv6 prefix; ``table_id`` is
    End.DT6's lookup table, ``table`` the one the route itself goes into.
    """
    prefix = sid_prefix if "/" in sid_prefix else f"{sid_prefix}/128"
    if ":" not in prefix:
        raise ValueError(f"seg6local_route.sid_prefix: {sid_prefix!r} is not an IPv6 SID")
    nh = FibNextHop(ifname=ifname, ifindex=ifindex,
                    local=Seg6Local(Seg6LocalAction.parse(action), nh4=nh4, nh6=nh6, table=table_id))
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
