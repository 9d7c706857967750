"""The route sets the benchmarks feed: N host routes, IPv4 or VPNv4, with 1 or K attribute sets.

Prefixes are consecutive /32s from 10.64.0.0 (room for four million). VPNv4
routes carry one RD, one route target, one label and an IPv6 next hop, as the
fabric's tenant routes do. With ``attribute_sets`` > 1, route *i* carries
community ``65100:(i mod attribute_sets)``: FRR propagates communities, so
every receiver sees that many distinct attribute sets and each UPDATE carries
only the prefixes of one set.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterator

FAMILIES = ("ipv4", "vpnv4")
FIRST_PREFIX = ipaddress.IPv4Address("10.64.0.0")
LAST_PREFIX = ipaddress.IPv4Address("10.255.255.255")
COMMUNITY_ASN = 65100
VPN_RD = "65100:1"
VPN_ROUTE_TARGET = "65000:1"
VPN_LABEL = 100
VPN_NEXT_HOP = "2001:db8:99::1"  # the egress PE's address; nobody tracks it (PEERS.md)


@dataclass(frozen=True)
class RouteSet:
    family: str
    count: int
    attribute_sets: int = 1

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r}: expected one of {', '.join(FAMILIES)}")
        room = int(LAST_PREFIX) - int(FIRST_PREFIX) + 1
        if not 1 <= self.count <= room:
            raise ValueError(f"routes {self.count}: expected 1 to {room}")
        if not 1 <= self.attribute_sets <= min(self.count, 65536):
            raise ValueError(f"attribute sets {self.attribute_sets}: expected 1 to "
                             f"{min(self.count, 65536)}")

    @property
    def vpn(self) -> bool:
        return self.family == "vpnv4"

    @property
    def packing(self) -> str:
        """How the table reads in a report: ``shared`` or ``1,000 sets``."""
        return "shared" if self.attribute_sets == 1 else f"{self.attribute_sets:,} sets"

    def prefixes(self) -> Iterator[str]:
        first = int(FIRST_PREFIX)
        for i in range(self.count):
            yield f"{ipaddress.IPv4Address(first + i)}/32"

    def community(self, i: int) -> str | None:
        return None if self.attribute_sets == 1 else f"{COMMUNITY_ASN}:{i % self.attribute_sets}"

    def l3fab_routes(self) -> list[dict]:
        """Route objects for l3fab's ``announce`` API call."""
        routes = []
        for i, prefix in enumerate(self.prefixes()):
            route: dict = {"prefix": prefix}
            if self.vpn:
                route.update(rd=VPN_RD, route_targets=[VPN_ROUTE_TARGET], labels=[VPN_LABEL],
                             next_hop=VPN_NEXT_HOP)
            community = self.community(i)
            if community:
                route["communities"] = [community]
            routes.append(route)
        return routes

    def l3fab_keys(self) -> list[dict]:
        """Route keys for l3fab's ``withdraw`` API call."""
        if self.vpn:
            return [{"prefix": p, "rd": VPN_RD} for p in self.prefixes()]
        return [{"prefix": p} for p in self.prefixes()]

    def exabgp_commands(self, next_hop: str) -> list[str]:
        """One ExaBGP API command per route; ``next_hop`` is used for IPv4 unicast."""
        commands = []
        for i, prefix in enumerate(self.prefixes()):
            words = [f"announce route {prefix}"]
            if self.vpn:
                words.append(f"rd {VPN_RD} label {VPN_LABEL} "
                             f"extended-community target:{VPN_ROUTE_TARGET} next-hop {VPN_NEXT_HOP}")
            else:
                words.append(f"next-hop {next_hop}")
            community = self.community(i)
            if community:
                words.append(f"community [{community}]")
            commands.append(" ".join(words))
        return commands
