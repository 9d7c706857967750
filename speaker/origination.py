"""Routes this speaker originates (from the config's ``networks`` or the API):
parsing operator input into :class:`LocalRoute` records with one-line errors, and the
next-hop-self address for a session.  Export rules live in :mod:`speaker.table.export`.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from .errors import RouteSpecError
from .table.path import LOCAL, Path
from .wire.attributes import (
    AsPath,
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    LocalPref,
    Med,
    MpNextHop,
    Origin,
    ORIGIN_WORDS,
    PathAttribute,
    parse_community,
)
from .wire.constants import IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6, Family
from .wire.extcommunity import ExtCommunity, route_target
from .wire.nlri import Prefix, VpnPrefix
from .wire.rd import RouteDistinguisher

T = TypeVar("T")


@dataclass(frozen=True)
class LocalRoute:
    family: Family
    nlri: Prefix | VpnPrefix
    next_hop: MpNextHop | None  # None: next-hop-self
    attributes: tuple[PathAttribute, ...]

    @property
    def key(self) -> Prefix | VpnPrefix:
        n = self.nlri
        return VpnPrefix(n.rd, n.prefix) if type(n) is VpnPrefix else n

    def path(self) -> Path:
        """The Loc-RIB path (source ``local``)."""
        labels = self.nlri.labels if type(self.nlri) is VpnPrefix else ()
        return Path(self.family, self.key, self.next_hop, self.attributes, labels, LOCAL)


def vpn_route(prefix: str, rd: str, route_targets: tuple[str, ...], label: int, next_hop: str) -> LocalRoute:
    """A VPN route built by code (the tenant plane): the same record :func:`parse_route`
    makes from operator input, without going through strings it would re-parse."""
    pfx = Prefix.parse(prefix)
    family = VPNV4 if pfx.afi == 1 else VPNV6
    attrs = _attributes((None, None, None, None, None, tuple(route_targets), None, None))
    return LocalRoute(family, VpnPrefix(_parse_rd(rd), pfx, (label,)), _next_hop(next_hop), attrs)


def unicast_route(prefix: str) -> LocalRoute:
    """A unicast route with next-hop-self (the locator)."""
    pfx = Prefix.parse(prefix)
    return LocalRoute(IPV4_UNICAST if pfx.afi == 1 else IPV6_UNICAST, pfx, None, _attributes((None,) * 8))


def _field(spec: dict[str, Any], name: str, fn: Callable[[Any], T], where: str) -> T:
    try:
        return fn(spec[name])
    except (ValueError, TypeError) as e:
        raise RouteSpecError(f"{where}.{name}: {e}") from None


def _list(v: object) -> list[Any]:
    if isinstance(v, (list, tuple)):
        return list(v)
    return [x for x in str(v).replace(",", " ").split() if x]


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_KNOWN_FIELDS = frozenset({"prefix", "family", "rd", "labels", "label", "next_hop", "origin", "as_path", "med",
                           "local_pref", "communities", "route_targets", "ext_communities", "large_communities"})


def _freeze(v: object) -> object:
    return tuple(v) if type(v) is list else v


@lru_cache(maxsize=4096)
def _attributes(attr_spec: tuple[Any, ...]) -> tuple[PathAttribute, ...]:
    """The attribute tuple for one combination of attribute fields.  Cached: routes
    injected together usually share it, and a shared tuple also makes packing them into
    common UPDATEs cheap."""
    origin_v, as_path_v, med_v, lp_v, comm_v, rt_v, ext_v, large_v = attr_spec
    attrs: list[PathAttribute] = []
    origin = str(origin_v if origin_v is not None else "igp").lower()
    if origin not in ORIGIN_WORDS:
        raise _FieldError("origin", f"{origin_v!r} is not igp, egp or incomplete")
    attrs.append(Origin(ORIGIN_WORDS[origin]))
    try:
        asns = tuple(int(x) for x in _list(as_path_v or []))
        if not all(0 < a <= 0xFFFFFFFF for a in asns):
            raise ValueError
    except ValueError:
        raise _FieldError("as_path", f"{as_path_v!r} is not a list of AS numbers") from None
    attrs.append(AsPath.sequence(*asns))
    for name, v, cls in (("med", med_v, Med), ("local_pref", lp_v, LocalPref)):
        if v is not None:
            if isinstance(v, bool) or not str(v).isdigit() or int(v) > 0xFFFFFFFF:
                raise _FieldError(name, f"{v!r} is not an integer 0-4294967295")
            attrs.append(cls(int(v)))
    if comm_v:
        try:
            attrs.append(Communities(tuple(parse_community(c) for c in _list(comm_v))))
        except ValueError as e:
            raise _FieldError("communities", str(e)) from None
    ext: list[ExtCommunity] = []
    for name, v in (("route_targets", rt_v), ("ext_communities", ext_v)):
        for item in _list(v or []):
            try:
                ext.append(route_target(item) if name == "route_targets" else ExtCommunity.parse(item))
            except ValueError as e:
                raise _FieldError(name, str(e)) from None
    if ext:
        attrs.append(ExtendedCommunities(tuple(ext)))
    if large_v:
        try:
            attrs.append(LargeCommunities(tuple(LargeCommunity.parse(c) for c in _list(large_v))))
        except ValueError as e:
            raise _FieldError("large_communities", str(e)) from None
    return tuple(attrs)


_parse_rd = lru_cache(maxsize=4096)(RouteDistinguisher.parse)


@lru_cache(maxsize=4096)
def _next_hop(text: str) -> MpNextHop:
    return MpNextHop(str(ipaddress.ip_address(text)))


def parse_route(spec: dict[str, Any], where: str = "route") -> LocalRoute:
    """Build a :class:`LocalRoute` from an API/CLI dictionary.

    Keys: prefix (required), family, rd, labels, next_hop, origin, as_path, med,
    local_pref, communities, route_targets / ext_communities, large_communities.
    """
    if not isinstance(spec, dict):
        raise RouteSpecError(f"{where}: {spec!r} is not an object")
    unknown = spec.keys() - _KNOWN_FIELDS
    if unknown:
        k = sorted(unknown)[0]
        known = ", ".join(sorted(_KNOWN_FIELDS))
        raise RouteSpecError(f"{where}.{k}: {spec[k]!r} is not a route field (known: {known})")
    if "prefix" not in spec:
        raise RouteSpecError(f"{where}.prefix: missing")
    pfx = _field(spec, "prefix", Prefix.parse, where)
    rd = _field(spec, "rd", _parse_rd, where) if spec.get("rd") else None
    if spec.get("family"):
        family = _field(spec, "family", Family.parse, where)
    else:
        family = {(1, False): IPV4_UNICAST, (2, False): IPV6_UNICAST,
                  (1, True): VPNV4, (2, True): VPNV6}[(pfx.afi, rd is not None)]
    if family.afi != pfx.afi:
        raise RouteSpecError(f"{where}.family: {family.name!r} does not fit prefix {pfx}")
    if family.is_vpn and rd is None:
        raise RouteSpecError(f"{where}.rd: missing (required for {family.name})")
    if not family.is_vpn and rd is not None:
        raise RouteSpecError(f"{where}.rd: {spec['rd']!r} given for non-VPN family {family.name}")
    labels: tuple[int, ...] = ()
    raw_labels = spec.get("labels", spec.get("label"))
    if raw_labels is not None:
        try:
            labels = tuple(int(x) for x in _list(raw_labels))
            if not all(0 <= x < 1 << 20 for x in labels) or len(labels) > 1:
                raise ValueError
        except ValueError:
            raise RouteSpecError(f"{where}.labels: {raw_labels!r} is not one MPLS label (0-1048575); "
                                 "RFC 8277 VPN routes carry exactly one") from None
    if family.is_vpn and not labels:
        labels = (0,)  # the fabric does not forward on MPLS; a label field is still required on the wire
    nh = None
    if spec.get("next_hop"):
        try:
            nh = _next_hop(str(spec["next_hop"]))
        except ValueError:
            raise RouteSpecError(f"{where}.next_hop: {spec['next_hop']!r} is not an IP address") from None
        if family.afi == 2 and not nh.is_ipv6:
            raise RouteSpecError(f"{where}.next_hop: {spec['next_hop']!r} cannot be the next hop of {family.name}")
    elif family.is_vpn:
        raise RouteSpecError(f"{where}.next_hop: missing (a VPN route needs its SID as next hop)")
    get = spec.get
    attr_spec = (get("origin"), _freeze(get("as_path")), get("med"), get("local_pref"), _freeze(get("communities")),
                 _freeze(get("route_targets")), _freeze(get("ext_communities")), _freeze(get("large_communities")))
    try:
        attrs = _attributes(attr_spec)
    except _FieldError as e:
        raise RouteSpecError(f"{where}.{e.field}: {e}") from None
    nlri = VpnPrefix(rd, pfx, labels) if rd is not None else pfx  # rd is given exactly for the VPN families
    return LocalRoute(family, nlri, nh, tuple(attrs))


def parse_route_key(spec: dict[str, Any], where: str = "route") -> tuple[Family, Prefix | VpnPrefix]:
    """The (family, RIB key) a withdraw request names: prefix, and rd for VPN routes."""
    if not isinstance(spec, dict):
        raise RouteSpecError(f"{where}: {spec!r} is not an object")
    slim: dict[str, Any] = {k: spec[k] for k in ("prefix", "rd", "family") if k in spec}
    if slim.get("rd"):
        slim["next_hop"] = "::"  # placeholder: a key needs no next hop
    r = parse_route(slim, where)
    return r.family, r.key


def self_next_hop(local_address: str | None, interface_link_local: str | None) -> MpNextHop | None:
    """Next-hop-self: our address on the session (RFC 8950 IPv6 next hop for IPv4 NLRI)."""
    if not local_address:
        return None
    addr = ipaddress.ip_address(local_address)
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.version == 4:
        return MpNextHop(str(addr))
    if addr.is_link_local:
        return MpNextHop(str(addr))
    return MpNextHop(str(addr), interface_link_local)
