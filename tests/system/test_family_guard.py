"""A neighbour sends routes of families its session never negotiated (issue 10, finding 1).

``attacker`` is configured ``families: [ipv4]``; over raw UPDATEs (l3fab's codec) it
sends a VPNv4 route carrying a tenant's route target and a SID of its choosing, an
IPv6 /64, and their withdrawals.  None of it may reach the Loc-RIB (``rib``) or the
tenant's VRF (``fib --vrf``: with the FIB disabled the tenant plane still decides its
imports and lists what it would install), and ``show neighbor`` counts what was
ignored, per family.

``leaf`` negotiated IPv6 and VPNv4 and sends the same kind of routes legitimately: the
control that proves this node would import such a route (its SID resolves through
``leaf``'s locator route, which also covers the attacker's SID).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from l3fab.speaker.wire import (
    IPV6_UNICAST,
    VPNV4,
    AsPath,
    ExtendedCommunities,
    MpNextHop,
    MpReachNlri,
    MpUnreachNlri,
    NextHop,
    Origin,
    Prefix,
    RouteDistinguisher,
    Update,
    VpnPrefix,
    route_target,
)

from .conftest import REPO
from .rawpeer import RawPeer, wait

RT = "target:65000:100"  # tenant blue's route target (fabric AS 65000, VNI 100)


def vpnv4(prefix: str, rd: str, sid: str, asn: int) -> Update:
    nlri = VpnPrefix(RouteDistinguisher.parse(rd), Prefix.parse(prefix), (16,))
    return Update(attributes=(MpReachNlri(VPNV4, MpNextHop(sid), (nlri,)), Origin(0), AsPath.sequence(asn),
                              ExtendedCommunities((route_target(RT),))))


def ipv6(prefix: str, next_hop: str, asn: int) -> Update:
    return Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop(next_hop), (Prefix.parse(prefix),)), Origin(0),
                              AsPath.sequence(asn)))


def rib_prefixes(d) -> set[tuple[str, str]]:
    return {(r["family"], r["prefix"]) for r in d.api("rib")}


def vrf_prefixes(d) -> dict[str, list[str]]:
    return {r["prefix"]: r["sids"] for r in d.api("fib", vrf="blue")}


def test_routes_of_families_not_negotiated_are_ignored_and_counted(daemon_factory, tmp_path):
    d = daemon_factory({
        "router-id": "10.0.0.11", "asn": 4200000011, "listen": {"addresses": ["127.0.0.1"], "port": 0},
        "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:11::/64", "state-file": str(tmp_path / "intent.json")},
        "neighbors": [
            {"name": "attacker", "address": "127.0.0.2", "remote-as": 65102, "passive": True, "hold-time": 60,
             "families": ["ipv4"]},
            {"name": "leaf", "address": "127.0.0.3", "remote-as": 65101, "passive": True, "hold-time": 60,
             "families": ["ipv6", "vpnv4"]},
        ]})
    port = d.status["listen_port"]
    assert d.api("tenant_create", name="blue", vni=100)["route_target"] == RT
    leaf = RawPeer(port, families=(IPV6_UNICAST, VPNV4), asn=65101, router_id="10.0.0.3", source="127.0.0.3",
                   hold_time=60)
    # the attacker's OPEN offers IPv4 unicast only, like its configuration
    attacker = RawPeer(port, asn=65102, router_id="10.0.0.2", source="127.0.0.2", hold_time=60)
    try:
        wait(lambda: all(n["state"] == "Established" for n in d.api("neighbors")))
        assert d.api("neighbor", neighbor="attacker")["families"] == ["ipv4-unicast"]

        # the control: leaf's locator and a VPNv4 route behind a SID in it are imported into blue
        leaf.send(ipv6("2001:db8:0:22::/64", "fe80::22", 65101).encode())
        leaf.send(vpnv4("10.9.1.0/24", "10.0.0.22:100", "2001:db8:0:22::100", 65101).encode())
        wait(lambda: "10.9.1.0/24" in vrf_prefixes(d))
        assert vrf_prefixes(d)["10.9.1.0/24"] == ["2001:db8:0:22::100"]

        # the attack: a VPNv4 route into blue (SID inside leaf's locator: it would resolve)
        # and an IPv6 /64, over a session that negotiated neither family
        attacker.send(vpnv4("10.9.2.0/24", "10.0.0.99:100", "2001:db8:0:22::666", 65102).encode())
        attacker.send(ipv6("2001:db8:66::/64", "fe80::66", 65102).encode())
        attacker.send(Update(attributes=(MpUnreachNlri(IPV6_UNICAST, (Prefix.parse("2001:db8:0:22::/64"),)),))
                      .encode())  # a withdrawal of leaf's locator in a foreign family: ignored too
        # then an IPv4 route, which it did negotiate: once that is in the Loc-RIB, everything
        # sent before it has been through the table and the tenant plane
        attacker.send(Update(attributes=(Origin(0), AsPath.sequence(65102), NextHop("127.0.0.2")),
                             nlri=(Prefix.parse("10.66.0.0/24"),)).encode())
        wait(lambda: ("ipv4-unicast", "10.66.0.0/24") in rib_prefixes(d))

        rib = rib_prefixes(d)
        assert ("vpnv4", "10.9.2.0/24") not in rib and ("ipv6-unicast", "2001:db8:66::/64") not in rib
        assert ("ipv6-unicast", "2001:db8:0:22::/64") in rib  # the foreign withdrawal did nothing
        vrf = vrf_prefixes(d)
        assert "10.9.2.0/24" not in vrf, vrf
        assert vrf == {"10.9.1.0/24": ["2001:db8:0:22::100"]}
        assert not any("10.9.2.0" in r["route"] for r in d.api("vrf_rejected"))  # never even offered

        n = d.api("neighbor", neighbor="attacker")
        assert n["ignored_families"] == {"ipv6-unicast": 2, "vpnv4": 1}, n
        assert n["received"] == {"ipv4-unicast": 1}
        assert d.api("neighbor", neighbor="leaf")["ignored_families"] == {}
        assert {r["prefix"] for r in d.api("rib_received", neighbor="attacker")} == {"10.66.0.0/24"}

        # the CLI shows the counter
        r = subprocess.run([sys.executable, "-m", "l3fab.cli.main", "show", "neighbor", "attacker", "--json",
                            "--socket", d.socket], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "COLUMNS": "200"}, timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["ignored_families"] == {"ipv6-unicast": 2, "vpnv4": 1}
    finally:
        attacker.close()
        leaf.close()
