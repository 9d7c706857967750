"""The dataplane's pure parts: intent -> spec (handles), spec -> kernel objects,
and VPN best paths -> VRF routes (the host-import policy applied)."""
from __future__ import annotations

from l3fab.dataplane.intent import DataplaneSettings, build_spec, default_tunnel_source
from l3fab.dataplane.model import RTPROT_L3FAB_VRF, RemoteRoute, handle_for
from l3fab.dataplane.plan import MAIN, build, remote_route
from l3fab.fib.model import RouteKind
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.table.rib import Destination
from l3fab.cli.app.vrf_import import VrfImporter
from l3fab.speaker.wire.attributes import ExtendedCommunities, MpNextHop
from l3fab.speaker.wire.constants import VPNV4
from l3fab.speaker.wire.extcommunity import route_target
from l3fab.speaker.wire.nlri import Prefix, VpnPrefix
from l3fab.speaker.wire.rd import RouteDistinguisher

from tenancy_fixtures import new_intent


def _intent(tmp_path):
    it = new_intent(tmp_path)
    it.create_tenant("A", vni=100)
    it.create_tenant("B", vni=200)
    it.create_tenant("C", vni=300, peers=["A"])
    it.set_peers("A", ["C"])
    it.add_endpoint("a1", "A", "tap1", ipv4="10.0.0.1", ipv6="fd00::1")
    it.add_endpoint("b1", "B", "tap2", ipv4="10.0.0.1", ipv6="fd00::1")  # B reuses A's addresses
    it.add_endpoint("b6", "B", "tap3", ipv6="fd00::6")
    return it


def test_spec_from_intent_gives_unique_stable_handles(tmp_path):
    it = _intent(tmp_path)
    spec = build_spec(it.node.locator, it.tenants(), it.endpoints(), DataplaneSettings())
    ports = {p.name: p for p in spec.ports}
    assert ports["a1"].handle4 != ports["b1"].handle4
    assert ports["b6"].handle4 is None and ports["b6"].sid4 is None
    assert spec.tunnel_source == default_tunnel_source(it.node.locator) == "2001:db8:0:1::1"
    assert spec.underlay_prefixes == ("2001:db8:0:1::/64",)
    # adding another endpoint does not move the handles already given out
    it.add_endpoint("c1", "C", "tap4", ipv4="10.9.0.1")
    spec2 = build_spec(it.node.locator, it.tenants(), it.endpoints(), DataplaneSettings())
    again = {p.name: p for p in spec2.ports}
    assert again["a1"].handle4 == ports["a1"].handle4 and again["b1"].handle4 == ports["b1"].handle4


def test_handle_avoids_gateway_and_collisions():
    first = handle_for(0, set())
    assert first == "169.254.0.2"
    assert handle_for(0, {first}) == "169.254.0.3"
    assert handle_for(65533, set()) != "169.254.0.1"


def test_plan_rules_routes_and_decap(tmp_path):
    it = _intent(tmp_path)
    spec = build_spec(it.node.locator, it.tenants(), it.endpoints(), DataplaneSettings())
    plan = build(spec, vrf_devices=False)
    a, b = (it.tenant("A").table, it.tenant("B").table)
    iif_rules = {(r.family, r.iif, r.table) for r in plan.rules if r.iif}
    assert (4, "tap1", a) in iif_rules and (6, "tap1", a) in iif_rules and (4, "tap2", b) in iif_rules
    under = [r for r in plan.rules if r.src]
    assert len(under) == 1 and under[0].src == spec.tunnel_source and under[0].table == MAIN and under[0].pref == 90
    assert all(r.protocol == RTPROT_L3FAB_VRF for r in plan.rules)
    for t in (a, b, it.tenant("C").table):
        assert plan.routes[t]["0.0.0.0/0"].kind is RouteKind.UNREACHABLE
        assert plan.routes[t]["::/0"].kind is RouteKind.UNREACHABLE
    assert plan.routes[a]["10.0.0.1/32"].nexthops[0].ifname == "tap1"
    assert plan.routes[b]["10.0.0.1/32"].nexthops[0].ifname == "tap2"
    ports = {p.name: p for p in spec.ports}
    main = plan.routes[MAIN]
    dx4 = main[f"{ports['a1'].sid4}/128"].nexthops[0].local
    assert dx4.nh4 == ports["a1"].handle4
    assert main[f"{ports['a1'].handle4}/32"].nexthops[0].ifname == "tap1"
    dt6 = main[f"{ports['b1'].sid6}/128"].nexthops[0].local
    assert dt6.table == b
    assert main["2001:db8:0:1::/64"].kind is RouteKind.UNREACHABLE
    assert plan.addresses["tap1"] == (("169.254.0.1", 32), ("fe80::1", 64))
    assert plan.addresses["lo"] == ((spec.tunnel_source, 128),)
    # with VRF devices: no iif rules, ports enslaved to l3v-<vni>
    vplan = build(spec, vrf_devices=True)
    assert not [r for r in vplan.rules if r.iif]
    assert vplan.enslave["tap1"] == "l3v-100" and vplan.vrf_devices["l3v-200"] == b


def test_remote_route_ecmp_over_sids():
    r = remote_route(RemoteRoute(1001, "10.0.0.2/32", ("2001:db8:0:3::100", "2001:db8:0:2::100")))
    assert [h.encap.segs[0] for h in r.nexthops] == ["2001:db8:0:2::100", "2001:db8:0:3::100"]
    assert all(h.ifname == "l3fab0" and h.encap.mode == 3 for h in r.nexthops)


def _dest(rd: str, prefix: str, nh: str, rts: list[str]) -> Destination:
    key = VpnPrefix(RouteDistinguisher.parse(rd), Prefix.parse(prefix))
    ext = ExtendedCommunities(tuple(route_target(r) for r in rts))
    p = Path(VPNV4, key, MpNextHop(nh), (ext,), (16,), Source("leaf1", "fe80::1", 65101))
    d = Destination(key, (p,))
    d.best, d.multipath = p, (p,)
    return d


def test_import_by_route_target_and_peering(tmp_path):
    it = _intent(tmp_path)
    t = {x.name: x.table for x in it.tenants()}
    imp = VrfImporter(it.import_policy(), t)
    rt_a, rt_b, rt_c = (it.tenant(n).route_target for n in "ABC")
    got = imp.update([_dest("192.0.2.2:1", "10.0.0.2/32", "2001:db8:0:2::100", [rt_a]),
                      _dest("192.0.2.2:2", "10.0.0.2/32", "2001:db8:0:2::101", [rt_b]),
                      _dest("192.0.2.3:3", "10.9.0.3/32", "2001:db8:0:3::100", [rt_c]),
                      _dest("192.0.2.3:9", "10.7.0.3/32", "2001:db8:0:3::102", ["target:65000:999"]),
                      _dest("192.0.2.4:1", "10.0.0.9/32", "2001:db8:0:1::999", [rt_a])])  # inside our locator
    routes = {(r.table, r.prefix): r.sids for r in got}
    assert routes[(t["A"], "10.0.0.2/32")] == ("2001:db8:0:2::100",)
    assert routes[(t["B"], "10.0.0.2/32")] == ("2001:db8:0:2::101",)
    # A and C list each other: C's route goes into both
    assert routes[(t["C"], "10.9.0.3/32")] == routes[(t["A"], "10.9.0.3/32")] == ("2001:db8:0:3::100",)
    assert (t["B"], "10.9.0.3/32") not in routes
    assert not any(p == "10.7.0.3/32" for _t, p in routes)  # unknown RT: nowhere, never the default table
    assert not any(p == "10.0.0.9/32" for _t, p in routes)  # next hop in our locator but no SID of ours
    assert any("inside this host's locator" in why for why in imp.rejected.values())
    # the same prefix from a second host in A: one ECMP route over both SIDs
    got = imp.update([_dest("192.0.2.3:1", "10.0.0.2/32", "2001:db8:0:3::105", [rt_a])])
    both = ("2001:db8:0:2::100", "2001:db8:0:3::105")
    assert sorted(got, key=str) == sorted([RemoteRoute(t["A"], "10.0.0.2/32", both),
                                           RemoteRoute(t["C"], "10.0.0.2/32", both)], key=str)
    # withdrawn (no best path): the route shrinks back, then goes
    gone = _dest("192.0.2.3:1", "10.0.0.2/32", "2001:db8:0:3::105", [rt_a])
    gone.best, gone.multipath = None, ()
    assert RemoteRoute(t["A"], "10.0.0.2/32", ("2001:db8:0:2::100",)) in imp.update([gone])
    gone2 = _dest("192.0.2.2:1", "10.0.0.2/32", "2001:db8:0:2::100", [rt_a])
    gone2.best, gone2.multipath = None, ()
    assert sorted(imp.update([gone2]), key=str) == sorted([RemoteRoute(t["A"], "10.0.0.2/32", ()),
                                                           RemoteRoute(t["C"], "10.0.0.2/32", ())], key=str)
    assert {(r.table, r.prefix) for r in imp.routes()} == {
        (t["B"], "10.0.0.2/32"), (t["A"], "10.9.0.3/32"), (t["C"], "10.9.0.3/32")}


def test_peering_needs_both_sides(tmp_path):
    it = new_intent(tmp_path)
    it.create_tenant("C", vni=300)  # C does not list A
    it.create_tenant("A", vni=100, peers=["C"])
    t = {x.name: x.table for x in it.tenants()}
    imp = VrfImporter(it.import_policy(), t)
    got = imp.update([_dest("192.0.2.3:3", "10.9.0.3/32", "2001:db8:0:3::100", [it.tenant("C").route_target])])
    assert [(r.table, r.prefix) for r in got] == [(t["C"], "10.9.0.3/32")]


def test_remote_routes_are_programmed_in_chunks_by_the_kernel_worker(tmp_path):
    """A burst of imports must not block the event loop (keepalives) while seg6 routes
    go into the kernel: they are programmed in chunks on the kernel worker thread, and
    stale routes are pruned only once everything queued is in (regression: 100k imports
    held the loop for minutes and sessions were reset)."""
    import asyncio
    import threading

    from l3fab.fib.worker import KernelWorker
    from l3fab.speaker.wire.constants import VPNV4
    from l3fab.cli.app.tenant_plane import TenantPlane

    it = new_intent(tmp_path)
    it.create_tenant("A", vni=100)
    loop_thread = threading.get_ident()

    class FakeDataplane:
        def __init__(self) -> None:
            self.batches: list[int] = []
            self.threads: set[int] = set()
            self.converged_calls = 0

        def set_remote(self, routes):
            self.threads.add(threading.get_ident())
            self.batches.append(len(routes))
            return []

        def converged(self) -> None:
            assert sum(self.batches) == 250, "stale routes pruned before everything queued was in"
            self.converged_calls += 1

    dp = FakeDataplane()
    worker = KernelWorker()
    plane = TenantPlane(it, DataplaneSettings(), dp, worker)
    plane.chunk = 100
    rt = it.tenant("A").route_target
    dests = [_dest("192.0.2.2:1", f"10.1.{i // 256}.{i % 256}/32", "2001:db8:0:2::100", [rt]) for i in range(250)]

    async def main() -> None:
        plane.rib_changed(VPNV4, dests)
        plane.rib_converged(None)
        assert dp.batches == [] and dp.converged_calls == 0 and plane.pending == 250  # nothing done in the call
        await plane.drained()
        assert dp.batches == [100, 100, 50] and plane.pending == 0 and dp.converged_calls == 1
        assert loop_thread not in dp.threads  # the kernel work ran on the worker, not in the loop

    try:
        asyncio.run(main())
    finally:
        worker.close()
