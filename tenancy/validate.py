"""Validation: operator input to normalized specs, and the rules a change must keep.

Every failure is one :class:`IntentError` line naming the field and the value, e.g.
``tenants[red].vni: 100 is already used by tenant 'blue'``.  Nothing here changes
state; :mod:`tenancy.changes` calls these before it builds a new State.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Any, Callable

from l3fab.speaker import fields

from .errors import IntentError
from .model import FAMILY_ALIASES, FAMILIES, EndpointSpec, State, TenantSpec
from .node import SID_FIRST_INDEX, NodeSettings
from .rate import checked_rate

MAX_VNI = (1 << 24) - 1

InterfaceExists = Callable[[str], bool]


def sysfs_interface_exists(name: str) -> bool:
    """The default check: ``/sys/class/net/<name>`` exists."""
    return os.path.exists(os.path.join("/sys/class/net", name))


# ---------------------------------------------------------------- input normalization


# Every string an operator or an API client sends is refused with a control character
# in it (speaker.fields): names are matched whole, so "web2\n" never reaches the state
# file, nft or a log line.


def name(path: str, v: Any) -> str:
    return fields.name(path, v, IntentError)


def vni(path: str, v: Any) -> int:
    if isinstance(v, str):
        fields.printable(path, v, IntentError)
    if isinstance(v, bool) or not isinstance(v, (int, str)) or not str(v).strip().isdigit():
        raise IntentError(path, v, f"is not a VNI (1-{MAX_VNI})")
    n = int(str(v).strip())
    if not 1 <= n <= MAX_VNI:
        raise IntentError(path, v, f"is not a VNI (1-{MAX_VNI})")
    return n


def families(path: str, v: Any) -> str:
    if isinstance(v, str):
        fields.printable(path, v, IntentError)
    canonical = FAMILY_ALIASES.get(str(v).strip().lower()) if isinstance(v, str) else None
    if canonical is None:
        raise IntentError(path, v, f"is not an address-family choice ({', '.join(FAMILIES)})")
    return canonical


def peer_names(path: str, v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        fields.printable(path, v, IntentError)  # split() would take a newline for a separator
    items = v.replace(",", " ").split() if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)):
        raise IntentError(path, v, "is not a list of tenant names")
    out: list[str] = []
    for item in items:
        n = name(path, item)
        if n not in out:
            out.append(n)
    return tuple(sorted(out))


def host_address(path: str, v: Any, version: int) -> str | None:
    """``'10.0.0.5'`` or ``'10.0.0.5/32'`` -> ``'10.0.0.5'``; None stays None."""
    if v is None or v == "":
        return None
    width = 32 if version == 4 else 128
    if not isinstance(v, str):
        raise IntentError(path, v, f"is not an IPv{version} address")
    fields.printable(path, v, IntentError)
    try:
        iface = ipaddress.ip_interface(v.strip())
    except ValueError:
        raise IntentError(path, v, f"is not an IPv{version} address") from None
    if iface.version != version:
        raise IntentError(path, v, f"is not an IPv{version} address")
    if iface.network.prefixlen != width:
        raise IntentError(path, v, f"is not a host address (/{width})")
    a = iface.ip
    if a.is_unspecified or a.is_multicast or a.is_loopback or a.is_link_local:
        raise IntentError(path, v, "cannot be an endpoint address (unspecified, multicast, loopback or link-local)")
    return str(a)


def interface_name(path: str, v: Any) -> str:
    return fields.ifname(path, v, IntentError)


def rate_limit(path: str, v: Any) -> int | None:
    """Bit/s in the range tc can shape (:func:`tenancy.rate.checked_rate`); None: no limit."""
    if v is None or v == "":
        return None
    try:
        return checked_rate(v)
    except ValueError as e:
        raise fields.refuse(path, v, str(e), IntentError) from None


def tenant_spec(name_: Any, vni_: Any, families_: Any = "dual-stack", peers: Any = ()) -> TenantSpec:
    n = name("tenant.name", name_)
    where = f"tenants[{n}]"
    return TenantSpec(n, vni(f"{where}.vni", vni_), families(f"{where}.families", families_),
                      peer_names(f"{where}.peers", peers))


def endpoint_spec(name_: Any, tenant: Any, interface: Any, ipv4: Any = None, ipv6: Any = None,
                  rate: Any = None) -> EndpointSpec:
    n = name("endpoint.name", name_)
    where = f"endpoints[{n}]"
    spec = EndpointSpec(n, name(f"{where}.tenant", tenant), interface_name(f"{where}.interface", interface),
                        host_address(f"{where}.ipv4", ipv4, 4), host_address(f"{where}.ipv6", ipv6, 6),
                        rate_limit(f"{where}.rate-limit", rate))
    if spec.ipv4 is None and spec.ipv6 is None:
        raise IntentError(f"{where}.ipv4", None, "and ipv6 are both missing: an endpoint needs at least one address")
    return spec


# ---------------------------------------------------------------- rules against the state


def check_tenant(state: State, spec: TenantSpec) -> None:
    """Rules a tenant must keep against the other tenants (``spec.name`` itself excluded)."""
    where = f"tenants[{spec.name}]"
    for other in state.tenants.values():
        if other.name != spec.name and other.vni == spec.vni:
            raise IntentError(f"{where}.vni", spec.vni, f"is already used by tenant {other.name!r}")
    for p in spec.peers:
        if p == spec.name:
            raise IntentError(f"{where}.peers", p, "is the tenant itself")
        if p not in state.tenants:
            raise IntentError(f"{where}.peers", p, "is not a tenant")
    for e in state.endpoints_of(spec.name):
        _check_families(spec, e)


def _check_families(tenant: TenantSpec, e: EndpointSpec) -> None:
    if e.ipv4 is not None and not tenant.ipv4:
        raise IntentError(f"endpoints[{e.name}].ipv4", e.ipv4,
                          f"is not allowed: tenant {tenant.name!r} is {tenant.families}")
    if e.ipv6 is not None and not tenant.ipv6:
        raise IntentError(f"endpoints[{e.name}].ipv6", e.ipv6,
                          f"is not allowed: tenant {tenant.name!r} is {tenant.families}")


def check_endpoint(state: State, spec: EndpointSpec, interface_exists: InterfaceExists | None = None) -> None:
    """Rules an endpoint must keep.  ``interface_exists`` None skips the host check
    (used when loading: a VM's TAP may appear only after the daemon starts)."""
    where = f"endpoints[{spec.name}]"
    tenant = state.tenants.get(spec.tenant)
    if tenant is None:
        raise IntentError(f"{where}.tenant", spec.tenant, "is not a tenant")
    _check_families(tenant, spec)
    for other in state.endpoints.values():
        if other.name == spec.name:
            continue
        if other.interface == spec.interface:
            raise IntentError(f"{where}.interface", spec.interface, f"is already used by endpoint {other.name!r}")
        if other.tenant != spec.tenant:
            continue  # tenants are separate address spaces: overlaps across tenants are fine
        for fam in ("ipv4", "ipv6"):
            mine = getattr(spec, fam)
            if mine is not None and mine == getattr(other, fam):
                raise IntentError(f"{where}.{fam}", mine,
                                  f"is already used by endpoint {other.name!r} in tenant {spec.tenant!r}")
    if interface_exists is not None and not interface_exists(spec.interface):
        raise IntentError(f"{where}.interface", spec.interface, "does not exist on this host")


def check_tenant_deletable(state: State, tenant: str) -> None:
    where = f"tenants[{tenant}]"
    if tenant not in state.tenants:
        raise IntentError("tenant.name", tenant, "is not a tenant")
    eps = sorted(e.name for e in state.endpoints_of(tenant))
    if eps:
        raise IntentError(where, tenant, f"still has {len(eps)} endpoint(s) ({', '.join(eps)}); remove them first")
    listed_by = sorted(t.name for t in state.tenants.values() if tenant in t.peers and t.name != tenant)
    if listed_by:
        raise IntentError(where, tenant, f"is still listed as a peer by tenant {listed_by[0]!r}; remove it there first")


def check_state(state: State, node: NodeSettings) -> None:
    """Everything a loaded state file must satisfy (interfaces are not checked)."""
    for t in state.tenants.values():
        if tenant_spec(t.name, t.vni, t.families, t.peers) != t:
            raise IntentError(f"tenants[{t.name}]", t.name, "is not in canonical form in the state file")
        if t.name not in state.tenant_allocations:
            raise IntentError(f"tenants[{t.name}]", t.name, "has no allocation (table, rd) in the state file")
        check_tenant(state, t)
    tables: dict[int, str] = {}
    rds: dict[int, str] = {}
    for n, a in state.tenant_allocations.items():
        if n not in state.tenants:
            raise IntentError(f"tenant-allocations[{n}]", n, "is not a tenant")
        if a.table in tables:
            raise IntentError(f"tenants[{n}].table", a.table, f"is also the table of tenant {tables[a.table]!r}")
        if a.rd_number in rds:
            raise IntentError(f"tenants[{n}].rd", a.rd_number, f"is also the RD number of tenant {rds[a.rd_number]!r}")
        tables[a.table] = rds[a.rd_number] = n
    sids: dict[int, str] = {}
    for e in state.endpoints.values():
        if endpoint_spec(e.name, e.tenant, e.interface, e.ipv4, e.ipv6, e.rate_limit) != e:
            raise IntentError(f"endpoints[{e.name}]", e.name, "is not in canonical form in the state file")
        check_endpoint(state, e)
        ea = state.endpoint_allocations.get(e.name)
        if ea is None:
            raise IntentError(f"endpoints[{e.name}]", e.name, "has no SID allocation in the state file")
        for fam, addr, idx in (("sid4", e.ipv4, ea.sid4_index), ("sid6", e.ipv6, ea.sid6_index)):
            if (addr is None) != (idx is None):
                raise IntentError(f"endpoints[{e.name}].{fam}", idx, "does not match the endpoint's addresses")
            if idx is None:
                continue
            if not SID_FIRST_INDEX <= idx <= node.max_sid_index:
                raise IntentError(f"endpoints[{e.name}].{fam}", idx,
                                  f"is not a SID index inside locator {node.locator}")
            if idx in sids:
                raise IntentError(f"endpoints[{e.name}].{fam}", idx, f"is also a SID of endpoint {sids[idx]!r}")
            sids[idx] = e.name
    for n in state.endpoint_allocations:
        if n not in state.endpoints:
            raise IntentError(f"endpoint-allocations[{n}]", n, "is not an endpoint")
