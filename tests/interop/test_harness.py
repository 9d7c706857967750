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

It also checks the lab's own promises (teardown leaves nothing behind, even
after a failure) and the harnesses' translations to plain data.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from l3fab.lab.netns import Lab, netns_pids, wait_until
from l3fab.lab.peers.frr import FrrRouter

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
    from l3fab.lab.peers.gobgp import GoBgp

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
    from l3fab.lab.peers.exabgp import ExaBgp

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


@pytest.mark.interop("gobgp", "exabgp")
def test_gobgp_exabgp_vpn_both_ways(lab: Lab) -> None:
    """Two non-FRR peers: VPN routes keep RD, labels and route targets both ways."""
    from l3fab.lab.peers.exabgp import ExaBgp
    from l3fab.lab.peers.gobgp import GoBgp

    g_ns, e_ns = lab.add_namespace("gobgp"), lab.add_namespace("exa")
    g_if, e_if = lab.link(g_ns, e_ns, "gobgp-exa", "exa-gobgp")
    g_ns.add_address(g_if, "2001:db8:1::1/64")
    e_ns.add_address(e_if, "2001:db8:1::2/64")
    gobgp = GoBgp(lab, g_ns).start()
    gobgp.start_bgp(asn=65002, router_id="10.0.0.2")
    gobgp.add_peer("2001:db8:1::2", 65003, families=["vpnv4", "vpnv6"], passive=True)
    exabgp = ExaBgp(lab, e_ns).start(
        peer_address="2001:db8:1::1", local_address="2001:db8:1::2", local_as=65003,
        peer_as=65002, router_id="10.0.0.3", families=["ipv4 mpls-vpn", "ipv6 mpls-vpn"])
    wait_until(lambda: exabgp.established() and gobgp.established("2001:db8:1::2"),
               SESSION_TIMEOUT, what="GoBGP <-> ExaBGP session")

    gobgp.add_path("vpnv6", "fd00::5/128", "2001:db8:aa::7", rd="10.0.0.2:100",
                   route_targets=["65000:100", "10.0.0.2:5"], label=101)
    exabgp.announce("announce route 192.168.30.1/32 rd 65003:7 label 300 "
                    "extended-community target:65000:7 next-hop 2001:db8:1::2")

    at_exabgp = wait_until(lambda: [r for r in exabgp.received_routes() if r["family"] == "vpnv6"],
                           ROUTE_TIMEOUT, what="VPNv6 route from GoBGP in ExaBGP")
    assert [(r["rd"], r["prefix"], r["labels"], r["route_targets"], r["nexthop"])
            for r in at_exabgp] == [("10.0.0.2:100", "fd00::5/128", [101],
                                     ["65000:100", "10.0.0.2:5"], "2001:db8:aa::7")]
    at_gobgp = wait_until(lambda: [p for p in gobgp.list_path("vpnv4") if not p["local"]],
                          ROUTE_TIMEOUT, what="VPNv4 route from ExaBGP in GoBGP")
    assert [(p["rd"], p["prefix"], p["labels"], p["route_targets"], p["nexthop"], p["as_path"])
            for p in at_gobgp] == [("65003:7", "192.168.30.1/32", [300], ["65000:7"],
                                    "2001:db8:1::2", [65003])]


@pytest.mark.interop("frr")
def test_lab_teardown_after_failure_leaves_nothing(lab: Lab) -> None:
    a, b = lab.add_namespace("a"), lab.add_namespace("b")
    lab.link(a, b, "a-b", "b-a")
    assert a.run(["hostname"]).stdout.strip() == "a"  # own UTS namespace
    plain = a.popen(["sleep", "300"])
    # Ignores SIGTERM, as does its child: teardown must fall back to SIGKILL.
    stubborn = b.popen(["sh", "-c", "trap '' TERM; sleep 300 & wait"])
    # Detached into its own session, like a daemon started with -d: not tracked.
    a.run(["sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 &"])
    frr = FrrRouter(lab, b).start()
    strays = wait_until(lambda: [p for p in netns_pids(a.netns)
                                 if p not in (plain.pid, stubborn.pid)],
                        5, what="the detached process")
    names = [ns.netns for ns in lab.namespaces.values()]
    lab.stop_timeout = 0.5

    with pytest.raises(RuntimeError, match="test body"):
        with lab:
            raise RuntimeError("test body failed")

    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in names if n in listed]
    assert plain.popen.returncode is not None and stubborn.popen.returncode is not None
    assert not [p for p in strays + list(frr.pids().values()) if Path(f"/proc/{p}").exists()
                and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
    assert not frr.run_dir.exists()
    assert not lab.workdir.exists()


def test_wait_until_returns_the_value_or_says_what_it_awaited() -> None:
    values = iter([None, [], {"state": "up"}])
    assert wait_until(lambda: next(values), 5, 0.001) == {"state": "up"}
    with pytest.raises(AssertionError, match=r"waiting for the answer; last value: \[\]"):
        wait_until(lambda: [], 0.05, 0.01, what="the answer")

    def refuses() -> None:
        raise ConnectionRefusedError("not yet")

    with pytest.raises(AssertionError, match="ConnectionRefusedError: not yet"):
        wait_until(refuses, 0.05, 0.01)


def _exabgp_update(peer: str, announce: dict | None = None, withdraw: dict | None = None,
                   attribute: dict | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {"attribute": attribute or {}}
    if announce:
        update["announce"] = announce
    if withdraw:
        update["withdraw"] = withdraw
    return {"type": "update", "neighbor": {"address": {"local": "::2", "peer": peer},
                                           "direction": "receive",
                                           "message": {"update": update}}}


def test_exabgp_received_routes_replay_announce_withdraw_and_session_loss() -> None:
    """Shapes as ExaBGP 5.0.15 printed them for updates from FRR 8.4 and gobgpd 3.10."""
    from l3fab.lab.peers.exabgp import routes_from_events

    as_path = {"0": {"element": "as-sequence", "value": [65001]}}
    frr_v4 = _exabgp_update("2001:db8:1::1", attribute={"origin": "igp", "as-path": as_path},
                            announce={"ipv4 unicast": {
                                "2001:db8:1::1": [{"nlri": "10.0.0.1/32"}],
                                "fe80::1": [{"nlri": "10.0.0.1/32"}]}})
    gobgp_vpn = _exabgp_update("2001:db8:2::1", attribute={
        "origin": "igp", "community": [[65002, 7]],
        "extended-community": [{"value": 842122827661412, "string": "target:65000:100"}]},
        announce={"ipv4 mpls-vpn": {"2001:db8:aa::5": [
            {"nlri": "192.168.10.5/32", "label": [[100]], "rd": "65002:100"}]}})

    routes = routes_from_events([frr_v4, gobgp_vpn])
    assert [(r["family"], r["prefix"], r["nexthops"], r["as_path"]) for r in routes][0] == \
        ("ipv4", "10.0.0.1/32", ["2001:db8:1::1", "fe80::1"], [65001])
    assert [(r["family"], r["rd"], r["labels"], r["route_targets"], r["communities"])
            for r in routes][1] == ("vpnv4", "65002:100", [100], ["65000:100"], ["65002:7"])

    withdraw = _exabgp_update("2001:db8:1::1",
                              withdraw={"ipv4 unicast": [{"nlri": "10.0.0.1/32"}]})
    assert [r["prefix"] for r in routes_from_events([frr_v4, gobgp_vpn, withdraw])] == \
        ["192.168.10.5/32"]
    down = {"type": "state", "neighbor": {"address": {"local": "::2", "peer": "2001:db8:2::1"},
                                          "state": "down"}}
    assert [r["prefix"] for r in routes_from_events([frr_v4, gobgp_vpn, down])] == \
        ["10.0.0.1/32"]
