"""Build the read-only :class:`Tenant` / :class:`Endpoint` views from a State."""
from __future__ import annotations

from .allocate import route_distinguisher, route_target, sid_address, vpn_label
from .model import Endpoint, State, Tenant
from .node import NodeSettings
from .peering import effective_peers


def tenant_view(state: State, node: NodeSettings, name: str) -> Tenant:
    spec = state.tenants[name]
    alloc = state.tenant_allocations[name]
    return Tenant(
        name=spec.name, vni=spec.vni, families=spec.families, peers=spec.peers,
        effective_peers=effective_peers(spec, state.tenants), table=alloc.table,
        rd=str(route_distinguisher(node, alloc.rd_number)), route_target=str(route_target(node.fabric_asn, spec.vni)),
        label=vpn_label(spec.vni), endpoints=len(state.endpoints_of(name)))


def endpoint_view(state: State, node: NodeSettings, name: str) -> Endpoint:
    spec = state.endpoints[name]
    alloc = state.endpoint_allocations[name]
    tenant = state.tenants[spec.tenant]
    talloc = state.tenant_allocations[spec.tenant]
    return Endpoint(
        name=spec.name, tenant=spec.tenant, vni=tenant.vni, interface=spec.interface, ipv4=spec.ipv4,
        ipv6=spec.ipv6, rate_limit=spec.rate_limit,
        sid4=sid_address(node, alloc.sid4_index) if alloc.sid4_index is not None else None,
        sid6=sid_address(node, alloc.sid6_index) if alloc.sid6_index is not None else None,
        table=talloc.table, rd=str(route_distinguisher(node, talloc.rd_number)),
        route_target=str(route_target(node.fabric_asn, tenant.vni)))


def tenant_views(state: State, node: NodeSettings) -> tuple[Tenant, ...]:
    return tuple(tenant_view(state, node, n) for n in sorted(state.tenants))


def endpoint_views(state: State, node: NodeSettings, tenant: str | None = None) -> tuple[Endpoint, ...]:
    return tuple(endpoint_view(state, node, n) for n in sorted(state.endpoints)
                 if tenant is None or state.endpoints[n].tenant == tenant)
