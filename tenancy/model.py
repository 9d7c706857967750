"""Tenants and endpoints: what the operator asked for (``*Spec``), what the node
allocated for them (``*Allocation``), the whole :class:`State`, and the read-only
views :class:`Tenant` and :class:`Endpoint` that combine the two.

Everything here is plain, frozen data.  A change never edits a :class:`State`; it
builds a new one (:mod:`tenancy.changes`), so a rejected change cannot leave
anything half done.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .rate import format_rate

IPV4_ONLY = "ipv4-only"
DUAL_STACK = "dual-stack"
IPV6_ONLY = "ipv6-only"
FAMILIES = (IPV4_ONLY, DUAL_STACK, IPV6_ONLY)
FAMILY_ALIASES = {
    "ipv4": IPV4_ONLY, "ipv4-only": IPV4_ONLY, "v4": IPV4_ONLY,
    "ipv6": IPV6_ONLY, "ipv6-only": IPV6_ONLY, "v6": IPV6_ONLY,
    "dual-stack": DUAL_STACK, "dual": DUAL_STACK, "dualstack": DUAL_STACK, "ipv4+ipv6": DUAL_STACK,
}


class _FamilyChoice:
    """``ipv4`` / ``ipv6``: whether the tenant's ``families`` choice allows them."""

    families: str

    @property
    def ipv4(self) -> bool:
        return self.families in (IPV4_ONLY, DUAL_STACK)

    @property
    def ipv6(self) -> bool:
        return self.families in (IPV6_ONLY, DUAL_STACK)


@dataclass(frozen=True)
class TenantSpec(_FamilyChoice):
    """A tenant as configured: a name, its VNI, its address families and the
    tenants it wants to exchange routes with (effective only when both sides list
    each other, see :mod:`tenancy.peering`)."""

    name: str
    vni: int
    families: str = DUAL_STACK
    peers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EndpointSpec:
    """An endpoint as configured: its addresses (canonical strings without prefix
    length), the local interface it sits behind, and an optional rate limit in bit/s."""

    name: str
    tenant: str
    interface: str
    ipv4: str | None = None
    ipv6: str | None = None
    rate_limit: int | None = None


@dataclass(frozen=True)
class TenantAllocation:
    table: int  # kernel routing table id
    rd_number: int  # assigned number of the type-1 RD <router-id>:<rd_number>


@dataclass(frozen=True)
class EndpointAllocation:
    sid4_index: int | None  # End.DX4 SID = locator + index; None without IPv4
    sid6_index: int | None  # End.DX6 / End.DT6 SID; None without IPv6


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class State:
    """The whole intent of one node, plus the counters that keep allocations from
    being handed out again soon after they were freed."""

    tenants: Mapping[str, TenantSpec] = field(default_factory=dict)
    endpoints: Mapping[str, EndpointSpec] = field(default_factory=dict)
    tenant_allocations: Mapping[str, TenantAllocation] = field(default_factory=dict)
    endpoint_allocations: Mapping[str, EndpointAllocation] = field(default_factory=dict)
    next_sid_index: int = 0
    next_table: int = 0

    def __post_init__(self) -> None:
        for name in ("tenants", "endpoints", "tenant_allocations", "endpoint_allocations"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def replace(self, **changes: Any) -> "State":
        values = {name: getattr(self, name) for name in (
            "tenants", "endpoints", "tenant_allocations", "endpoint_allocations", "next_sid_index", "next_table")}
        values.update(changes)
        return State(**values)

    def endpoints_of(self, tenant: str) -> list[EndpointSpec]:
        return [e for e in self.endpoints.values() if e.tenant == tenant]


@dataclass(frozen=True)
class Tenant(_FamilyChoice):
    """A tenant with its allocations, as the CLI and the other layers see it."""

    name: str
    vni: int
    families: str
    peers: tuple[str, ...]
    effective_peers: tuple[str, ...]  # peers that list this tenant too
    table: int
    rd: str  # "<router-id>:<n>"
    route_target: str  # "target:<fabric-asn>:<vni>"
    label: int  # the MPLS label field of this tenant's VPN routes
    endpoints: int  # how many local endpoints

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "vni": self.vni, "families": self.families, "peers": list(self.peers),
                "effective_peers": list(self.effective_peers), "table": self.table, "rd": self.rd,
                "route_target": self.route_target, "label": self.label, "endpoints": self.endpoints}


@dataclass(frozen=True)
class Endpoint:
    """An endpoint with its SIDs and its tenant's RD, RT and table."""

    name: str
    tenant: str
    vni: int
    interface: str
    ipv4: str | None
    ipv6: str | None
    rate_limit: int | None  # bit/s
    sid4: str | None  # End.DX4 SID, present with ipv4
    sid6: str | None  # End.DX6/End.DT6 SID, present with ipv6
    table: int
    rd: str
    route_target: str

    @property
    def sids(self) -> tuple[str, ...]:
        return tuple(s for s in (self.sid4, self.sid6) if s)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tenant": self.tenant, "vni": self.vni, "interface": self.interface,
                "ipv4": self.ipv4, "ipv6": self.ipv6, "rate_limit": self.rate_limit,
                "rate_limit_text": format_rate(self.rate_limit) if self.rate_limit else None,
                "sid4": self.sid4, "sid6": self.sid6, "table": self.table, "rd": self.rd,
                "route_target": self.route_target}
