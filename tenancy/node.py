"""The node settings the intent layer derives allocations from.

``router_id`` gives the RD, ``fabric_asn`` the route targets, ``locator`` the SIDs
and ``table_range`` the kernel table ids.  They come from the node config; the
intent layer only validates them.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .errors import IntentError

DEFAULT_TABLE_RANGE = (1000, 1999999)
RESERVED_TABLES = frozenset({0, 253, 254, 255})  # unspec, default, main, local
SID_FIRST_INDEX = 0x100
"""SIDs start at ``<locator>::100``.  The indices below are left for the host's own
underlay addresses (for example the tunnel source ``<locator>::1``)."""


@dataclass(frozen=True)
class NodeSettings:
    router_id: str
    fabric_asn: int
    locator: str  # IPv6 prefix, normally a /64
    table_range: tuple[int, int] = DEFAULT_TABLE_RANGE

    def __post_init__(self) -> None:
        try:
            rid = ipaddress.IPv4Address(str(self.router_id))
        except ValueError:
            raise IntentError("router-id", self.router_id, "is not an IPv4 address") from None
        object.__setattr__(self, "router_id", str(rid))
        asn = self.fabric_asn
        if isinstance(asn, bool) or not isinstance(asn, int) or not 1 <= asn <= 0xFFFFFFFF:
            raise IntentError("fabric-asn", asn, "is not an AS number (1-4294967295)")
        try:
            net = ipaddress.IPv6Network(str(self.locator), strict=True)
        except ValueError:
            raise IntentError("locator", self.locator, "is not an IPv6 prefix (host bits clear)") from None
        if not 16 <= net.prefixlen <= 112:
            raise IntentError("locator", self.locator, "must be a /16../112 (normally a /64)")
        object.__setattr__(self, "locator", str(net))
        rng = self.table_range
        if (not isinstance(rng, (tuple, list)) or len(rng) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in rng)
                or not 1 <= rng[0] <= rng[1] <= 0xFFFFFFFF):
            raise IntentError("table-range", rng, "is not a range LOW-HIGH of table ids (1-4294967295)")
        clash = sorted(t for t in RESERVED_TABLES if rng[0] <= t <= rng[1])
        if clash:
            raise IntentError("table-range", f"{rng[0]}-{rng[1]}", f"includes the kernel's reserved table {clash[0]}")
        object.__setattr__(self, "table_range", (rng[0], rng[1]))

    @property
    def locator_network(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(self.locator)

    @property
    def max_sid_index(self) -> int:
        return (1 << (128 - self.locator_network.prefixlen)) - 1
