"""A removed endpoint's link must not forward (issue 10, finding 18), with real traffic.

One l3fab host ``h`` with an uplink ``up0`` to an underlay router ``u`` (2001:db8:ff::9
on its lo, inside the underlay prefix) and two endpoints: ``x1`` (tenant X) and ``x2``
(tenant Y).  ``x1`` sends echo requests to the host itself (10.255.2.1 and
2001:db8:ff::1 on h's lo), to the underlay router, and - encapsulated by its own kernel
- to ``x2``'s SID, which would deliver it into tenant Y.

While ``x1`` is an endpoint, its filter drops all of it.  After ``endpoint remove``,
l3fab 785e02a left the gateway addresses on ``vm-x1`` and the nft table accepted
whatever did not come from an endpoint: every one of those packets arrived.  Now the
gateway addresses go and an interface l3fab does not know is kept from the underlay,
the locator and the host: every packet is dropped, and counted as ``strangers``.  The
attacker in ``x1`` pins h's MAC for its gateways, so the test does not depend on
neighbour resolution; deleting l3fab's table shows the same packets do arrive without
it, so each drop is the filter's doing.

Arrival is counted where the packet arrives (an nft counter in the receiving
namespace, after l3fab's own chains), not by echo replies: after the removal nothing
routes replies back to ``x1``, with or without the fix.
"""
from __future__ import annotations

import json

import pytest

from l3fab.dataplane import nft
from l3fab.lab.netns import Lab, Namespace, wait_until
from l3fab.lab.peers.l3fab import L3fabNode
from l3fab.lab.tenant_fabric import configure_guest

pytestmark = pytest.mark.timeout(300)

X1_4, X1_6, X2_4, X2_6 = "10.7.0.1", "fd07::1", "10.8.0.2", "fd08::2"
HOST4, HOST6, UNDERLAY6 = "10.255.2.1", "2001:db8:ff::1", "2001:db8:ff::9"
COUNT = 3


def probe(ns: Namespace, name: str, match: str) -> None:
    """Count, in ``ns``'s input hook after any filter, the packets that match."""
    ns.run(["nft", "-f", "-"], input=f"table inet {name} {{\n chain c {{\n  type filter hook input priority 10; "
                                     f"policy accept;\n  {match} counter\n }}\n}}\n")


def arrived(ns: Namespace, name: str) -> int:
    listing = json.loads(ns.run(["nft", "-j", "list", "table", "inet", name]).stdout)
    for item in listing["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return int(expr["counter"]["packets"])
    raise AssertionError(f"no counter in {listing}")


def stranger_drops(h: Namespace) -> int:
    """The ``strangers`` counter of l3fab's table, read from the kernel (0 without it)."""
    out = h.run(["nft", "-j", "list", "counters", "table", "inet", "l3fab"], check=False).stdout
    for item in json.loads(out or '{"nftables": []}')["nftables"]:
        if item.get("counter", {}).get("name") == "strangers":
            return int(item["counter"]["packets"])
    return 0


def gateways(h: Namespace, ifname: str) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for d in h.ip_json("addr", "show", "dev", ifname)
            for a in d.get("addr_info", [])}


@pytest.fixture
def fabric(lab: Lab):
    h, u = lab.add_namespace("h"), lab.add_namespace("u")
    x1, x2 = lab.add_namespace("x1", forwarding=False), lab.add_namespace("x2", forwarding=False)
    lab.link(h, u, "up0", "eth0")
    h.ip("-6", "addr", "add", "fd10::1/64", "dev", "up0", "nodad")
    u.ip("-6", "addr", "add", "fd10::2/64", "dev", "eth0", "nodad")
    u.ip("-6", "addr", "add", f"{UNDERLAY6}/128", "dev", "lo")
    h.ip("-6", "route", "add", f"{UNDERLAY6}/128", "via", "fd10::2", "dev", "up0")
    h.ip("addr", "add", f"{HOST4}/32", "dev", "lo")
    h.ip("-6", "addr", "add", f"{HOST6}/128", "dev", "lo")
    lab.link(h, x1, "vm-x1", "eth0")
    lab.link(h, x2, "vm-x2", "eth0")
    configure_guest(x1, "eth0", X1_4, X1_6)
    configure_guest(x2, "eth0", X2_4, X2_6)
    cfg = {"router-id": HOST4, "asn": 4200000001,
           "neighbors": [{"name": "u", "interface": "up0", "remote-as": "external", "connect-retry": 1,
                          "families": ["ipv6", "vpnv4", "vpnv6"]}],
           "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:1::/64",
                       "state-file": str(lab.workdir / "intent.json")},
           # no periodic reconcile during the test: the control below deletes l3fab's table for a moment
           "dataplane": {"underlay-prefixes": ["2001:db8::/32"], "reconcile-interval": 3600}}
    node = L3fabNode(lab, h, cfg, log_level="info").start()
    node.api("tenant_create", name="X", vni=700)
    node.api("tenant_create", name="Y", vni=800)
    node.api("endpoint_add", name="x1", tenant="X", interface="vm-x1", ipv4=X1_4, ipv6=X1_6)
    node.api("endpoint_add", name="x2", tenant="Y", interface="vm-x2", ipv4=X2_4, ipv6=X2_6)
    sid = node.api("endpoint_show", name="x2")["sid6"]
    # x1's own kernel encapsulates towards x2's SID (what the fabric does for tenant Y)
    x1.ip("-6", "route", "add", f"{X2_6}/128", "encap", "seg6", "mode", "encap.red", "segs", sid, "dev", "eth0",
          "via", "fe80::1")
    # the attacker in x1 pins the host's MAC for both gateways
    mac = h.ip_json("link", "show", "dev", "vm-x1")[0]["address"]
    x1.ip("neigh", "replace", "169.254.0.1", "lladdr", mac, "dev", "eth0", "nud", "permanent")
    x1.ip("-6", "neigh", "replace", "fe80::1", "lladdr", mac, "dev", "eth0", "nud", "permanent")
    probe(h, "probe_host", f"ip saddr {X1_4} ip daddr {HOST4} icmp type echo-request")
    probe(h, "probe_host6", f"ip6 saddr {X1_6} ip6 daddr {HOST6} icmpv6 type echo-request")
    probe(u, "probe_underlay", f"ip6 saddr {X1_6} ip6 daddr {UNDERLAY6} icmpv6 type echo-request")
    probe(x2, "probe_sid", f"ip6 saddr {X1_6} ip6 daddr {X2_6} icmpv6 type echo-request")
    return lab, h, u, x1, x2, node


def attack(lab: Lab, x1: Namespace) -> None:
    for dst in (HOST4, HOST6, UNDERLAY6, X2_6):
        lab.run(x1, ["ping", "-n", "-q", "-c", str(COUNT), "-i", "0.2", "-W", "1", dst], check=False)


def arrivals(fabric) -> dict[str, int]:
    lab, h, u, x1, x2, node = fabric
    return {"host": arrived(h, "probe_host"), "host6": arrived(h, "probe_host6"),
            "underlay": arrived(u, "probe_underlay"), "sid": arrived(x2, "probe_sid")}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def test_a_removed_endpoint_reaches_neither_host_nor_underlay_nor_a_sid(fabric) -> None:
    lab, h, u, x1, x2, node = fabric
    nothing = {"host": 0, "host6": 0, "underlay": 0, "sid": 0}
    # x1 is an endpoint: all of it is dropped (as host / underlay traffic of x1)
    before = arrivals(fabric)
    attack(lab, x1)
    assert delta(before, arrivals(fabric)) == nothing
    assert gateways(h, "vm-x1") >= {"169.254.0.1/32", "fe80::1/64"}

    node.api("endpoint_remove", name="x1")
    strangers = stranger_drops(h)
    before = arrivals(fabric)
    attack(lab, x1)
    assert delta(before, arrivals(fabric)) == nothing, "the removed endpoint's link still forwards"
    assert stranger_drops(h) - strangers >= 4 * COUNT
    assert nft.strangers(netns=h.netns)["packets"] == stranger_drops(h)
    assert node.api("dataplane")["stranger_drops"]["packets"] == stranger_drops(h)  # in show dataplane --json
    assert not gateways(h, "vm-x1") & {"169.254.0.1/32", "fe80::1/64"}, "gateway addresses left on vm-x1"
    assert "vm-x1" not in h.ip("rule").stdout

    # control: without l3fab's table the same packets arrive, so each drop above is the filter's
    nft.remove(netns=h.netns)
    before = arrivals(fabric)
    attack(lab, x1)
    assert delta(before, arrivals(fabric)) == {"host": COUNT, "host6": COUNT, "underlay": COUNT, "sid": COUNT}
    # any intent change puts the filter back
    node.api("tenant_create", name="Z", vni=900)
    wait_until(lambda: nft.is_installed(netns=h.netns), 10, 0.2, what="l3fab's table back")
    before = arrivals(fabric)
    attack(lab, x1)
    assert delta(before, arrivals(fabric)) == nothing


def test_a_link_never_added_is_a_stranger_and_uplinks_are_not(fabric) -> None:
    """Removing the last endpoint keeps the table (a removed endpoint is a stranger too);
    traffic from the uplink to the host and to the underlay is untouched."""
    lab, h, u, x1, x2, node = fabric
    node.api("endpoint_remove", name="x1")
    node.api("endpoint_remove", name="x2")
    assert nft.is_installed(netns=h.netns)
    before = arrivals(fabric)
    attack(lab, x1)
    assert delta(before, arrivals(fabric))["host"] == 0 and delta(before, arrivals(fabric))["host6"] == 0
    u.ip("-6", "route", "add", f"{HOST6}/128", "via", "fd10::1", "dev", "eth0")
    assert lab.run(u, ["ping", "-n", "-q", "-c", "1", "-W", "2", "-I", UNDERLAY6, HOST6],
                   check=False).returncode == 0
