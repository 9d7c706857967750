"""What the control plane must originate for the local endpoints.

Per endpoint: its /32 in VPNv4 and its /128 in VPNv6 (RFC 4364 / RFC 4659), with the
tenant's RD and route target, the VNI as label where it fits (see
:func:`tenancy.allocate.vpn_label`), and the endpoint's SID as next hop (RFC 8950
encoding for the IPv4 routes).  Plus the locator itself in IPv6 unicast, with
next-hop-self.  The routes are the speaker's typed :class:`LocalRoute` records.
"""
from __future__ import annotations

from typing import Iterable

from l3fab.speaker.origination import LocalRoute, unicast_route, vpn_route

from .allocate import vpn_label
from .model import Endpoint
from .node import NodeSettings


def endpoint_routes(endpoint: Endpoint, label: int) -> list[LocalRoute]:
    routes = []
    for addr, width, sid in ((endpoint.ipv4, 32, endpoint.sid4), (endpoint.ipv6, 128, endpoint.sid6)):
        if addr is not None and sid is not None:
            routes.append(vpn_route(f"{addr}/{width}", endpoint.rd, (endpoint.route_target,), label, sid))
    return routes


def locator_route(node: NodeSettings) -> LocalRoute:
    return unicast_route(node.locator)


def originated_routes(node: NodeSettings, endpoints: Iterable[Endpoint]) -> list[LocalRoute]:
    """The locator route first, then each endpoint's VPN routes, in endpoint order."""
    routes = [locator_route(node)]
    for e in endpoints:
        routes.extend(endpoint_routes(e, vpn_label(e.vni)))
    return routes
