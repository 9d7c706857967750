"""The peer harnesses work on their own, without l3fab.

Each test builds a small topology of real BGP implementations in network
namespaces and checks, by polling with a deadline, that routes cross it:

* FRR <-> FRR, unnumbered eBGP: an IPv4 /32 lands in the kernel via an IPv6
  link-local next hop (RFC 8950);
* FRR <-> GoBGP, numbered IPv6: a VPNv4 route added over gRPC reaches FRR with
  its RD, route target and label, and an FRR route reaches GoBGP's RIB;
* FRR <-> ExaBGP, numbered IPv6: an IPv4 /32 with an IPv6 next hop announced
  through the API process reaches FRR (and its kernel), and an FRR route
  reaches ExaBGP's received-updates file.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.netns import Lab, wait_until
from lab.peers.frr import FrrRouter

pytestmark = pytest.mark.interop

SESSION_TIMEOUT = 30
ROUTE_TIMEOUT = 30


def kernel_route(router: FrrRouter, prefix: str) -> dict[str, Any] | None:
    for route in router.kernel_routes("4"):
        if route.get("dst") == prefix.removesuffix("/32"):
            return route
    return None


def bgp_route(router: FrrRouter, afi: str, prefix: str) -> list[dict[str, Any]] | None:
    """The paths FRR holds for ``prefix`` in ``show bgp <afi> unicast json``, or None."""
    return router.vtysh_json(f"show bgp {afi} unicast json").get("routes", {}).get(prefix)


def vpn_paths(router: FrrRouter, afi: str, rd: str, prefix: str) -> list[dict[str, Any]] | None:
    """The VPN paths for (rd, prefix) in FRR's table view, which shows the right next hop."""
    table = router.vtysh_json(f"show bgp {afi} vpn json")
    return table.get("routes", {}).get("routeDistinguishers", {}).get(rd, {}).get(prefix)


def numbered_pair(lab: Lab, other: str) -> tuple[Any, Any]:
    """Namespaces ``frr`` and ``other`` on one veth: 2001:db8:1::1/64 and ::2/64.

    FRR also owns 10.0.0.1/32 on lo, the route it originates.
    """
    frr_ns, other_ns = lab.add_namespace("frr"), lab.add_namespace(other)
    frr_if, other_if = lab.link(frr_ns, other_ns, f"frr-{other}", f"{other}-frr")
    frr_ns.add_address(frr_if, "2001:db8:1::1/64")
    other_ns.add_address(other_if, "2001:db8:1::2/64")
    frr_ns.add_address("lo", "10.0.0.1/32")
    return frr_ns, other_ns


def frr_numbered_config(peer_as: int, families: list[str], extra: str = "") -> str:
    """FRR AS 65001 peering actively with 2001:db8:1::2, originating 10.0.0.1/32."""
    peer = "2001:db8:1::2"
    lines = [
        "router bgp 65001",
        " bgp router-id 10.0.0.1",
        f" neighbor {peer} remote-as {peer_as}",
        f" neighbor {peer} timers connect 1",
        *[f" {line}" for line in extra.splitlines() if line.strip()],
        " address-family ipv4 unicast",
        "  network 10.0.0.1/32",
        " exit-address-family",
    ]
    for family in families:
        lines += [f" address-family {family}", f"  neighbor {peer} activate",
                  " exit-address-family"]
    return "\n".join(lines)


@pytest.mark.interop("frr")
def test_frr_unnumbered_ipv4_route_via_ipv6_link_local(lab: Lab) -> None:
    r1_ns, r2_ns = lab.add_namespace("r1"), lab.add_namespace("r2")
    lab.link(r1_ns, r2_ns, "r1-r2", "r2-r1", mtu=9000)
    r1_ns.add_address("lo", "10.0.0.1/32")
    r1 = FrrRouter(lab, r1_ns).start("""
        router bgp 65001
         bgp router-id 10.0.0.1
         neighbor r1-r2 interface remote-as external
         address-family ipv4 unicast
          network 10.0.0.1/32
         exit-address-family
    """)
    r2 = FrrRouter(lab, r2_ns).start("""
        router bgp 65002
         bgp router-id 10.0.0.2
         neighbor r2-r1 interface remote-as external
    """)

    wait_until(lambda: r1.established("r1-r2") and r2.established("r2-r1"),
               SESSION_TIMEOUT, what="FRR unnumbered session r1-r2")
    route = wait_until(lambda: kernel_route(r2, "10.0.0.1/32"), ROUTE_TIMEOUT,
                       what="10.0.0.1/32 in r2's kernel")

    assert route["protocol"] == "bgp"
    assert route["dev"] == "r2-r1"
    assert route["via"] == {"family": "inet6", "host": r1_ns.link_local("r1-r2")}


@pytest.mark.interop("frr", "gobgp")
def test_frr_gobgp_vpnv4_and_unicast_exchange(lab: Lab) -> None:
    from lab.peers.gobgp import GoBgp

    frr_ns, gobgp_ns = numbered_pair(lab, "gobgp")
    gobgp = GoBgp(lab, gobgp_ns).start()
    gobgp.start_bgp(asn=65002, router_id="10.0.0.2")
    # GoBGP's own active connect waits 5-10 s and collides; let FRR connect.
    gobgp.add_peer("2001:db8:1::1", 65001, families=["ipv4", "ipv6", "vpnv4", "vpnv6"],
                   passive=True)
    frr = FrrRouter(lab, frr_ns).start(frr_numbered_config(
        65002, ["ipv4 unicast", "ipv6 unicast", "ipv4 vpn", "ipv6 vpn"]))

    wait_until(lambda: gobgp.established("2001:db8:1::1") and frr.established("2001:db8:1::2"),
               SESSION_TIMEOUT, what="FRR <-> GoBGP session")
    gobgp.add_path("vpnv4", "192.168.10.5/32", "2001:db8:aa::5", rd="65002:100",
                   route_targets=["65000:100"], label=100, communities=["65002:7"])

    paths = wait_until(lambda: vpn_paths(frr, "ipv4", "65002:100", "192.168.10.5/32"),
                       ROUTE_TIMEOUT, what="VPNv4 route from GoBGP in FRR")
    assert [nh["ip"] for nh in paths[0]["nexthops"]] == ["2001:db8:aa::5"]
    assert paths[0]["path"] == "65002"
    detail = frr.vtysh_json("show bgp ipv4 vpn 192.168.10.5/32 json")["65002:100"]["paths"][0]
    assert detail["extendedCommunity"]["string"] == "RT:65000:100"
    assert detail["remoteLabel"] == 100
    assert detail["community"]["list"] == ["65002:7"]

    received = wait_until(
        lambda: [p for p in gobgp.list_path("ipv4") if p["prefix"] == "10.0.0.1/32"],
        ROUTE_TIMEOUT, what="10.0.0.1/32 from FRR in GoBGP")
    assert received[0]["neighbor"] == "2001:db8:1::1"
    assert received[0]["as_path"] == [65001]
    assert received[0]["best"]
    local = gobgp.list_path("vpnv4")
    assert [(p["rd"], p["prefix"], p["labels"], p["route_targets"], p["local"]) for p in local] \
        == [("65002:100", "192.168.10.5/32", [100], ["65000:100"], True)]


@pytest.mark.interop("frr", "exabgp")
def test_frr_exabgp_ipv4_with_ipv6_next_hop(lab: Lab) -> None:
    from lab.peers.exabgp import ExaBgp

    frr_ns, exa_ns = numbered_pair(lab, "exa")
    frr = FrrRouter(lab, frr_ns).start(frr_numbered_config(
        65003, ["ipv4 unicast", "ipv6 unicast"],
        extra="neighbor 2001:db8:1::2 capability extended-nexthop"))
    exabgp = ExaBgp(lab, exa_ns).start(
        peer_address="2001:db8:1::1", local_address="2001:db8:1::2", local_as=65003,
        peer_as=65001, router_id="10.0.0.3", families=["ipv4 unicast", "ipv6 unicast"])

    wait_until(lambda: exabgp.established() and frr.established("2001:db8:1::2"),
               SESSION_TIMEOUT, what="FRR <-> ExaBGP session")
    assert exabgp.announce("announce route 10.9.0.1/32 next-hop 2001:db8:1::2 "
                           "community 65003:1") == "done"

    paths = wait_until(lambda: bgp_route(frr, "ipv4", "10.9.0.1/32"), ROUTE_TIMEOUT,
                       what="10.9.0.1/32 from ExaBGP in FRR")
    assert paths[0]["valid"]
    assert paths[0]["nexthops"][0]["ip"] == "2001:db8:1::2"
    assert paths[0]["nexthops"][0]["afi"] == "ipv6"
    route = wait_until(lambda: kernel_route(frr, "10.9.0.1/32"), ROUTE_TIMEOUT,
                       what="10.9.0.1/32 in FRR's kernel")
    assert route["via"] == {"family": "inet6", "host": "2001:db8:1::2"}

    def frr_route_at_exabgp() -> list[dict[str, Any]]:
        return [r for r in exabgp.received_routes()
                if r["family"] == "ipv4" and r["prefix"] == "10.0.0.1/32"]

    received = wait_until(frr_route_at_exabgp, ROUTE_TIMEOUT,
                          what="10.0.0.1/32 from FRR in ExaBGP's received updates")
    assert received[0]["as_path"] == [65001]
    assert received[0]["nexthop"] == "2001:db8:1::1"
    assert exabgp.established(), "the session must stay up after the exchange"
