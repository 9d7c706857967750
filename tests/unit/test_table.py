"""The table layer: decision process, Loc-RIB, next-hop tracking, export rules, Adj-RIB-Out."""
from __future__ import annotations

from l3fab.speaker.table.adj_rib_out import AdjRibOut
from l3fab.speaker.table.decision import DecisionConfig, compare, select
from l3fab.speaker.table.export import ExportContext, export_path
from l3fab.speaker.table.nexthop import NexthopTracker
from l3fab.speaker.table.path import LOCAL, Path, Source
from l3fab.speaker.table.rib import LocRib
from l3fab.speaker.wire import (
    IPV4_UNICAST, IPV6_UNICAST, VPNV4, AsPath, ClusterList, LocalPref, Med, MessageReader, MpNextHop, Origin,
    OriginatorId, Prefix, RouteDistinguisher, VpnPrefix, route_target,
)
from l3fab.speaker.wire.attributes import ExtendedCommunities
from l3fab.speaker.wire.context import CodecContext

PFX = Prefix.parse("10.1.0.0/24")


def src(name, asn=65002, rid="10.0.0.2", addr="2001:db8::2", ibgp=False, client=False):
    return Source(name, addr, asn, rid, ibgp, client, 65001)


def path(source, *attrs, key=PFX, nh="2001:db8::2", family=IPV4_UNICAST, labels=()):
    base = {type(a): a for a in (Origin(0), AsPath.sequence(source.asn or 65002))}
    for a in attrs:
        base[type(a)] = a
    return Path(family, key, MpNextHop(nh) if nh else None, tuple(base.values()), labels, source)


# ---------------------------------------------------------------- decision process

def test_each_decision_step_in_order():
    a, b = src("a", rid="10.0.0.2"), src("b", rid="10.0.0.3", addr="2001:db8::3")
    cases = [
        (path(a, LocalPref(200)), path(b, LocalPref(100)), "local-pref"),
        (path(a, AsPath.sequence(65002)), path(b, AsPath.sequence(65002, 65003)), "as-path"),
        (path(a, Origin(0)), path(b, Origin(2)), "origin"),
        (path(a, Med(5)), path(b, Med(10)), "med"),
        (path(a), path(src("b", rid="10.0.0.3", ibgp=True)), "ebgp"),
        (path(a), path(b), "router-id"),
        (path(a, OriginatorId("10.0.0.1")), path(b), "router-id"),
        (path(src("a", rid="10.0.0.9"), ClusterList(("1.1.1.1",))),
         path(src("b", rid="10.0.0.9", addr="2001:db8::1"), ClusterList(("1.1.1.1", "2.2.2.2"))), "cluster-list"),
        (path(src("a", addr="2001:db8::1")), path(src("b", addr="2001:db8::9")), "peer-address"),
    ]
    for better, worse, step in cases:
        assert compare(better, worse) == (-1, step), step
        assert compare(worse, better) == (1, step), step
    local = Path(IPV4_UNICAST, PFX, None, (Origin(2), AsPath.sequence(1, 2, 3)), (), LOCAL)
    assert compare(local, path(a, LocalPref(1000)))[1] == "local"


def test_med_only_between_same_neighbour_as_unless_always_compare():
    a = path(src("a", asn=65002, rid="10.0.0.9"), Med(50), AsPath.sequence(65002))
    b = path(src("b", asn=65003, rid="10.0.0.1", addr="2001:db8::3"), Med(10), AsPath.sequence(65003))
    assert compare(b, a)[1] == "router-id"          # MEDs of different ASes are not compared
    assert compare(b, a, DecisionConfig(always_compare_med=True)) == (-1, "med")


def test_multipath_same_as_relax_and_maximum():
    s1 = src("spine1", asn=65000, rid="10.0.0.11", addr="fe80::1")
    s2 = src("spine2", asn=65000, rid="10.0.0.12", addr="fe80::2")
    h = src("host", asn=65099, rid="10.0.0.13", addr="fe80::3")
    p1, p2 = path(s1, AsPath.sequence(65000, 65101)), path(s2, AsPath.sequence(65000, 65101))
    p3 = path(h, AsPath.sequence(65099, 65101))
    best, multi, _ = select([p2, p1, p3])
    assert best is p1 and set(multi) == {p1, p2}    # different neighbour AS: not without relax
    _, multi, _ = select([p2, p1, p3], DecisionConfig(multipath_relax=True))
    assert set(multi) == {p1, p2, p3}
    _, multi, _ = select([p2, p1, p3], DecisionConfig(maximum_paths=1))
    assert multi == (p1,)
    longer = path(s2, AsPath.sequence(65000, 65100, 65101))
    assert select([p1, longer])[1] == (p1,)          # unequal AS path length never shares
    ibgp = path(src("rr", asn=65001, rid="10.0.0.1", ibgp=True), AsPath.sequence(65000, 65101))
    assert ibgp not in select([p1, p2, ibgp], DecisionConfig(multipath_relax=True))[1]


# ---------------------------------------------------------------- Loc-RIB

def test_loc_rib_reports_best_changes_once_per_burst():
    rib = LocRib(IPV4_UNICAST)
    a, b = src("a", rid="10.0.0.2"), src("b", rid="10.0.0.3", addr="2001:db8::3")
    rib.add(path(b))
    rib.add(path(a))
    (ch,) = rib.process()
    assert ch.old_best is None and ch.best.source.name == "a" and len(ch.multipath) == 2
    assert rib.process() == []
    rib.remove("a", PFX)
    (ch,) = rib.process()
    assert ch.best.source.name == "b" and ch.multipath == (ch.best,)
    rib.remove("b", PFX)
    (ch,) = rib.process()
    assert ch.best is None and PFX not in rib.dests


# ---------------------------------------------------------------- next hops

def test_vpn_next_hop_follows_the_locator_in_the_underlay():
    nht = NexthopTracker()
    vpn = LocRib(VPNV4, valid=nht.valid)
    key = VpnPrefix(RouteDistinguisher.parse("10.0.0.5:100"), Prefix.parse("192.168.1.5/32"))
    p = path(src("leaf", addr="fe80::1"), key=key, nh="2001:db8:0:5::100", family=VPNV4, labels=(100,))
    vpn.add(p)
    assert vpn.process() == [] and vpn.dests[key].best is None  # the SID's locator is unknown
    locator = Prefix.parse("2001:db8:0:5::/64")
    nht.underlay_update(IPV6_UNICAST, locator, True)
    vpn.touch(nht.recheck()[VPNV4])
    assert vpn.process()[0].best is p
    nht.underlay_update(IPV6_UNICAST, locator, False)  # the locator is withdrawn
    vpn.touch(nht.recheck()[VPNV4])
    (ch,) = vpn.process()
    assert ch.best is None and ch.old_best is p


def test_direct_next_hops_need_no_underlay_and_connected_prefixes_count():
    nht = NexthopTracker()
    assert nht.valid(path(src("a", addr="fe80::9"), nh="fe80::9"))
    assert nht.valid(path(src("a", addr="2001:db8::2"), nh="2001:db8::2"))
    third_party = path(src("a", addr="2001:db8::2"), nh="2001:db8:77::1")
    assert not nht.valid(third_party)
    connected = (6, int.from_bytes(Prefix.parse("2001:db8:77::/64").packed, "big"), 64)
    assert nht.set_connected({connected}) == {"2001:db8:77::1"}
    assert nht.valid(third_party)


def test_a_route_cannot_resolve_its_next_hop_through_itself():
    nht = NexthopTracker()
    own = Prefix.parse("2001:db8:5::/48")
    nht.underlay_update(IPV6_UNICAST, own, True)
    p = path(src("a", addr="2001:db8::2", ibgp=True), key=own, nh="2001:db8:5::1", family=IPV6_UNICAST)
    assert not nht.valid(p)


# ---------------------------------------------------------------- export

def ctx(**kw):
    base = dict(peer_name="spine1", peer_as=65000, local_as=65101, router_id="10.0.0.1",
                families=frozenset({IPV4_UNICAST, IPV6_UNICAST, VPNV4}),
                self_next_hop=MpNextHop("fe80::aa"), extended_next_hop=frozenset({IPV4_UNICAST}))
    base.update(kw)
    return ExportContext(**base)


def test_ebgp_export_prepends_and_strips():
    learned = path(src("host", asn=65099, addr="fe80::5"), LocalPref(300), Med(7), OriginatorId("1.1.1.1"),
                   AsPath.sequence(65099), nh="fe80::5")
    out = export_path(learned, ctx())
    assert out.as_path.asns() == [65101, 65099]
    assert out.get(LocalPref) is None and out.get(Med) is None and out.get(OriginatorId) is None
    assert out.next_hop == MpNextHop("fe80::aa")    # unicast: next-hop-self
    assert export_path(learned, ctx(peer_name="host")) is None     # never back to its source
    assert export_path(learned, ctx(peer_as=65099)) is None        # its AS is in the path already
    assert export_path(learned, ctx(extended_next_hop=frozenset())) is None  # RFC 8950 not negotiated


def test_vpn_next_hop_is_kept_without_its_link_local_part():
    key = VpnPrefix(RouteDistinguisher.parse("10.0.0.5:100"), Prefix.parse("192.168.1.5/32"))
    p = path(src("host", asn=65099, addr="fe80::5"), ExtendedCommunities((route_target("65000:100"),)),
             key=key, family=VPNV4, labels=(100,))
    p = p.with_next_hop(MpNextHop("2001:db8:0:5::100", "fe80::5"))
    out = export_path(p, ctx())
    assert out.next_hop == MpNextHop("2001:db8:0:5::100") and out.labels == (100,)
    assert out.route_targets == (route_target("65000:100"),)


def test_route_reflection_rules():
    rr = dict(ibgp=True, peer_as=65101, cluster_id="10.0.0.100")
    from_client = path(src("c1", asn=65101, rid="10.0.0.21", ibgp=True, client=True), AsPath())
    from_nonclient = path(src("n1", asn=65101, rid="10.0.0.31", ibgp=True), AsPath())
    to_client, to_nonclient = ctx(**rr, rr_client=True), ctx(**rr, rr_client=False)
    out = export_path(from_client, to_nonclient)
    assert out.originator_id == "10.0.0.21" and out.cluster_list == ("10.0.0.100",)
    assert out.local_pref == 100 and out.get(LocalPref) is not None
    assert export_path(from_nonclient, to_client) is not None
    assert export_path(from_nonclient, to_nonclient) is None


# ---------------------------------------------------------------- Adj-RIB-Out

def test_adj_rib_out_packs_and_suppresses_unchanged():
    out = AdjRibOut()
    s = src("a")
    paths = [path(s, key=Prefix.parse(f"10.0.{i}.0/24")) for i in range(250)]
    for p in paths:
        out.stage(IPV4_UNICAST, p.key, p)
    msgs = out.flush(CodecContext())
    assert len(msgs) == 1                             # 250 prefixes, one attribute set, one UPDATE
    r = MessageReader()
    r.feed(msgs[0])
    (upd,) = list(r.messages())
    assert len(upd.reachable()[0][2]) == 250
    moved = paths[0]._replace(source=src("b", rid="10.0.0.3"))
    out.stage(IPV4_UNICAST, moved.key, moved)         # same wire form from another source
    assert not out.pending()
    out.stage(IPV4_UNICAST, paths[1].key, None)
    r.feed(b"".join(out.flush(CodecContext())))
    (wd,) = list(r.messages())
    assert wd.unreachable()[0][1] == (paths[1].key,)


def test_ipv6_route_over_an_ipv4_session_gets_a_mapped_next_hop():
    """Regression: the locator (IPv6 unicast, next-hop-self) over an IPv4 session went out
    with a 4-octet next hop, which the peer must reject (RFC 7606: session reset)."""
    local = Path(IPV6_UNICAST, Prefix.parse("2001:db8:0:11::/64"), None, (Origin(0), AsPath()), (), LOCAL)
    out = export_path(local, ctx(self_next_hop=MpNextHop("127.0.0.1"), families=frozenset({IPV6_UNICAST})))
    assert out.next_hop == MpNextHop("::ffff:127.0.0.1")
