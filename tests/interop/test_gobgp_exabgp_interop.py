"""l3fab against real GoBGP 3.10 (driven over gRPC) and ExaBGP 5.0.15."""
from __future__ import annotations

import pytest

from l3fab.lab.netns import wait_until
from l3fab.lab.peers.exabgp import ExaBgp
from l3fab.lab.peers.gobgp import GoBgp
from l3fab.lab.peers.l3fab import L3fabNode

pytestmark = pytest.mark.interop

FAMILIES = ["ipv4", "ipv6", "vpnv4", "vpnv6"]


def _pair(lab):
    a = lab.add_namespace("l3")
    b = lab.add_namespace("peer")
    lab.link(a, b, "eth-peer", "eth-l3")
    lab.add_address(a, "eth-peer", "2001:db8:12::1/64")
    lab.add_address(b, "eth-l3", "2001:db8:12::2/64")
    return a, b


def _l3fab(lab, ns, **neighbor):
    return L3fabNode(lab, ns, {
        "router-id": "10.0.0.1", "asn": 65001,
        "neighbors": [{"name": "peer", "address": "2001:db8:12::2", "remote-as": 65002,
                       "families": FAMILIES, "connect-retry": 1, **neighbor}],
    }).start()


def _by_prefix(routes):
    return {r["prefix"]: r for r in routes}


def test_gobgp_paths_both_ways(lab):
    a, b = _pair(lab)
    gobgp = GoBgp(lab, b).start()
    gobgp.start_bgp(65002, "10.0.0.2")
    # PEERS.md: GoBGP passive + a 1 s connect retry on our side gives a session in < 1 s
    gobgp.add_peer("2001:db8:12::1", 65001, families=FAMILIES, passive=True)
    node = _l3fab(lab, a)
    wait_until(lambda: node.established("peer") and gobgp.established("2001:db8:12::1"), 30,
               what="l3fab-GoBGP session Established")

    # GoBGP -> l3fab, added with AddPath
    gobgp.add_path("ipv4", "10.20.0.1/32", "2001:db8:12::2", communities=["65002:1"], med=20)
    gobgp.add_path("ipv6", "2001:db8:20::/64", "2001:db8:12::2")
    gobgp.add_path("vpnv4", "10.30.0.1/32", "2001:db8:99::2", rd="65002:7", label=300,
                   route_targets=["65000:7"])
    gobgp.add_path("vpnv6", "2001:db8:30::1/128", "2001:db8:99::2", rd="10.0.0.2:7", label=301,
                   route_targets=["65000:7"])
    wait_until(lambda: len(node.received("peer")) >= 4, 20, what="GoBGP paths in l3fab's Adj-RIB-In")
    got = _by_prefix(node.received("peer"))
    v4 = got["10.20.0.1/32"]
    assert (v4["family"], v4["next_hop"], v4["as_path"], v4["med"], v4["communities"]) == (
        "ipv4-unicast", "2001:db8:12::2", "65002", 20, ["65002:1"]), v4
    assert got["2001:db8:20::/64"]["family"] == "ipv6-unicast"
    vpn4 = got["10.30.0.1/32"]
    assert (vpn4["family"], vpn4["rd"], vpn4["labels"], vpn4["next_hop"], vpn4["ext_communities"]) == (
        "vpnv4", "65002:7", [300], "2001:db8:99::2", ["target:65000:7"]), vpn4
    vpn6 = got["2001:db8:30::1/128"]
    assert (vpn6["family"], vpn6["rd"], vpn6["labels"], vpn6["next_hop"], vpn6["ext_communities"]) == (
        "vpnv6", "10.0.0.2:7", [301], "2001:db8:99::2", ["target:65000:7"]), vpn6

    # l3fab -> GoBGP, checked with ListPath
    node.announce(
        {"prefix": "10.40.0.1/32", "communities": ["65001:1"], "med": 5},
        {"prefix": "2001:db8:40::/64"},
        {"prefix": "10.50.0.1/32", "rd": "10.0.0.1:9", "route_targets": ["65000:9"], "labels": [509],
         "next_hop": "2001:db8:99::1"},
        {"prefix": "2001:db8:50::1/128", "rd": "65001:9", "route_targets": ["65000:9"], "labels": [510],
         "next_hop": "2001:db8:99::1"},
    )

    def learned(fam):
        return {p["prefix"]: p for p in gobgp.list_path(fam) if not p["local"]}

    p4 = wait_until(lambda: learned("ipv4").get("10.40.0.1/32"), 20, what="l3fab IPv4 route in GoBGP")
    assert (p4["nexthop"], p4["as_path"], p4["med"], p4["communities"]) == ("2001:db8:12::1", [65001], 5,
                                                                            ["65001:1"]), p4
    assert wait_until(lambda: learned("ipv6").get("2001:db8:40::/64"), 20, what="l3fab IPv6 route in GoBGP")
    pv4 = wait_until(lambda: learned("vpnv4").get("10.50.0.1/32"), 20, what="l3fab VPNv4 route in GoBGP")
    assert (pv4["rd"], pv4["labels"], pv4["nexthop"], pv4["route_targets"]) == ("10.0.0.1:9", [509], "2001:db8:99::1",
                                                                                ["65000:9"]), pv4
    pv6 = wait_until(lambda: learned("vpnv6").get("2001:db8:50::1/128"), 20, what="l3fab VPNv6 route in GoBGP")
    assert (pv6["rd"], pv6["labels"], pv6["nexthop"], pv6["route_targets"]) == ("65001:9", [510], "2001:db8:99::1",
                                                                                ["65000:9"]), pv6

    node.withdraw({"prefix": "10.50.0.1/32", "rd": "10.0.0.1:9"})
    wait_until(lambda: "10.50.0.1/32" not in learned("vpnv4"), 20, what="VPNv4 withdrawal in GoBGP")


def test_exabgp_routes_both_ways(lab):
    a, b = _pair(lab)
    # l3fab is passive: ExaBGP connects out (it does not listen by default)
    node = _l3fab(lab, a, passive=True)
    exa = ExaBgp(lab, b).start(peer_address="2001:db8:12::1", local_address="2001:db8:12::2",
                               local_as=65002, peer_as=65001, router_id="10.0.0.2")
    wait_until(lambda: node.established("peer") and exa.established(), 40, what="l3fab-ExaBGP session Established")

    exa.announce("announce route 10.20.0.1/32 next-hop 2001:db8:12::2 community [65002:1]")
    exa.announce("announce route 2001:db8:20::/64 next-hop 2001:db8:12::2")
    exa.announce("announce route 10.30.0.1/32 rd 65002:7 label [300] extended-community [target:65000:7] "
                 "next-hop 2001:db8:99::2")
    exa.announce("announce route 2001:db8:30::1/128 rd 65002:7 label [301] extended-community [target:65000:7] "
                 "next-hop 2001:db8:99::2")
    wait_until(lambda: len(node.received("peer")) >= 4, 20, what="ExaBGP routes in l3fab")
    got = _by_prefix(node.received("peer"))
    assert (got["10.20.0.1/32"]["next_hop"], got["10.20.0.1/32"]["communities"]) == ("2001:db8:12::2", ["65002:1"])
    assert got["2001:db8:20::/64"]["family"] == "ipv6-unicast"
    for prefix, label in (("10.30.0.1/32", 300), ("2001:db8:30::1/128", 301)):
        r = got[prefix]
        assert (r["rd"], r["labels"], r["next_hop"], r["ext_communities"]) == (
            "65002:7", [label], "2001:db8:99::2", ["target:65000:7"]), r

    # l3fab -> ExaBGP; VPN next hops are 24 octets (SID only): ExaBGP cannot decode 48
    node.announce(
        {"prefix": "10.40.0.1/32", "med": 5},
        {"prefix": "2001:db8:40::/64"},
        {"prefix": "10.50.0.1/32", "rd": "10.0.0.1:9", "route_targets": ["65000:9"], "labels": [509],
         "next_hop": "2001:db8:99::1"},
        {"prefix": "2001:db8:50::1/128", "rd": "10.0.0.1:9", "route_targets": ["65000:9"], "labels": [510],
         "next_hop": "2001:db8:99::1"},
    )
    rx = wait_until(lambda: (lambda r: r if len(r) >= 4 else None)(_by_prefix(exa.received_routes())), 20,
                    what="l3fab routes in ExaBGP")
    assert rx["10.40.0.1/32"]["nexthop"] == "2001:db8:12::1" and rx["10.40.0.1/32"]["med"] == 5, rx["10.40.0.1/32"]
    assert rx["2001:db8:40::/64"]["family"] == "ipv6"
    for prefix, label in (("10.50.0.1/32", 509), ("2001:db8:50::1/128", 510)):
        r = rx[prefix]
        assert (r["rd"], r["labels"], r["nexthop"]) == ("10.0.0.1:9", [label], "2001:db8:99::1"), r
        assert any("65000:9" in str(rt) for rt in r["route_targets"]), r
    assert exa.established()  # no NOTIFICATION: the session stayed up through all of it
