"""The tenancy intent, seen by the dataplane: tenants become :class:`VrfSpec`,
endpoints :class:`PortSpec` (with their End.DX4 handle), the node settings the
tunnel source and the protected underlay space."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from .model import DataplaneSpec, PortSpec, VrfSpec, handle_for


@dataclass(frozen=True)
class DataplaneSettings:
    """The ``dataplane:`` section of the node config."""

    enabled: bool = True
    tunnel_source: str | None = None  # default: <locator>::1
    underlay_prefixes: tuple[str, ...] = ()  # default: the locator only
    endpoint_mtu: int | None = None  # default: underlay MTU - 40
    nftables: bool = True
    rate_limits: bool = True
    reconcile_interval: float = 30.0  # seconds between level-triggered repairs


def default_tunnel_source(locator: str) -> str:
    return str(ipaddress.IPv6Network(locator).network_address + 1)


def build_spec(locator: str, tenants: Iterable, endpoints: Iterable, settings: DataplaneSettings) -> DataplaneSpec:
    """``tenants``/``endpoints``: :class:`tenancy.model.Tenant` / ``Endpoint`` views."""
    net = ipaddress.IPv6Network(locator)
    vrfs = tuple(VrfSpec(t.name, t.vni, t.table, t.ipv4, t.ipv6) for t in sorted(tenants, key=lambda t: t.name))
    ports = []
    taken: set[str] = set()
    for e in sorted(endpoints, key=lambda e: (int(ipaddress.IPv6Address(e.sid4)) if e.sid4 else 0, e.name)):
        handle = None
        if e.sid4:
            handle = handle_for(int(ipaddress.IPv6Address(e.sid4)) - int(net.network_address), taken)
            taken.add(handle)
        ports.append(PortSpec(e.name, e.tenant, e.interface, e.table, e.ipv4, e.ipv6, e.sid4, e.sid6,
                              handle, e.rate_limit))
    underlay = settings.underlay_prefixes or (str(net),)
    return DataplaneSpec(locator=str(net), tunnel_source=settings.tunnel_source or default_tunnel_source(locator),
                         underlay_prefixes=tuple(underlay), vrfs=vrfs,
                         ports=tuple(sorted(ports, key=lambda p: p.name)), endpoint_mtu=settings.endpoint_mtu)
