"""Which tenant VRFs import a received VPN route (the host-import policy of
ARCHITECTURE.md).

- A route goes into tenant T's VRF when it carries T's route target, and also into
  every tenant that peers with T effectively (both list each other).
- Never into the default table: the decision only ever names tenants.
- A next hop inside this host's own locator must be one of our SIDs.  If it is not,
  the route is rejected: someone advertises an address we own.  If it is, the route
  is our own coming back (through a leaf or a route reflector); the local endpoint
  is already delivered directly, so it is not imported either.
- A route with this host's own RD is likewise our own and is not imported.
- VPN next hops are SIDs, so an IPv4 next hop is rejected, and so is any IPv6
  address that cannot be a SID: unspecified, loopback, IPv4-mapped or -compatible,
  link-local, site-local or multicast (a leaf that rewrites the next hop to itself
  makes hosts see its link-local address).  Where the fabric's SID space is known
  (:meth:`ImportPolicy.with_sid_space`), a next hop outside it is refused as well.
  Such a decision has ``sid_refused`` set: the caller leaves that path out of an
  ECMP set and keeps the others.
"""
from __future__ import annotations

import ipaddress
import copy
from dataclasses import dataclass
from typing import Any, Iterable

from l3fab.speaker.wire.extcommunity import ExtCommunity, route_target
from l3fab.speaker.wire.rd import RouteDistinguisher

from .model import Endpoint, Tenant
from .node import NodeSettings
from .peering import effective_peers


# IPv6 space that is never a SID, most specific first: (network, what it is)
NOT_SIDS: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), what) for net, what in (
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        ("::ffff:0:0/96", "an IPv4-mapped address"),
        ("::/96", "an IPv4-compatible address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ))


def sid_problem(address: ipaddress.IPv6Address) -> str | None:
    """Why ``address`` cannot be a SID (a global unicast address), or None."""
    for net, what in NOT_SIDS:
        if address in net:
            return what
    return None


@dataclass(frozen=True)
class ImportDecision:
    vrfs: tuple[str, ...]  # tenant names, sorted; empty: not imported anywhere
    reason: str
    sid_refused: bool = False  # the next hop cannot be used as a SID (see the module doc)

    @property
    def accepted(self) -> bool:
        return bool(self.vrfs)

    def to_dict(self) -> dict[str, Any]:
        return {"vrfs": list(self.vrfs), "reason": self.reason}


def _as_rt(rt: ExtCommunity | str) -> ExtCommunity | None:
    if isinstance(rt, ExtCommunity):
        return rt if rt.is_route_target else None
    try:
        return route_target(str(rt))
    except ValueError:
        return None


def _as_rd(rd: RouteDistinguisher | str | None) -> RouteDistinguisher | None:
    if rd is None or isinstance(rd, RouteDistinguisher):
        return rd
    try:
        return RouteDistinguisher.parse(str(rd))
    except ValueError:
        return None


class ImportPolicy:
    """The import decision for one snapshot of the intent.  Built once per intent
    change; :meth:`decide` is then a few dictionary lookups per route."""

    def __init__(self, node: NodeSettings, tenants: Iterable[Tenant], endpoints: Iterable[Endpoint]) -> None:
        tenants = tuple(tenants)
        by_name = {t.name: t for t in tenants}
        self.locator = node.locator_network
        self._importers: dict[ExtCommunity, tuple[str, ...]] = {}
        for t in tenants:
            importers = {t.name, *effective_peers(t, by_name)}
            self._importers[route_target(t.route_target)] = tuple(sorted(importers))
        self._own_rds = {RouteDistinguisher.parse(t.rd): t.name for t in tenants}
        self._sids: dict[ipaddress.IPv6Address, str] = {}
        for e in endpoints:
            for sid in e.sids:
                self._sids[ipaddress.IPv6Address(sid)] = e.name
        self.sid_space: tuple[ipaddress.IPv6Network, ...] = ()  # empty: any global unicast address

    def with_sid_space(self, prefixes: Iterable[str]) -> "ImportPolicy":
        """A copy that also refuses next hops outside ``prefixes`` (the fabric's locators,
        e.g. ``dataplane.underlay-prefixes``); IPv4 prefixes in the list are ignored, and an
        empty list (or one without IPv6 prefixes) refuses nothing more."""
        nets = []
        for p in prefixes:
            net = ipaddress.ip_network(str(p), strict=False)
            if isinstance(net, ipaddress.IPv6Network):
                nets.append(net)
        out = copy.copy(self)
        out.sid_space = tuple(nets)
        return out

    def decide(self, route_targets: Iterable[ExtCommunity | str], rd: RouteDistinguisher | str | None,
               next_hop: str) -> ImportDecision:
        try:
            nh = ipaddress.ip_address(str(next_hop).split("%")[0])
        except ValueError:
            return ImportDecision((), f"next hop {next_hop!r} is not an IP address", sid_refused=True)
        if nh.version != 6 or nh.ipv4_mapped is not None:
            return ImportDecision((), f"next hop {next_hop} is not an IPv6 SID", sid_refused=True)
        assert isinstance(nh, ipaddress.IPv6Address)
        what = sid_problem(nh)
        if what is not None:
            return ImportDecision((), f"next hop {nh} is {what}, not a SID", sid_refused=True)
        if nh in self.locator:
            owner = self._sids.get(nh)
            if owner is None:
                return ImportDecision((),
                                      f"next hop {nh} is inside this host's locator {self.locator} but no local SID")
            return ImportDecision((), f"own route: next hop {nh} is the SID of local endpoint {owner!r}")
        if self.sid_space and not any(nh in net for net in self.sid_space):
            return ImportDecision((), f"next hop {nh} is outside the fabric's SID space "
                                      f"{', '.join(str(n) for n in self.sid_space)}", sid_refused=True)
        parsed_rd = _as_rd(rd)
        if parsed_rd is not None and parsed_rd in self._own_rds:
            return ImportDecision((),
                                  f"own route: RD {parsed_rd} is tenant {self._own_rds[parsed_rd]!r}'s on this host")
        vrfs: set[str] = set()
        for rt in route_targets:
            c = _as_rt(rt)
            if c is not None:
                vrfs.update(self._importers.get(c, ()))
        if not vrfs:
            return ImportDecision((), "no route target of a local tenant")
        return ImportDecision(tuple(sorted(vrfs)), "route target")


def decide_import(node: NodeSettings, tenants: Iterable[Tenant], endpoints: Iterable[Endpoint],
                  route_targets: Iterable[ExtCommunity | str], rd: RouteDistinguisher | str | None,
                  next_hop: str) -> ImportDecision:
    """One-shot form of :meth:`ImportPolicy.decide`."""
    return ImportPolicy(node, tenants, endpoints).decide(route_targets, rd, next_hop)
