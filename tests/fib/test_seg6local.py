"""seg6local routes (End.DX4, End.DX6, End.DT6) written by the FIB, proven with real traffic.

Two hosts ``a`` and ``b`` share an IPv6 underlay link (ua <-> ub). Behind each
sits an endpoint namespace on a veth (host ``vm0`` <-> endpoint ``eth0``), set
up as LINUX-DATAPLANE.md's recipe does: the host side owns 169.254.0.1 and
fe80::1, the endpoint routes everything there. Remote endpoints are reached
by ``encap seg6 mode encap.red`` to the owning host's SID; the owning host
decapsulates with the seg6local route our FIB wrote:

* End.DX4 with a unique handle ``nh4 169.254.9.x`` and a main-table route
  ``169.254.9.x/32 dev vm0``: the kernel resolves the inner destination on vm0;
* End.DX6 with ``nh6 fd00:9::x`` and ``fd00:9::x/128 via <endpoint's link-local>
  dev vm0``. A plain device route is not enough for IPv6: the kernel then
  solicits the handle itself on vm0, and nobody answers;
* End.DT6 ``table 100``: the inner destination is looked up in table 100 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pytest

from l3fab.fib import Fib, FibNextHop, FibResult, FibRoute, seg6_route, unicast
from l3fab.fib.model import seg6local_route
from l3fab.lab.netns import CommandFailed, Lab, Namespace, wait_until

from conftest import fib_in  # tests/fib/conftest.py

MAIN, T = 254, 100
UNDERLAY = {"a": "2001:db8:ab::1", "b": "2001:db8:ab::2"}
SID = {"a": "2001:db8:a::", "b": "2001:db8:b::"}      # host SID blocks (/64)
DX4, DX6, DT6 = "100", "101", "102"                    # function part of the SIDs
EP_B4, EP_B6, EP_B6_DT = "10.1.0.5", "2001:db8:e::5", "2001:db8:e::6"   # endpoint behind b
EP_A4, EP_A6 = "10.2.0.7", "2001:db8:f::7"                             # endpoint behind a


def sid(host: str, function: str) -> str:
    return SID[host] + function


def delivery(host: str, ep: Namespace, n: int) -> list[FibRoute]:
    """End.DX4 and End.DX6 to the endpoint behind ``host``, by handles 169.254.9.n, fd00:9::n."""
    nh4, nh6 = f"169.254.9.{n}", f"fd00:9::{n}"
    return [
        seg6local_route(MAIN, sid(host, DX4), action="End.DX4", nh4=nh4, ifname="vm0"),
        unicast(MAIN, f"{nh4}/32", FibNextHop(ifname="vm0")),
        seg6local_route(MAIN, sid(host, DX6), action="End.DX6", nh6=nh6, ifname="vm0"),
        unicast(MAIN, f"{nh6}/128", FibNextHop(ep.link_local("eth0"), "vm0")),
    ]


@dataclass
class Fabric:
    a: Namespace
    b: Namespace
    ep_a: Namespace
    ep_b: Namespace
    fib_a: Fib
    fib_b: Fib

    def want_a(self) -> dict[int, list[FibRoute]]:
        """Host a: encap towards b's SIDs, decapsulation of its own endpoint's SIDs."""
        return {MAIN: [
            seg6_route(MAIN, f"{EP_B4}/32", sid("b", DX4), ifname="ua"),
            seg6_route(MAIN, f"{EP_B6}/128", sid("b", DX6), ifname="ua"),
            seg6_route(MAIN, f"{EP_B6_DT}/128", sid("b", DT6), ifname="ua"),
            *delivery("a", self.ep_a, 8),
        ]}

    def want_b(self) -> dict[int, list[FibRoute]]:
        """Host b: the three seg6local actions, and the way back to a's endpoint."""
        return {MAIN: [
            *delivery("b", self.ep_b, 9),
            seg6local_route(MAIN, sid("b", DT6), action="End.DT6", table_id=T, ifname="ub"),
            seg6_route(MAIN, f"{EP_A4}/32", sid("a", DX4), ifname="ub"),
            seg6_route(MAIN, f"{EP_A6}/128", sid("a", DX6), ifname="ub"),
        ], T: [
            unicast(T, f"{EP_B6_DT}/128", FibNextHop(ifname="vm0")),
        ]}


def _host(lab: Lab, name: str, uplink: str, peer: str) -> Namespace:
    ns = lab.namespace(name)
    ns.add_address(uplink, f"{UNDERLAY[name]}/64")
    ns.ip("-6", "route", "add", f"{SID[peer]}/64", "via", UNDERLAY[peer], "dev", uplink)
    ns.ip("sr", "tunsrc", "set", UNDERLAY[name])
    return ns


def _endpoint(lab: Lab, host: Namespace, name: str, v4: str, v6s: list[str]) -> Namespace:
    """An endpoint namespace on veth host:vm0 <-> ep:eth0, addressed as the recipe says."""
    ep = lab.add_namespace(name, forwarding=False)
    lab.link(host, ep, "vm0", "eth0")
    host.ip("addr", "add", "169.254.0.1/32", "scope", "link", "dev", "vm0")
    host.ip("-6", "addr", "add", "fe80::1/64", "dev", "vm0", "nodad")
    host.ip("route", "add", f"{v4}/32", "dev", "vm0", "scope", "link")
    ep.ip("addr", "add", f"{v4}/32", "dev", "eth0")
    for v6 in v6s:
        ep.ip("-6", "addr", "add", f"{v6}/128", "dev", "eth0", "nodad")
    ep.ip("route", "add", "default", "via", "169.254.0.1", "dev", "eth0", "onlink")
    ep.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
    return ep


@pytest.fixture
def fabric(lab: Lab) -> Iterator[Fabric]:
    lab.add_namespace("a")
    lab.add_namespace("b")
    lab.link("a", "b", "ua", "ub")
    a, b = _host(lab, "a", "ua", "b"), _host(lab, "b", "ub", "a")
    ep_a = _endpoint(lab, a, "epa", EP_A4, [EP_A6])
    ep_b = _endpoint(lab, b, "epb", EP_B4, [EP_B6, EP_B6_DT])
    fab = Fabric(a, b, ep_a, ep_b, fib_in(a), fib_in(b))
    for fib, want in ((fab.fib_a, fab.want_a()), (fab.fib_b, fab.want_b())):
        for table, routes in want.items():
            result = fib.set_desired(table, routes)
            assert result.ok and result.added == len(routes), result
    yield fab
    fab.fib_a.close()
    fab.fib_b.close()


def ping(ns: Namespace, dst: str, wait: float = 2) -> bool:
    argv = ["ping", "-n", "-c", "1", "-W", str(wait), dst]
    return ns.run(argv, check=False).returncode == 0


def pings(ns: Namespace, dst: str) -> None:
    """The first packets may go while ARP/ND resolve: retry for a while."""
    wait_until(lambda: ping(ns, dst, wait=1), timeout=15, what=f"ping {ns.name} -> {dst}")


def seg6local_lines(ns: Namespace) -> dict[str, str]:
    """``{sid: line}`` of ``ip -6 route show table all proto 210`` for seg6local routes."""
    out = ns.ip("-6", "route", "show", "table", "all", "proto", "210").stdout
    return {line.split()[0]: " ".join(line.split()) for line in out.splitlines()
            if "seg6local" in line}


def test_ip_route_shows_what_was_asked_for(fabric):
    lines = seg6local_lines(fabric.b)
    assert "encap seg6local action End.DX4 nh4 169.254.9.9 dev vm0" in lines[sid("b", DX4)]
    assert "encap seg6local action End.DX6 nh6 fd00:9::9 dev vm0" in lines[sid("b", DX6)]
    assert "encap seg6local action End.DT6 table 100 dev ub" in lines[sid("b", DT6)]
    detail = {r["dst"]: r for r in fabric.b.ip_json("-d", "-6", "route", "show", "proto", "210")}
    dx4 = detail[sid("b", DX4)]
    assert (dx4["encap"], dx4["action"], dx4["nh4"], dx4["dev"]) == ("seg6local", "End.DX4",
                                                                     "169.254.9.9", "vm0")
    assert dx4["scope"] == "global"  # what `ip -6 route add ... encap seg6local` gives too


def test_installed_reads_back_as_the_model_values(fabric):
    installed = {r.prefix: r for r in fabric.fib_b.installed()}
    for route in fabric.want_b()[MAIN]:
        local = route.nexthops[0].local
        if local is not None:
            back = installed[route.prefix]
            assert back.table == MAIN and back.metric == route.metric
            assert [nh.local for nh in back.nexthops] == [local]
            assert back.nexthops[0].ifindex == fabric.fib_b.kernel.ifindex(
                route.nexthops[0].ifname)


def test_reconciling_correct_seg6local_routes_changes_nothing(fabric):
    for fib in (fabric.fib_a, fabric.fib_b):
        assert fib.reconcile() == FibResult()
        assert fib.reconcile() == FibResult()
        assert fib.converged() == FibResult()
    # a restarted FIB wanting the same routes finds them right and sends nothing
    again = fib_in(fabric.b)
    try:
        with again.batch() as batch:
            for table, routes in fabric.want_b().items():
                again.set_desired(table, routes)
        assert batch.value == FibResult()
    finally:
        again.close()


def test_iproute2s_seg6local_routes_compare_equal_to_ours(fabric):
    """The kernel's dump of a route made by `ip` equals our encoding, also with `count`."""
    b = fabric.b
    b.ip("-6", "route", "add", "2001:db8:b::200/128", "encap", "seg6local", "action", "End.DX4",
         "nh4", "169.254.9.20", "count", "dev", "vm0", "proto", "210", "table", "300")
    b.ip("-6", "route", "add", "2001:db8:b::201/128", "encap", "seg6local", "action", "End.DX6",
         "nh6", "fd00:9::21", "dev", "vm0", "proto", "210", "table", "300")
    b.ip("-6", "route", "add", "2001:db8:b::202/128", "encap", "seg6local", "action", "End.DT6",
         "table", "100", "dev", "ub", "proto", "210", "table", "300")
    same = [
        seg6local_route(300, "2001:db8:b::200", action="End.DX4", nh4="169.254.9.20",
                        ifname="vm0"),
        seg6local_route(300, "2001:db8:b::201", action="End.DX6", nh6="fd00:9::21", ifname="vm0"),
        seg6local_route(300, "2001:db8:b::202", action="End.DT6", table_id=100, ifname="ub"),
    ]
    fib = fib_in(b, tables=[300])
    try:
        assert fib.set_desired(300, same) == FibResult()  # nothing added, nothing replaced
        assert fib.reconcile() == FibResult()
        # a different action on the same SID is a replace, done in place
        other = seg6local_route(300, "2001:db8:b::200", action="End.DX4", nh4="169.254.9.21",
                                ifname="vm0")
        assert fib.update(other) == FibResult(replaced=1)
        assert "nh4 169.254.9.21" in seg6local_lines(b)["2001:db8:b::200"]
        assert fib.reconcile() == FibResult()
    finally:
        fib.close()


def test_end_dx4_delivers_ipv4_both_ways(fabric):
    pings(fabric.ep_a, EP_B4)
    pings(fabric.ep_b, EP_A4)
    # without b's End.DX4 route the SID leads nowhere: the ping stops working
    fabric.fib_b.converged()
    assert fabric.fib_b.remove(MAIN, sid("b", DX4) + "/128").deleted == 1
    assert not ping(fabric.ep_a, EP_B4, wait=1)


def test_end_dx6_delivers_ipv6_both_ways(fabric):
    pings(fabric.ep_a, EP_B6)
    pings(fabric.ep_b, EP_A6)


def test_end_dt6_looks_up_its_table(fabric):
    b = fabric.b
    # the inner destination is in table 100 only: b's main table has no route for it
    with pytest.raises(CommandFailed):
        b.ip("-6", "route", "get", EP_B6_DT)
    assert [r["dev"] for r in b.ip_json("-6", "route", "show", "table", str(T))] == ["vm0"]
    pings(fabric.ep_a, EP_B6_DT)
    # End.DT6 pointed at an empty table: the same packets are dropped
    fabric.fib_b.update(seg6local_route(MAIN, sid("b", DT6), action="End.DT6", table_id=T + 1,
                                        ifname="ub"))
    assert "End.DT6 table 101" in seg6local_lines(b)[sid("b", DT6)]
    assert not ping(fabric.ep_a, EP_B6_DT, wait=1)
    fabric.fib_b.update(seg6local_route(MAIN, sid("b", DT6), action="End.DT6", table_id=T,
                                        ifname="ub"))
    pings(fabric.ep_a, EP_B6_DT)

