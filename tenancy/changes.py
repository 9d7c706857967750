"""Pure state transitions: ``State`` in, new ``State`` out, or an IntentError and
nothing changed.  Allocation happens here, once; afterwards it is only read back."""
from __future__ import annotations

from .allocate import allocate_rd_number, allocate_sids, allocate_table
from .errors import IntentError
from .model import EndpointAllocation, EndpointSpec, State, TenantAllocation, TenantSpec
from .node import NodeSettings
from .validate import InterfaceExists, check_endpoint, check_tenant, check_tenant_deletable


def create_tenant(state: State, node: NodeSettings, spec: TenantSpec) -> State:
    if spec.name in state.tenants:
        raise IntentError("tenant.name", spec.name, "already exists")
    check_tenant(state, spec)
    table, next_table = allocate_table(state, node)
    rd_number = allocate_rd_number(state, spec.vni)
    return state.replace(
        tenants={**state.tenants, spec.name: spec},
        tenant_allocations={**state.tenant_allocations, spec.name: TenantAllocation(table, rd_number)},
        next_table=next_table)


def set_peers(state: State, spec: TenantSpec) -> State:
    """Replace a tenant's peer list (the only tenant field that can change in place)."""
    old = state.tenants.get(spec.name)
    if old is None:
        raise IntentError("tenant.name", spec.name, "is not a tenant")
    new = TenantSpec(old.name, old.vni, old.families, spec.peers)
    check_tenant(state, new)
    return state.replace(tenants={**state.tenants, new.name: new})


def delete_tenant(state: State, name: str) -> State:
    check_tenant_deletable(state, name)
    tenants = dict(state.tenants)
    allocs = dict(state.tenant_allocations)
    del tenants[name], allocs[name]
    return state.replace(tenants=tenants, tenant_allocations=allocs)


def add_endpoint(state: State, node: NodeSettings, spec: EndpointSpec,
                 interface_exists: InterfaceExists | None) -> State:
    if spec.name in state.endpoints:
        other = state.endpoints[spec.name]
        raise IntentError("endpoint.name", spec.name, f"already exists (tenant {other.tenant!r})")
    check_endpoint(state, spec, interface_exists)
    wanted = [spec.ipv4 is not None, spec.ipv6 is not None]
    indices, cursor = allocate_sids(state, node, sum(wanted))
    it = iter(indices)
    alloc = EndpointAllocation(next(it) if wanted[0] else None, next(it) if wanted[1] else None)
    return state.replace(
        endpoints={**state.endpoints, spec.name: spec},
        endpoint_allocations={**state.endpoint_allocations, spec.name: alloc},
        next_sid_index=cursor)


def remove_endpoint(state: State, name: str) -> State:
    if name not in state.endpoints:
        raise IntentError("endpoint.name", name, "is not an endpoint")
    endpoints = dict(state.endpoints)
    allocs = dict(state.endpoint_allocations)
    del endpoints[name], allocs[name]
    return state.replace(endpoints=endpoints, endpoint_allocations=allocs)
