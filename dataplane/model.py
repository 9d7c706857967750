"""What the dataplane must look like: plain, frozen data handed to a backend.

The tenancy layer says *what* exists (tenants, endpoints, SIDs, tables); the
speaker says which remote routes each tenant imports.  This module holds the
result in the dataplane's own vocabulary, with nothing kernel-specific in it:

- :class:`VrfSpec`: one per tenant (its kernel table, its families);
- :class:`PortSpec`: one per local endpoint (interface, addresses, SIDs, the
  unique IPv4 delivery handle, the rate limit);
- :class:`DataplaneSpec`: the whole local picture plus the node's underlay facts;
- :class:`RemoteRoute`: a tenant prefix reached through one or more SIDs.

Tags of everything the Linux backend creates (so it never touches anything else):
- routes: protocol :data:`RTPROT_L3FAB_VRF` (the underlay FIB uses 210);
- ip rules: priorities :data:`RULE_PREF_UNDERLAY` and
  :data:`RULE_PREF_ENDPOINT`, and protocol :data:`RTPROT_L3FAB_VRF`;
- nftables: the table ``inet`` :data:`NFT_TABLE`;
- VRF devices: names starting with :data:`VRF_PREFIX`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

RTPROT_L3FAB_VRF = 211
"""rtm_protocol of tenant-table routes and SID (seg6local) routes.  Distinct from the
underlay FIB's 210 so that neither reconciler ever deletes the other's routes."""

RULE_PREF_UNDERLAY = 90
"""``from <tunnel source> lookup main``: encapsulated packets leave by the underlay
even though they still carry the endpoint interface as iif."""

RULE_PREF_ENDPOINT = 100
"""``iif <endpoint interface> lookup <tenant table>`` (the fallback without VRF devices)."""

RULE_PREFS = (RULE_PREF_UNDERLAY, RULE_PREF_ENDPOINT)

NFT_TABLE = "l3fab"
VRF_PREFIX = "l3v-"
GATEWAY4 = "169.254.0.1"
GATEWAY6 = "fe80::1"
ENCAP_OVERHEAD = 40  # encap.red with one segment: an outer IPv6 header, no SRH
HANDLE_NET = ipaddress.IPv4Network("169.254.0.0/16")


@dataclass(frozen=True)
class VrfSpec:
    """A tenant's forwarding context on this host."""

    name: str
    vni: int
    table: int
    ipv4: bool = True
    ipv6: bool = True


@dataclass(frozen=True)
class PortSpec:
    """A local endpoint: the host side of its link and how packets reach it.

    ``handle4`` is the End.DX4 ``nh4``: an address in 169.254.0.0/16, unique per
    endpoint on this host, routed ``dev <ifname>`` in the main table.  End.DX4
    resolves nh4 in the main table, so the endpoint's own address (which another
    tenant may share) cannot be used there.
    """

    name: str
    tenant: str
    ifname: str
    table: int
    ipv4: str | None = None
    ipv6: str | None = None
    sid4: str | None = None
    sid6: str | None = None
    handle4: str | None = None
    rate_limit: int | None = None  # bit/s, None: unlimited


@dataclass(frozen=True)
class DataplaneSpec:
    """Everything local the backend must make true.

    ``tunnel_source``: the outer source address of encapsulated packets (an address
    inside the locator, on ``lo``).  ``underlay_prefixes``: the underlay/SID space
    endpoints must never reach (at least the locator; normally the fabric's whole
    aggregate).  ``endpoint_mtu``: the MTU set on endpoint links (None: derived from
    the underlay MTU minus :data:`ENCAP_OVERHEAD`).
    """

    locator: str
    tunnel_source: str
    underlay_prefixes: tuple[str, ...] = ()
    vrfs: tuple[VrfSpec, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    endpoint_mtu: int | None = None

    def vrf(self, name: str) -> VrfSpec | None:
        for v in self.vrfs:
            if v.name == name:
                return v
        return None


@dataclass(frozen=True)
class RemoteRoute:
    """A tenant prefix learned from another host: IP-in-IPv6 to one of ``sids``
    (more than one: ECMP over hosts announcing the same prefix)."""

    table: int
    prefix: str
    sids: tuple[str, ...] = field(default=())


def handle_for(index: int, taken: set[str]) -> str:
    """A stable End.DX4 handle for SID index ``index``, avoiding ``taken`` and the
    gateway 169.254.0.1.  The same index gives the same handle unless it collides."""
    size = HANDLE_NET.num_addresses - 3  # not .0.0, .0.1 (gateway), .255.255
    base = int(HANDLE_NET.network_address)
    for probe in range(size):
        candidate = str(ipaddress.IPv4Address(base + 2 + (index + probe) % size))
        if candidate not in taken:
            return candidate
    raise ValueError("no free End.DX4 handle left in 169.254.0.0/16")
