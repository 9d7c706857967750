"""l3fab against real FRR 8.4 (the SONiC routing stack) in network namespaces."""
from __future__ import annotations

import pytest

from l3fab.lab.netns import WaitTimeout, wait_until
from l3fab.lab.peers.frr import FrrRouter
from l3fab.lab.peers.l3fab import L3fabNode

pytestmark = pytest.mark.interop

FAMILIES = ["ipv4", "ipv6", "vpnv4", "vpnv6"]

FRR_NUMBERED = """
    route-map SET-RT permit 10
     set extcommunity rt 65000:7
    !
    router bgp 65002
     bgp router-id 10.0.0.2
     no bgp ebgp-requires-policy
     no bgp network import-check
     no bgp default ipv4-unicast
     bgp bestpath as-path multipath-relax
     neighbor 2001:db8:12::1 remote-as 65001
     neighbor 2001:db8:12::1 timers connect 1
     neighbor 2001:db8:12::1 capability extended-nexthop
     neighbor 2001:db8:13::1 remote-as 65003
     neighbor 2001:db8:13::1 timers connect 1
     neighbor 2001:db8:13::1 capability extended-nexthop
     address-family ipv4 unicast
      network 10.20.0.1/32
      neighbor 2001:db8:12::1 activate
     exit-address-family
     address-family ipv6 unicast
      network 2001:db8:20::/64
      neighbor 2001:db8:12::1 activate
     exit-address-family
     address-family ipv4 vpn
      network 10.30.0.1/32 rd 65002:7 label 300 route-map SET-RT
      neighbor 2001:db8:12::1 activate
      neighbor 2001:db8:12::1 attribute-unchanged next-hop
      neighbor 2001:db8:13::1 activate
     exit-address-family
     address-family ipv6 vpn
      network 2001:db8:30::1/128 rd 65002:7 label 301 route-map SET-RT
      neighbor 2001:db8:12::1 activate
      neighbor 2001:db8:12::1 attribute-unchanged next-hop
      neighbor 2001:db8:13::1 activate
     exit-address-family
    !
"""


def _numbered(lab, with_injector=False, enhe=True):
    """l3fab (ns l3) -- FRR (ns frr) numbered over IPv6; optionally a second l3fab (ns inj)
    behind FRR that originates VPN routes FRR relays with ``attribute-unchanged next-hop``."""
    a = lab.add_namespace("l3")
    b = lab.add_namespace("frr")
    lab.link(a, b, "eth-frr", "eth-l3")
    lab.add_address(a, "eth-frr", "2001:db8:12::1/64")
    lab.add_address(b, "eth-l3", "2001:db8:12::2/64")
    conf = FRR_NUMBERED if enhe else "\n".join(
        line for line in FRR_NUMBERED.splitlines() if "capability extended-nexthop" not in line)
    frr = FrrRouter(lab, b).start(conf)
    node = L3fabNode(lab, a, {
        "router-id": "10.0.0.1", "asn": 65001,
        "neighbors": [{"name": "frr", "address": "2001:db8:12::2", "remote-as": 65002,
                       "families": FAMILIES, "connect-retry": 1}],
    }).start()
    wait_until(lambda: node.established("frr"), 30, what="l3fab-FRR numbered session Established")
    if not with_injector:
        return node, frr
    c = lab.add_namespace("inj")
    lab.link(c, b, "eth-frr", "eth-inj")
    lab.add_address(c, "eth-frr", "2001:db8:13::1/64")
    lab.add_address(b, "eth-inj", "2001:db8:13::2/64")
    inj = L3fabNode(lab, c, {
        "router-id": "10.0.0.3", "asn": 65003,
        "neighbors": [{"name": "frr", "address": "2001:db8:13::2", "remote-as": 65002,
                       "families": FAMILIES, "connect-retry": 1}],
    }).start()
    wait_until(lambda: inj.established("frr"), 30, what="injector-FRR session Established")
    return node, frr, inj


def _gateway(route: dict) -> str:
    """Next hop of an ``ip -j route`` entry: ``gateway``, or ``via.host`` for ``via inet6``."""
    return route.get("gateway") or route.get("via", {}).get("host", "")


def _by_prefix(routes):
    return {r["prefix"]: r for r in routes}


def test_numbered_ipv6_session_routes_both_ways(lab):
    node, frr = _numbered(lab)

    # FRR -> l3fab: every family, VPN with RD, RT and label.
    got = wait_until(lambda: _by_prefix(node.received("frr")) if len(node.received("frr")) >= 4 else None, 20,
                     what="4 FRR routes in l3fab's Adj-RIB-In")
    assert got["10.20.0.1/32"]["family"] == "ipv4-unicast"
    assert got["10.20.0.1/32"]["as_path"] == "65002"
    # RFC 8950: FRR sends IPv4 NLRI with its IPv6 address as next hop
    assert got["10.20.0.1/32"]["next_hop"] == "2001:db8:12::2"
    assert got["2001:db8:20::/64"]["family"] == "ipv6-unicast"
    v4 = got["10.30.0.1/32"]
    assert (v4["family"], v4["rd"], v4["labels"]) == ("vpnv4", "65002:7", [300])
    assert "target:65000:7" in v4["ext_communities"]
    v6 = got["2001:db8:30::1/128"]
    assert (v6["family"], v6["rd"], v6["labels"]) == ("vpnv6", "65002:7", [301])
    assert "target:65000:7" in v6["ext_communities"]
    assert v6["next_hop"] == "2001:db8:12::2"

    # l3fab -> FRR
    node.announce(
        {"prefix": "10.40.0.1/32", "communities": ["65001:1"], "med": 7},
        {"prefix": "2001:db8:40::/64", "large_communities": ["65001:1:2"]},
        {"prefix": "10.50.0.1/32", "rd": "10.0.0.1:9", "route_targets": ["65000:9"], "labels": [509],
         "next_hop": "2001:db8:99::9"},
        {"prefix": "2001:db8:50::1/128", "rd": "65001:9", "route_targets": ["65000:9"], "labels": [510],
         "next_hop": "2001:db8:99::9"},
    )

    def frr_v4():
        r = frr.vtysh_json("show bgp ipv4 unicast 10.40.0.1/32")
        return r if r.get("paths") else None

    p = wait_until(frr_v4, 20, what="10.40.0.1/32 in FRR")["paths"][0]
    assert p["aspath"]["string"] == "65001"
    assert p["metric"] == 7
    assert "65001:1" in p["community"]["string"]
    # FRR installs the IPv4 route with the IPv6 next hop (RFC 8950) in its kernel
    kroute = wait_until(lambda: [r for r in frr.kernel_routes("4") if r.get("dst") == "10.40.0.1"], 20,
                        what="10.40.0.1 in FRR's kernel")[0]
    assert _gateway(kroute) == "2001:db8:12::1" and kroute["via"]["family"] == "inet6", kroute

    p6 = wait_until(lambda: frr.vtysh_json("show bgp ipv6 unicast 2001:db8:40::/64").get("paths"), 20,
                    what="2001:db8:40::/64 in FRR")[0]
    assert "65001:1:2" in p6["largeCommunity"]["string"]

    def frr_vpn(afi):
        t = frr.vtysh_json(f"show bgp {afi} vpn")
        return t.get("routes", {}).get("routeDistinguishers", {})

    rds = wait_until(lambda: frr_vpn("ipv4") if "10.0.0.1:9" in frr_vpn("ipv4") else None, 20,
                     what="VPNv4 route from l3fab in FRR")
    path = rds["10.0.0.1:9"]["10.50.0.1/32"][0]
    assert path["nexthops"][0]["ip"] == "2001:db8:99::9"
    detail = frr.vtysh("show bgp ipv4 vpn rd 10.0.0.1:9 10.50.0.1/32")
    assert "RT:65000:9" in detail and "509" in detail, detail
    rds6 = wait_until(lambda: frr_vpn("ipv6") if "65001:9" in frr_vpn("ipv6") else None, 20,
                      what="VPNv6 route from l3fab in FRR")
    assert rds6["65001:9"]["2001:db8:50::1/128"][0]["nexthops"][0]["ip"] == "2001:db8:99::9"
    detail6 = frr.vtysh("show bgp ipv6 vpn rd 65001:9 2001:db8:50::1/128")
    assert "RT:65000:9" in detail6 and "510" in detail6, detail6

    # withdraw reaches FRR
    node.withdraw({"prefix": "10.50.0.1/32", "rd": "10.0.0.1:9"}, {"prefix": "10.40.0.1/32"})
    wait_until(lambda: not frr_vpn("ipv4").get("10.0.0.1:9"), 20, what="VPNv4 withdrawal in FRR")
    wait_until(lambda: not frr.vtysh_json("show bgp ipv4 unicast 10.40.0.1/32").get("paths"), 20,
               what="IPv4 withdrawal in FRR")


def test_route_refresh_both_ways_and_notifications(lab):
    node, frr = _numbered(lab)
    node.announce({"prefix": "10.40.0.1/32"})
    wait_until(lambda: len(node.received("frr")) >= 4, 20, what="FRR routes in l3fab")
    wait_until(lambda: frr.vtysh_json("show bgp ipv4 unicast 10.40.0.1/32").get("paths"), 20, what="l3fab route in FRR")

    # l3fab asks FRR for a refresh: FRR answers with its routes again
    before = node.neighbor("frr")["updates_in"]
    node.cli("neighbor", "refresh", "frr", "--family", "vpnv4")
    wait_until(lambda: node.neighbor("frr")["updates_in"] > before, 15, what="FRR re-sending after ROUTE-REFRESH")
    assert len(node.received("frr", "vpnv4")) == 1

    # FRR asks l3fab (soft inbound reset sends ROUTE-REFRESH): l3fab re-sends
    def frr_stats():
        return frr.bgp_neighbors()["2001:db8:12::1"]["messageStats"]

    before = frr_stats()["updatesRecv"]
    frr.vtysh("clear bgp ipv4 unicast 2001:db8:12::1 soft in")
    wait_until(lambda: frr_stats()["updatesRecv"] > before, 15, what="l3fab answering FRR's ROUTE-REFRESH")
    assert frr.vtysh_json("show bgp ipv4 unicast 10.40.0.1/32").get("paths")

    # A hard clear: FRR sends Cease/administrative reset; l3fab goes down and comes back
    frr.vtysh("clear bgp 2001:db8:12::1")
    wait_until(lambda: node.neighbor("frr")["established_count"] >= 2 and node.established("frr"), 30,
               what="session re-established after clear bgp")
    n = node.neighbor("frr")
    assert n["last_notification_in"].startswith("6/4"), n
    wait_until(lambda: len(node.received("frr")) >= 4, 20, what="routes back after re-establishment")

    # Shutdown with an RFC 9003 message, then back
    frr.configure("""
        router bgp 65002
         neighbor 2001:db8:12::1 shutdown message maintenance-window
    """)
    wait_until(lambda: not node.established("frr"), 15, what="session down after FRR shutdown")
    n = node.neighbor("frr")
    assert n["last_notification_in"].startswith("6/2") and "maintenance-window" in n["last_notification_in"], n
    assert node.received("frr") == []
    frr.configure("""
        router bgp 65002
         no neighbor 2001:db8:12::1 shutdown
    """)
    wait_until(lambda: node.established("frr"), 30, what="session back after no shutdown")


FRR_UNNUMBERED = """
    router bgp 65002
     bgp router-id 10.0.0.2
     no bgp ebgp-requires-policy
     no bgp network import-check
     no bgp default ipv4-unicast
     neighbor eth-l3 interface remote-as external
     address-family ipv4 unicast
      network 10.20.0.1/32
      neighbor eth-l3 activate
     exit-address-family
     address-family ipv6 unicast
      network 2001:db8:20::/64
      neighbor eth-l3 activate
     exit-address-family
     address-family ipv4 vpn
      neighbor eth-l3 activate
     exit-address-family
    !
"""


@pytest.mark.parametrize("frr_passive", [False, True], ids=["both-active", "frr-passive"])
def test_unnumbered_link_local_session(lab, frr_passive):
    a = lab.add_namespace("l3")
    b = lab.add_namespace("frr")
    lab.link(a, b, "eth-frr", "eth-l3")
    conf = FRR_UNNUMBERED
    if frr_passive:
        conf = conf.replace("neighbor eth-l3 interface remote-as external",
                            "neighbor eth-l3 interface remote-as external\n     neighbor eth-l3 passive")
    frr = FrrRouter(lab, b).start(conf)
    node = L3fabNode(lab, a, {
        "router-id": "10.0.0.1", "asn": 4200000001,
        "neighbors": [{"name": "spine", "interface": "eth-frr", "remote-as": "external",
                       "families": ["ipv4", "ipv6", "vpnv4"], "connect-retry": 1}],
    }).start()
    wait_until(lambda: node.established("spine"), 40, what="unnumbered session Established")
    n = node.neighbor("spine")
    assert n["address"].startswith("fe80:") and n["peer_as"] == 65002
    assert "ipv4-unicast" in n["capabilities"]["extended_next_hop"]

    got = wait_until(lambda: _by_prefix(node.received("spine")) if len(node.received("spine")) >= 2 else None, 20,
                     what="FRR routes over the unnumbered session")
    # FRR's RFC 8950 next hop on an unnumbered link is its link-local address
    nh = got["10.20.0.1/32"]
    assert (nh["next_hop"] or "").startswith("fe80:") or (nh["link_local_next_hop"] or "").startswith("fe80:"), nh

    node.announce({"prefix": "10.40.0.1/32"}, {"prefix": "2001:db8:40::/64"})
    kroute = wait_until(lambda: [r for r in frr.kernel_routes("4") if r.get("dst") == "10.40.0.1"], 20,
                        what="l3fab's IPv4 route in FRR's kernel")[0]
    # installed as "10.40.0.1 via inet6 fe80::... dev eth-l3"
    assert _gateway(kroute) == a.link_local("eth-frr") and kroute["dev"] == "eth-l3", kroute
    assert kroute["via"]["family"] == "inet6", kroute
    k6 = wait_until(lambda: [r for r in frr.kernel_routes("6") if r.get("dst") == "2001:db8:40::/64"], 20,
                    what="l3fab's IPv6 route in FRR's kernel")[0]
    assert _gateway(k6) == a.link_local("eth-frr"), k6


@pytest.mark.parametrize("enhe", [True, False], ids=["extended-nexthop", "no-extended-nexthop"])
def test_vpn_transit_through_frr_keeps_sid_and_48_octet_next_hops(lab, enhe):
    """The fabric case: a host's VPN routes cross an FRR leaf with ``attribute-unchanged
    next-hop``.  Without ``capability extended-nexthop`` FRR sends VPNv6 with the 48-octet
    next hop (RD + SID + RD + its link-local address) on the shared link, and rewrites
    VPNv4 next hops to its IPv4 router-id; with it, both keep the SID in 24 octets."""
    node, frr, inj = _numbered(lab, with_injector=True, enhe=enhe)
    inj.announce(
        {"prefix": "10.60.0.1/32", "rd": "10.0.0.3:9", "route_targets": ["65000:9"], "labels": [609],
         "next_hop": "2001:db8:99::9"},
        {"prefix": "2001:db8:60::1/128", "rd": "10.0.0.3:9", "route_targets": ["65000:9"], "labels": [610],
         "next_hop": "2001:db8:99::9"},
    )
    got = wait_until(lambda: {r["prefix"]: r for r in node.received("frr") if r["rd"] == "10.0.0.3:9"} or None, 20,
                     what="relayed VPN routes at l3fab")
    wait_until(lambda: len([r for r in node.received("frr") if r["rd"] == "10.0.0.3:9"]) == 2, 20,
               what="both relayed VPN routes")
    got = {r["prefix"]: r for r in node.received("frr") if r["rd"] == "10.0.0.3:9"}
    v6 = got["2001:db8:60::1/128"]
    assert v6["next_hop"] == "2001:db8:99::9", v6          # the SID, unchanged
    if not enhe:
        assert v6["link_local_next_hop"] == lab.namespaces["frr"].link_local("eth-l3"), v6  # 48-octet form
    assert (v6["labels"], v6["ext_communities"], v6["as_path"]) == ([610], ["target:65000:9"], "65002 65003")
    v4 = got["10.60.0.1/32"]
    assert v4["next_hop"] == ("2001:db8:99::9" if enhe else "10.0.0.2"), v4
    assert (v4["labels"], v4["ext_communities"]) == ([609], ["target:65000:9"])
    # and a withdrawal crosses FRR too
    inj.withdraw({"prefix": "2001:db8:60::1/128", "rd": "10.0.0.3:9"})
    wait_until(lambda: not [r for r in node.received("frr", "vpnv6") if r["rd"] == "10.0.0.3:9"], 20,
               what="relayed VPNv6 withdrawal")


FRR_SECURED = """
    router bgp 65002
     bgp router-id 10.0.0.2
     no bgp ebgp-requires-policy
     no bgp network import-check
     neighbor 2001:db8:12::1 remote-as 65001
     neighbor 2001:db8:12::1 timers connect 1
     neighbor 2001:db8:12::1 password {password}
     neighbor 2001:db8:12::1 ttl-security hops 1
     address-family ipv6 unicast
      network 2001:db8:20::/64
      neighbor 2001:db8:12::1 activate
     exit-address-family
    !
"""


@pytest.mark.parametrize("passive", [False, True], ids=["l3fab-active", "l3fab-passive"])
def test_tcp_md5_and_gtsm_with_frr(lab, passive):
    """TCP-MD5 (RFC 2385) and GTSM (RFC 5082) on both sides; a wrong key keeps the
    session down while the right key on a second neighbour brings it up."""
    a = lab.add_namespace("l3")
    b = lab.add_namespace("frr")
    lab.link(a, b, "eth-frr", "eth-l3")
    lab.add_address(a, "eth-frr", "2001:db8:12::1/64")
    lab.add_address(b, "eth-l3", "2001:db8:12::2/64")
    frr = FrrRouter(lab, b).start(FRR_SECURED.format(password="fabric-key"))

    def node(password, name):
        return L3fabNode(lab, a, {
            "router-id": "10.0.0.1", "asn": 65001, "listen": {"addresses": ["::"], "port": 179},
            "neighbors": [{"name": "frr", "address": "2001:db8:12::2", "remote-as": 65002,
                           "families": ["ipv6"], "connect-retry": 1, "password": password,
                           "ttl-security": True, "passive": passive}],
        }, name=name).start()

    if not passive:
        # The wrong key: FRR's kernel drops l3fab's SYNs, nothing gets through.  (Only
        # tried with l3fab connecting: with l3fab passive, FRR's own SYN retransmissions
        # towards the wrong listener would delay the right session by tens of seconds.)
        wrong = node("not-the-key", "wrong")
        with pytest.raises(WaitTimeout):
            wait_until(lambda: wrong.established("frr"), 6, what="session with a wrong MD5 key")
        assert frr.bgp_neighbors()["2001:db8:12::1"]["bgpState"] != "Established"
        wrong.stop()

    right = node("fabric-key", "right")
    wait_until(lambda: right.established("frr"), 30, what="MD5 + GTSM session Established")
    info = frr.bgp_neighbors()["2001:db8:12::1"]
    assert info["bgpState"] == "Established"
    # FRR requires MD5 on this session and, with ttl-security hops 1, drops anything that
    # arrives with a TTL below 254: the session is up only because l3fab signs with the
    # right key and sends with TTL 255.
    assert info["authenticationEnabled"] == 1 and info["externalBgpNbrMaxHopsAway"] == 1, info
    wait_until(lambda: right.received("frr"), 20, what="route over the secured session")
