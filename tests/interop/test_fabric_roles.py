"""l3fab as leaf and spine of an RFC 7938 fabric, alone and mixed with FRR (SONiC stand-in)."""
from __future__ import annotations

import pytest

from l3fab.lab import fabric
from l3fab.lab.netns import wait_until
from l3fab.lab.peers.gobgp import GoBgp

pytestmark = pytest.mark.interop

LEAF2_LOOPBACK = "2001:db8:ffff:1::2/128"
LEAF2_LOCATOR = "2001:db8:0:2::/64"


@pytest.mark.parametrize("spines, leaves", [
    (["l3fab", "l3fab"], ["l3fab", "l3fab"]),
    (["frr", "frr"], ["l3fab", "l3fab"]),
    (["l3fab", "l3fab"], ["frr", "frr"]),
], ids=["all-l3fab", "frr-spines", "frr-leaves"])
def test_ecmp_over_both_spines_and_failover(lab, spines, leaves):
    f = fabric.build(lab, spines, leaves)
    wait_until(f.all_established, 60, what="every session Established")
    leaf1 = f.node("leaf1")
    for prefix in (LEAF2_LOOPBACK, LEAF2_LOCATOR):
        wait_until(lambda p=prefix: leaf1.next_hop_devices(p) == ["s1", "s2"], 30,
                   what=f"{prefix} in leaf1's kernel over both spines")
    route = leaf1.kernel_route(LEAF2_LOOPBACK)
    assert all(nh["gateway"].startswith("fe80:") for nh in route["nexthops"]), route
    assert route["protocol"] == ("bgp" if leaves[0] == "frr" else "210"), route
    # and the reverse direction, so the ping has a way back
    wait_until(lambda: f.node("leaf2").next_hop_devices("2001:db8:ffff:1::1/128") == ["s1", "s2"], 30,
               what="leaf1's loopback in leaf2's kernel")
    assert f.ping(leaf1, LEAF2_LOOPBACK.split("/")[0])

    # spine1 loses its links: the routes shrink to spine2, traffic still passes
    f.set_links(f.node("spine1"), False)
    wait_until(lambda: leaf1.next_hop_devices(LEAF2_LOOPBACK) == ["s2"], 30,
               what="leaf1's route down to one next hop")
    wait_until(lambda: f.node("leaf2").next_hop_devices("2001:db8:ffff:1::1/128") == ["s2"], 30,
               what="leaf2's route down to one next hop")
    assert f.ping(leaf1, LEAF2_LOOPBACK.split("/")[0])
    # and back to ECMP when the links return
    f.set_links(f.node("spine1"), True)
    wait_until(lambda: leaf1.next_hop_devices(LEAF2_LOOPBACK) == ["s1", "s2"], 60, what="ECMP restored")


def test_vpn_transit_keeps_sid_rd_rt_label_and_follows_the_underlay(lab):
    """GoBGP 'hosts' at both edges; VPN routes cross l3fab leaves and spines unchanged, and
    are withdrawn at the far edge when the SID's locator leaves the underlay."""
    edges = {1: {"name": "hostA", "address": "2001:db8:100::2", "remote-as": 65201,
                 "families": ["ipv6", "vpnv4", "vpnv6"], "connect-retry": 1},
             2: {"name": "hostB", "address": "2001:db8:200::2", "remote-as": 65202,
                 "families": ["ipv6", "vpnv4", "vpnv6"], "connect-retry": 1}}
    f = fabric.build(lab, ["l3fab", "l3fab"], ["l3fab", "l3fab"],
                     leaf_extra={1: [edges[1]], 2: [edges[2]]})
    hosts = {}
    for j, asn in ((1, 65201), (2, 65202)):
        ns = lab.add_namespace(f"host{j}")
        leaf = f.node(f"leaf{j}")
        lab.link(ns, leaf.ns, "uplink", "h", mtu=fabric.MTU)
        lab.add_address(ns, "uplink", f"2001:db8:{j}00::2/64")
        lab.add_address(leaf.ns, "h", f"2001:db8:{j}00::1/64")
        g = GoBgp(lab, ns).start()
        g.start_bgp(asn, f"10.254.0.{j}")
        g.add_peer(f"2001:db8:{j}00::1", 65100 + j, families=["ipv6", "vpnv4", "vpnv6"], passive=True)
        hosts[j] = g
    wait_until(lambda: f.all_established() and all(g.established() for g in hosts.values()), 60,
               what="fabric and host sessions Established")

    sid = "2001:db8:0:a::100"
    locator = hosts[1].add_path("ipv6", "2001:db8:0:a::/64", "2001:db8:100::2")
    hosts[1].add_path("vpnv4", "192.168.10.5/32", sid, rd="10.254.0.1:100", label=100, route_targets=["65000:100"])
    hosts[1].add_path("vpnv6", "fd00:10::5/128", sid, rd="10.254.0.1:100", label=100, route_targets=["65000:100"])

    def at_far_edge(fam):
        return {p["prefix"]: p for p in hosts[2].list_path(fam) if not p["local"]}

    v4 = wait_until(lambda: at_far_edge("vpnv4").get("192.168.10.5/32"), 30, what="VPNv4 route at the far edge")
    v6 = wait_until(lambda: at_far_edge("vpnv6").get("fd00:10::5/128"), 30, what="VPNv6 route at the far edge")
    for p in (v4, v6):
        assert (p["nexthop"], p["rd"], p["labels"], p["route_targets"]) == (sid, "10.254.0.1:100", [100],
                                                                            ["65000:100"]), p
        assert p["as_path"] == [65102, 65000, 65101, 65201], p
    # the spines are pure transit: they hold the VPN routes as valid best paths
    spine_view = f.node("spine1").l3fab.api("rib", family="vpnv4")
    assert [(r["prefix"], r["next_hop"], r["best"], r["valid"]) for r in spine_view] == [
        ("192.168.10.5/32", sid, True, True)], spine_view

    # the locator leaves the underlay: the SID is unreachable, so the VPN routes are
    # withdrawn downstream although hostA still announces them
    hosts[1].delete_path("ipv6", locator)
    wait_until(lambda: not at_far_edge("vpnv4") and not at_far_edge("vpnv6"), 30,
               what="VPN routes withdrawn at the far edge")
    leaf1_view = f.node("leaf1").l3fab.api("rib", family="vpnv4")
    assert [(r["prefix"], r["best"], r["valid"]) for r in leaf1_view] == [("192.168.10.5/32", False, False)]
    # and they come back with the locator
    hosts[1].add_path("ipv6", "2001:db8:0:a::/64", "2001:db8:100::2")
    wait_until(lambda: "192.168.10.5/32" in at_far_edge("vpnv4"), 30, what="VPN routes back at the far edge")
