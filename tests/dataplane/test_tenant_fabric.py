"""Tenants across a real fabric in namespaces: two l3fab leaves, three l3fab hosts
with the Linux dataplane, a rogue host, endpoints on veths and one on a TAP held by
a test process (lab.tapvm).

Tenants A, B and C exist on every host; B reuses A's addresses (also on the same
host).  The checks read the receiving side (ICMP counters of the endpoint's own
stack, the TAP VM's counts, nftables counters), not only a failed ping.
"""
from __future__ import annotations

import json
import re
import sys
import time

import pytest

from l3fab.lab.netns import Lab, wait_until
from l3fab.lab.tapvm import TapVm
from l3fab.lab.tenant_fabric import TenantFabric, build, locator

pytestmark = pytest.mark.timeout(600)

TENANTS = {"A": 100, "B": 200, "C": 300}


@pytest.fixture(scope="module")
def fab(module_lab: Lab):
    fabric = build(module_lab, hosts=3, rogue=9)
    fabric.wait_established(90)
    for h in fabric.hosts:
        for name, vni in TENANTS.items():
            h.api("tenant_create", name=name, vni=vni)
    h1, h2, h3 = fabric.hosts
    fabric.add_endpoint_ns(h1, "a1", "A", "vm-a1", "10.0.0.1", "fd00::1")
    fabric.add_endpoint_ns(h1, "b1", "B", "vnet-b1", "10.0.0.1", "fd00::1")  # same addresses, same host
    fabric.tap = TapVm.start(module_lab, h2.ns, ifname="tap-a2", mac="02:00:00:00:0a:02", ipv4="10.0.0.2",
                             ipv6="fd00::2")
    h2.api("endpoint_add", name="a2", tenant="A", interface="tap-a2", ipv4="10.0.0.2", ipv6="fd00::2")
    fabric.add_endpoint_ns(h2, "b2", "B", "vm-b2", "10.0.0.2", "fd00::2", rate_limit="50mbit")
    fabric.add_endpoint_ns(h3, "a3", "A", "vm-a3", "10.0.0.3", "fd00::3")
    fabric.add_endpoint_ns(h3, "c3", "C", "vm-c3", "10.9.0.3")
    for h in fabric.hosts:
        want = {"A": {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "B": {"10.0.0.1", "10.0.0.2"}}
        for tenant, addrs in want.items():
            wait_until(lambda h=h, t=tenant, a=addrs: a <= set(h.vrf_routes(t)), 60, 0.3,
                       what=f"{h.name}: VRF {tenant} has {sorted(addrs)}")
    return fabric


def ep(fab: TenantFabric, name: str):
    for h in fab.hosts:
        if name in h.endpoints:
            return h.endpoints[name]
    raise KeyError(name)


def ping(fab: TenantFabric, src: str, dst: str, count: int = 3, source: str | None = None,
         size: int | None = None) -> bool:
    e = ep(fab, src)
    argv = ["ping", "-6" if ":" in dst else "-4", "-c", str(count), "-i", "0.2", "-W", "1"]
    if source:
        argv += ["-I", source]
    if size:
        argv += ["-s", str(size), "-M", "do"]
    return fab.lab.run(e.ns, argv + [dst], check=False).returncode == 0


def echo_requests(fab: TenantFabric, name: str) -> tuple[int, int]:
    """(IPv4, IPv6) ICMP echo requests the endpoint's own stack has received."""
    e = ep(fab, name)
    snmp = fab.lab.run(e.ns, ["cat", "/proc/net/snmp", "/proc/net/snmp6"]).stdout
    lines = snmp.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Icmp:"))
    v4 = dict(zip(lines[head].split()[1:], lines[head + 1].split()[1:]))["InEchos"]
    v6 = re.search(r"^Icmp6InEchos\s+(\d+)", snmp, re.M).group(1)
    return int(v4), int(v6)


def counters(fab: TenantFabric, host: int, endpoint: str) -> dict[str, int]:
    rows = fab.host(host).api("endpoints")
    row = next(r for r in rows if r["name"] == endpoint)
    return {k: v.get("packets", 0) for k, v in (row["counters"] or {}).items()}


# ---------------------------------------------------------------------------- reachability


def test_same_tenant_reachability_ipv4_ipv6_tcp(fab):
    assert ping(fab, "a1", "10.0.0.3") and ping(fab, "a1", "fd00::3")
    assert ping(fab, "b1", "10.0.0.2") and ping(fab, "b1", "fd00::2")
    before = fab.tap.stats()
    assert ping(fab, "a1", "10.0.0.2", count=4) and ping(fab, "a1", "fd00::2", count=2)  # the TAP "VM"
    # the VM writes its counts every 0.1 s
    wait_until(lambda: (fab.tap.stats().requests("icmp", "10.0.0.1") - before.requests("icmp", "10.0.0.1") >= 4
                        and fab.tap.stats().requests("icmpv6", "fd00::1") - before.requests("icmpv6", "fd00::1") >= 2),
               3, 0.1, what="the TAP VM counted the echo requests")
    # 1500-byte packets with DF pass: jumbo underlay, nothing black-holed
    assert ping(fab, "a1", "10.0.0.3", count=2, size=1472)
    # TCP: a server in a3, a client in a1
    server = fab.lab.popen(ep(fab, "a3").ns, [sys.executable, "-c", TCP_SERVER], name="tcp-a3")
    try:
        wait_until(lambda: "listening" in server.log_text(), 10, 0.1, what="tcp server")
        out = fab.lab.run(ep(fab, "a1").ns, [sys.executable, "-c", TCP_CLIENT, "10.0.0.3"], timeout=20).stdout
        assert out.strip() == "echo:hello from a1"
        out6 = fab.lab.run(ep(fab, "a1").ns, [sys.executable, "-c", TCP_CLIENT, "fd00::3"], timeout=20).stdout
        assert out6.strip() == "echo:hello from a1"
    finally:
        fab.lab.stop(server)


TCP_SERVER = """
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("::", 7007)); s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"echo:" + c.recv(100)); c.close()
"""
TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7007), timeout=5); c.sendall(b"hello from a1")
print(c.recv(100).decode())
"""


def test_no_packet_crosses_between_tenants(fab):
    b2_before, a2_before = echo_requests(fab, "b2"), fab.tap.stats()
    assert ping(fab, "a1", "10.0.0.2", count=5)  # A's 10.0.0.2 is the TAP VM on host2
    assert ping(fab, "b1", "fd00::2", count=3)  # B's fd00::2 is b2
    time.sleep(0.3)  # the TAP VM's counts are written every 0.1 s
    b2_after = echo_requests(fab, "b2")
    assert b2_after[0] == b2_before[0], "B's endpoint received A's IPv4 echo requests"
    assert b2_after[1] - b2_before[1] == 3
    assert fab.tap.stats().requests("icmpv6", "fd00::1") == a2_before.requests("icmpv6", "fd00::1"), \
        "A's TAP endpoint received B's IPv6 echo requests"
    # 10.0.0.3 exists only in A: B cannot reach it, and a3 sees nothing of B's attempt
    a3_before = echo_requests(fab, "a3")
    assert not ping(fab, "b1", "10.0.0.3", count=3)
    assert echo_requests(fab, "a3") == a3_before
    # B's table ends in unreachable, never the main table
    b_table = fab.host(1).vrf_routes("B")
    assert b_table["default"]["type"] == "unreachable"
    assert "10.0.0.3" not in b_table


def test_spoofing_underlay_and_host_access_dropped_and_counted(fab):
    a1 = ep(fab, "a1")
    a1.ns.ip("addr", "add", "10.0.0.99/32", "dev", "eth0")
    a1.ns.ip("-6", "addr", "add", "fd00::99/128", "dev", "eth0", "nodad")
    before, a3_before = counters(fab, 1, "a1"), echo_requests(fab, "a3")
    assert not ping(fab, "a1", "10.0.0.3", count=3, source="10.0.0.99")
    assert not ping(fab, "a1", "fd00::3", count=2, source="fd00::99")
    assert echo_requests(fab, "a3") == a3_before, "spoofed packets reached the other endpoint"
    mid = counters(fab, 1, "a1")
    assert mid["spoofed"] - before["spoofed"] >= 5
    a1.ns.ip("addr", "del", "10.0.0.99/32", "dev", "eth0")  # from here on the real source is used
    a1.ns.ip("-6", "addr", "del", "fd00::99/128", "dev", "eth0")
    # the underlay: another host's tunnel source and a SID
    sid = fab.host(2).api("endpoint_show", name="a2")["sid6"]
    assert not ping(fab, "a1", "2001:db8:0:2::1", count=2)
    assert not ping(fab, "a1", sid, count=2)
    after_underlay = counters(fab, 1, "a1")
    assert after_underlay["underlay"] - mid["underlay"] >= 4
    # the host itself (its gateway address and its tunnel source)
    assert not ping(fab, "a1", "169.254.0.1", count=2)
    assert not ping(fab, "a1", "2001:db8:0:1::1", count=2)
    final = counters(fab, 1, "a1")
    assert final["host"] + final["underlay"] - after_underlay["host"] - after_underlay["underlay"] >= 4
    assert final["host"] - after_underlay["host"] >= 2
    # and the real address still works (ND/ARP for the gateway pass)
    assert ping(fab, "a1", "10.0.0.3", count=2) and ping(fab, "a1", "fd00::3", count=2)
    assert counters(fab, 1, "a1")["spoofed"] == mid["spoofed"]


def test_rogue_host_is_filtered_by_the_leaves(fab):
    h2 = fab.host(2)
    underlay_before = h2.ns.ip_json("-6", "route", "show", locator(1))
    vrf_before = h2.vrf_routes("A")
    a1_sid4 = fab.host(1).api("endpoint_show", name="a1")["sid4"]
    rt_a = fab.host(1).api("tenant_show", name="A")["route_target"]
    fab.rogue.announce({"prefix": "10.0.0.77/32", "rd": "10.255.2.9:100", "route_targets": [rt_a],
                        "labels": [100], "next_hop": a1_sid4},  # another host's SID
                       {"prefix": "10.0.0.78/32", "rd": "10.255.2.9:100", "route_targets": [rt_a],
                        "labels": [100], "next_hop": "2001:db8:0:9::100"},  # its own SID: legitimate
                       {"prefix": "10.0.0.79/32", "rd": "10.255.2.9:999", "route_targets": ["target:65000:999"],
                        "labels": [999], "next_hop": "2001:db8:0:9::101"},  # a tenant nobody here has
                       {"prefix": locator(1)},  # another host's locator
                       {"prefix": "2001:db8:99::/48"})  # outside its locator
    # the legitimate route arrives everywhere: the session works and the filter is selective
    wait_until(lambda: "10.0.0.78" in h2.vrf_routes("A"), 30, 0.3, what="rogue's legitimate route on host2")
    for leaf in fab.leaves:
        prefixes = {r["prefix"] for r in leaf.received("h9")}
        assert not {"10.0.0.77/32", locator(1), "2001:db8:99::/48"} & prefixes, prefixes
        assert "10.0.0.78/32" in prefixes
    assert "10.0.0.77" not in h2.vrf_routes("A")
    rejected = json.loads(h2.node.cli("show", "vrf", "--rejected", "--json").stdout)
    assert {"route": "10.255.2.9:999:10.0.0.79/32", "reason": "no route target of a local tenant"} in rejected
    assert all("10.0.0.79" not in str(h2.vrf_routes(t)) for t in TENANTS)
    assert h2.ns.ip_json("-6", "route", "show", locator(1)) == underlay_before
    assert not h2.ns.ip_json("-6", "route", "show", "2001:db8:99::/48")
    assert {k: v for k, v in h2.vrf_routes("A").items() if k != "10.0.0.78"} == vrf_before
    fab.rogue.withdraw({"prefix": "10.0.0.78/32", "rd": "10.255.2.9:100"})
    wait_until(lambda: "10.0.0.78" not in h2.vrf_routes("A"), 30, 0.3, what="withdrawn")


def test_tenant_peering_only_when_both_sides_configure_it(fab):
    h1, h3 = fab.host(1), fab.host(3)
    for h in (h1, h3):
        h.api("tenant_peers", name="A", peers=["C"])
    time.sleep(2)
    assert "10.9.0.3" not in h1.vrf_routes("A")
    assert not ping(fab, "a1", "10.9.0.3", count=2)
    for h in (h1, h3):
        h.api("tenant_peers", name="C", peers=["A"])
    wait_until(lambda: "10.9.0.3" in h1.vrf_routes("A"), 30, 0.3, what="C's route in host1's VRF A")
    wait_until(lambda: "10.0.0.1" in h3.vrf_routes("C"), 30, 0.3, what="A's route in host3's VRF C")
    assert ping(fab, "a1", "10.9.0.3", count=3)
    assert "10.9.0.3" not in h1.vrf_routes("B")  # B never sees C
    for h in (h1, h3):
        h.api("tenant_peers", name="C", peers=[])
    wait_until(lambda: "10.9.0.3" not in h1.vrf_routes("A"), 30, 0.3, what="peering undone")


def test_endpoint_remove_withdraws_everywhere_and_add_restores(fab):
    h1, h3 = fab.host(1), fab.host(3)
    assert ping(fab, "a1", "10.0.0.3", count=2)
    h3.api("endpoint_remove", name="a3")
    for h in fab.hosts[:2]:
        wait_until(lambda h=h: "10.0.0.3" not in h.vrf_routes("A"), 30, 0.3, what=f"{h.name}: a3 withdrawn")
    for leaf in fab.leaves:
        assert not [r for r in leaf.api("rib", family="vpnv4") if r["prefix"].endswith("10.0.0.3/32")]
    assert "10.0.0.3" not in h3.vrf_routes("A")
    assert not ping(fab, "a1", "10.0.0.3", count=2)
    h3.api("endpoint_add", name="a3", tenant="A", interface="vm-a3", ipv4="10.0.0.3", ipv6="fd00::3")
    wait_until(lambda: "10.0.0.3" in h1.vrf_routes("A"), 30, 0.3, what="a3 back on host1")
    assert ping(fab, "a1", "10.0.0.3", count=3) and ping(fab, "a1", "fd00::3", count=2)


def kernel_state(host) -> dict:
    ns = host.ns
    return {"routes": ns.ip("route", "show", "table", "all", "proto", "211").stdout,
            "routes6": ns.ip("-6", "route", "show", "table", "all", "proto", "211").stdout,
            "rules": ns.ip("rule", "show").stdout + ns.ip("-6", "rule", "show").stdout,
            # with handles (a replaced table gets new ones), without counter values (traffic flows)
            "nft": re.sub(r"packets \d+ bytes \d+", "packets - bytes -",
                          host.node.lab.run(ns, ["nft", "-a", "list", "table", "inet", "l3fab"]).stdout)}


def test_restart_keeps_traffic_flowing_and_rebuilds_from_the_store(fab):
    h3 = fab.host(3)
    before_eps = h3.api("endpoint_list")
    before_kernel = kernel_state(h3)
    pinger = fab.lab.popen(ep(fab, "a1").ns, ["ping", "-i", "0.1", "-c", "100", "-W", "1", "10.0.0.3"],
                           name="ping-restart")
    time.sleep(2)
    fab.lab.stop(h3.node.process)  # SIGTERM: graceful, the kernel keeps its state
    time.sleep(1)
    h3.node.start()
    wait_until(lambda: all(n["state"] == "Established" for n in h3.api("neighbors")), 60, 0.3,
               what="host3 sessions back")
    wait_until(lambda: not pinger.alive(), 30, 0.2, what="ping finished")
    out = pinger.log_text()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    sent, got = int(m.group(1)), int(m.group(2))
    assert sent == 100 and sent - got <= 1, out
    assert h3.api("endpoint_list") == before_eps
    wait_until(lambda: h3.api("status")["converged"], 60, 0.3, what="host3 converged")
    assert kernel_state(h3) == before_kernel  # nothing flapped, nothing was rewritten


BAD = [
    ("endpoint", "add", "dup", "--tenant", "A", "--interface", "vm-a1", "--ipv4", "10.0.0.1"),
    ("endpoint", "add", "v6only", "--tenant", "D", "--interface", "vm-a1", "--ipv6", "fd00::77"),
    ("endpoint", "add", "lost", "--tenant", "nosuch", "--interface", "vm-a1", "--ipv4", "10.0.0.50"),
    ("tenant", "create", "E", "--vni", "100"),
    ("endpoint", "add", "ghost", "--tenant", "A", "--interface", "nope0", "--ipv4", "10.0.0.51"),
]


def test_bad_intent_is_refused_and_changes_nothing(fab):
    h1 = fab.host(1)
    h1.api("tenant_create", name="D", vni=400, families="ipv4-only")
    state_file = fab.lab.workdir / "host1-intent.json"
    state_before = state_file.read_bytes()
    kernel_before = kernel_state(h1)
    for argv in BAD:
        r = h1.node.cli(*argv, check=False)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
        assert len(lines) == 1, (argv, r.stderr)
    errors = [h1.node.cli(*argv, check=False).stderr for argv in BAD]
    assert "10.0.0.1" in errors[0] and "ipv4-only" in errors[1] or "fd00::77" in errors[1]
    assert "nosuch" in errors[2] and "100" in errors[3] and "nope0" in errors[4]
    assert state_file.read_bytes() == state_before
    assert kernel_state(h1) == kernel_before
    h1.api("tenant_delete", name="D")


def test_show_commands(fab):
    h1 = fab.host(1)
    vrfs = json.loads(h1.node.cli("show", "vrf", "--json").stdout)
    a = next(v for v in vrfs if v["name"] == "A")
    assert a["mode"] == "ip-rule" and a["imported_routes"] >= 2
    eps = json.loads(h1.node.cli("show", "endpoints", "--json").stdout)
    assert {e["name"]: e["status"] for e in eps} == {"a1": "plumbed", "b1": "plumbed"}
    fib = json.loads(h1.node.cli("show", "fib", "--vrf", "A", "--json").stdout)
    by = {r["prefix"]: r for r in fib}
    sid = fab.host(3).api("endpoint_show", name="a3")["sid4"]
    assert by["10.0.0.3/32"]["nexthops"][0]["encap"] == {"mode": "encap.red", "segs": [sid]}
    assert by["0.0.0.0/0"]["kind"] == "unreachable"
    dp = json.loads(h1.node.cli("show", "dataplane", "--json").stdout)
    assert dp["vrf_mode"].startswith("ip-rule") and dp["tunnel_source"] == "2001:db8:0:1::1"
    assert {s["endpoint"] for s in dp["sids"]} == {"a1", "b1"}
    assert dp["endpoint_mtu"] == 9100 - 40
    assert {r["iif"] for r in dp["rules"] if r["iif"]} == {"vm-a1", "vnet-b1"}
    text = h1.node.cli("show", "dataplane").stdout
    assert "tunnel_source: 2001:db8:0:1::1" in text and "SIDs (seg6local)" in text and "ip rules (l3fab)" in text


def test_rate_limited_endpoint_has_its_shaper(fab):
    h2 = fab.host(2)
    rows = {r["name"]: r for r in h2.api("endpoints")}
    assert rows["b2"]["rate"]["rate_limit"] == 50_000_000 and rows["a2"]["rate"]["rate_limit"] is None
    out = json.loads(fab.lab.run(h2.ns, ["tc", "-j", "qdisc", "show", "dev", "vm-b2"]).stdout)
    tbf = [q for q in out if q.get("kind") == "tbf" and q.get("handle") == "1a3f:"]
    assert tbf and tbf[0]["options"]["rate"] in (50_000_000 // 8, "50Mbit")
    sent_before = rows["b2"]["rate"]["sent_bytes"]
    assert ping(fab, "b1", "10.0.0.2", count=3)
    assert {r["name"]: r for r in h2.api("endpoints")}["b2"]["rate"]["sent_bytes"] > sent_before
    out_a2 = json.loads(fab.lab.run(h2.ns, ["tc", "-j", "qdisc", "show", "dev", "tap-a2"]).stdout)
    assert not [q for q in out_a2 if q.get("handle") == "1a3f:"]  # no limit asked: no shaper


def test_hosts_export_only_their_own_routes(fab):
    """A host is not a transit: to its leaves it announces its locator and the VPN routes
    of its own endpoints (next hop = one of its SIDs), never what other hosts sent it."""
    import ipaddress

    own = ipaddress.ip_network(locator(1))
    for leaf in fab.leaves:
        routes = leaf.api("rib_received_pre", neighbor="h1")  # what host1 sent, before the leaf's filter
        assert routes
        unicast = {r["prefix"] for r in routes if r["family"] == "ipv6-unicast"}
        assert unicast == {locator(1)}, unicast
        vpn = [r for r in routes if r["family"] in ("vpnv4", "vpnv6")]
        assert {r["prefix"] for r in vpn} >= {"10.0.0.1/32", "fd00::1/128"}
        for r in vpn:
            assert ipaddress.ip_address(r["next_hop"]) in own, r
