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
- VPN next hops are SIDs, so an IPv4 next hop is rejected.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable

from l3fab.speaker.wire.extcommunity import ExtCommunity, route_target
from l3fab.speaker.wire.rd import RouteDistinguisher

from .model import Endpoint, Tenant
from .node import NodeSettings
from .peering import effective_peers


@dataclass(frozen=True)
class ImportDecision:
    vrfs: tuple[str, ...]  # tenant names, sorted; empty: not imported anywhere
    reason: str

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

    def decide(self, route_targets: Iterable[ExtCommunity | str], rd: RouteDistinguisher | str | None,
               next_hop: str) -> ImportDecision:
        try:
            nh = ipaddress.ip_address(str(next_hop).split("%")[0])
        except ValueError:
            return ImportDecision((), f"next hop {next_hop!r} is not an IP address")
        if nh.version != 6 or nh.ipv4_mapped is not None:
            return ImportDecision((), f"next hop {next_hop} is not an IPv6 SID")
        if nh in self.locator:
            owner = self._sids.get(nh)
            if owner is None:
                return ImportDecision((),
                                      f"next hop {nh} is inside this host's locator {self.locator} but no local SID")
            return ImportDecision((), f"own route: next hop {nh} is the SID of local endpoint {owner!r}")
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
