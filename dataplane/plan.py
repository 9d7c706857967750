"""From a :class:`~dataplane.model.DataplaneSpec` to the kernel objects it needs
(pure: no I/O, so every rule of the recipe is unit-tested).

Per host:     forwarding on; ``ip sr tunsrc`` = the tunnel source, which sits on
              ``lo``; ``ip -6 rule from <tunnel source> lookup main pref 90``
              (encapsulated packets still carry the endpoint as iif).
Per tenant:   ``unreachable default`` (IPv4 and IPv6) in its table: nothing falls
              through into another table.  With VRF devices, a ``l3v-<vni>`` device
              bound to the table.
Per endpoint: the host side of its link owns 169.254.0.1/32 and fe80::1/64; the
              endpoint's /32 and /128 are routed ``dev <link>`` in the tenant table;
              without VRF devices ``ip rule iif <link> lookup <table> pref 100``;
              decapsulation: ``<sid4> End.DX4 nh4 <handle>`` with
              ``<handle>/32 dev <link>`` in main (End.DX4 resolves nh4 there, and the
              handle is unique per endpoint where the address may not be), and
              ``<sid6> End.DT6 table <tenant table>``.
Remote:       ``<prefix> encap seg6 mode encap.red segs <SID> dev l3fab0`` in the
              tenant table; the outer packet is routed by the main table (ECMP over
              the underlay), so the route does not depend on which uplink is up.
              ``l3fab0`` is l3fab's own always-up anchor device (a dummy, or a veth
              pair where the kernel has no dummy): IPv6 turns routes via ``lo`` into
              reject routes, and routes via an uplink vanish when that link goes
              down.  Its MTU bounds the route MTU, so it is the underlay's.
"""
from __future__ import annotations

from dataclasses import dataclass

from l3fab.fib.model import FibNextHop, FibRoute, Seg6Encap, Seg6Mode, seg6local_route, unreachable

from .iproute import Rule
from .model import (
    GATEWAY4,
    GATEWAY6,
    RTPROT_L3FAB_VRF,
    RULE_PREF_ENDPOINT,
    RULE_PREF_UNDERLAY,
    VRF_PREFIX,
    DataplaneSpec,
    PortSpec,
    RemoteRoute,
)

MAIN = 254
ENCAP_DEVICE = "l3fab0"
ENCAP_DEVICE_PEER = "l3fab0-peer"  # only when the anchor is a veth pair


@dataclass(frozen=True)
class Plan:
    """Everything local the kernel must hold for one spec."""

    rules: frozenset[Rule]
    addresses: dict[str, tuple[tuple[str, int], ...]]  # ifname -> (address, plen) it must carry
    routes: dict[int, dict[str, FibRoute]]  # table -> prefix -> route
    vrf_devices: dict[str, int]  # name -> table (VRF-device kernels only)
    enslave: dict[str, str]  # port ifname -> VRF device


def vrf_device(vni: int) -> str:
    return f"{VRF_PREFIX}{vni}"


def sid_routes(port: PortSpec) -> list[FibRoute]:
    """The decapsulation routes of one endpoint (main table)."""
    out = []
    if port.sid4 and port.handle4 and port.ipv4:
        out.append(FibRoute(MAIN, f"{port.handle4}/32", (FibNextHop(ifname=port.ifname),)))
        out.append(seg6local_route(MAIN, f"{port.sid4}/128", action="End.DX4", nh4=port.handle4,
                                   ifname=port.ifname))
    if port.sid6 and port.ipv6:
        out.append(seg6local_route(MAIN, f"{port.sid6}/128", action="End.DT6", table_id=port.table,
                                   ifname=port.ifname))
    return out


def build(spec: DataplaneSpec, vrf_devices: bool) -> Plan:
    rules = {Rule(6, RULE_PREF_UNDERLAY, MAIN, src=spec.tunnel_source, protocol=RTPROT_L3FAB_VRF)}
    addresses: dict[str, tuple[tuple[str, int], ...]] = {"lo": ((spec.tunnel_source, 128),)}
    # Packets to a SID of ours that no endpoint holds (removed, never allocated) end
    # here instead of following a default route back into the fabric.
    routes: dict[int, dict[str, FibRoute]] = {MAIN: {spec.locator: unreachable(MAIN, spec.locator)}}
    devices: dict[str, int] = {}
    enslave: dict[str, str] = {}
    for vrf in spec.vrfs:
        t = routes.setdefault(vrf.table, {})
        t["0.0.0.0/0"] = unreachable(vrf.table, "0.0.0.0/0")
        t["::/0"] = unreachable(vrf.table, "::/0")
        if vrf_devices:
            devices[vrf_device(vrf.vni)] = vrf.table
    by_tenant = {v.name: v for v in spec.vrfs}
    for port in spec.ports:
        addresses[port.ifname] = ((GATEWAY4, 32), (GATEWAY6, 64))
        port_vrf = by_tenant.get(port.tenant)
        if vrf_devices and port_vrf is not None:
            enslave[port.ifname] = vrf_device(port_vrf.vni)
        else:
            for fam in (4, 6):
                rules.add(Rule(fam, RULE_PREF_ENDPOINT, port.table, iif=port.ifname, protocol=RTPROT_L3FAB_VRF))
        t = routes.setdefault(port.table, {})
        if port.ipv4:
            t[f"{port.ipv4}/32"] = FibRoute(port.table, f"{port.ipv4}/32", (FibNextHop(ifname=port.ifname),))
        if port.ipv6:
            t[f"{port.ipv6}/128"] = FibRoute(port.table, f"{port.ipv6}/128", (FibNextHop(ifname=port.ifname),))
        for r in sid_routes(port):
            routes[MAIN][r.prefix] = r
    return Plan(frozenset(rules), addresses, routes, devices, enslave)


def remote_route(route: RemoteRoute) -> FibRoute:
    hops = tuple(FibNextHop(ifname=ENCAP_DEVICE, encap=Seg6Encap((sid,), Seg6Mode.ENCAP_RED))
                 for sid in sorted(set(route.sids)))
    return FibRoute(route.table, route.prefix, hops)
