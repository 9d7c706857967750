"""The RIB manager (``speaker/table/manager.py``), driven the way the daemon shell
(``speaker/server.py``) drives it, with no sockets, no asyncio and no clock.

Sessions come up through the sans-IO FSM (``sessions.pair``), so every manager call
gets a real :class:`Negotiated`.  What a peer "sends" is encoded with the peer's codec
and decoded with ours, which is exactly what the FSM hands the daemon; what the manager
sends (``peer_up`` and ``route_refresh`` output, ``drain()``) is decoded back with the
peer's codec and checked field by field.  Timers are only values here: a test "fires"
the restart timer by calling ``stale_expired``.

Five tests are regression tests for defects these tests found (set_connected never
re-deciding, eBGP LOCAL_PREF used, Restart Time 0 kept as 120 s, the pre-policy table
left behind by the End-of-RIB sweep and by peer_down): they failed before the fix.
"""
from __future__ import annotations

import ipaddress
import logging
import struct
from dataclasses import dataclass
from typing import NamedTuple

import pytest

from bgpbytes import attr, next_hop, prefix, update
from sessions import established_with, pair, peer_open
from l3fab.speaker.origination import self_next_hop
from l3fab.speaker.policy import parse_policy
from l3fab.speaker.policy.roles import leaf_from_host
from l3fab.speaker.session import SessionConfig
from l3fab.speaker.session.negotiated import Negotiated
from l3fab.speaker.table.decision import DecisionConfig
from l3fab.speaker.table.export import ExportContext
from l3fab.speaker.table.manager import (
    MaxPrefix,
    PeerTableConfig,
    RibManager,
    RibOutput,
    RibSettings,
    Shutdown,
    StaleTimer,
)
from l3fab.speaker.table.path import LOCAL, Path, Source
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    VPNV4,
    AsPath,
    ClusterList,
    Communities,
    CodecContext,
    ExtendedCommunities,
    Family,
    LocalPref,
    Med,
    MessageReader,
    MpNextHop,
    MpReachNlri,
    MpUnreachNlri,
    NextHop,
    Notification,
    Origin,
    OriginatorId,
    PathId,
    Prefix,
    RouteDistinguisher,
    RouteRefresh,
    Update,
    VpnPrefix,
    route_target,
)
from l3fab.speaker.wire.attributes import parse_community
from l3fab.speaker.wire.capabilities import ADDPATH_SEND, AddPathCap, FourOctetAs, Multiprotocol, RouteRefreshCap
from l3fab.speaker.wire.route_refresh import SUBTYPE_BORR, SUBTYPE_EORR

US_AS, US_ID = 65001, "10.0.0.1"
LOCATOR11 = "2001:db8:0:11::/64"
AS_PATH_65002 = attr(0x40, 2, bytes((2, 1)) + struct.pack("!I", 65002))  # 4-octet AS_SEQUENCE (65002)


# ====================================================================== harness


def decode(data: bytes, codec: CodecContext) -> list:
    r = MessageReader(codec)
    r.feed(data)
    msgs = list(r.messages())
    assert r.buffered == 0, "trailing bytes"
    return msgs


class Route(NamedTuple):
    family: Family
    next_hop: MpNextHop | None
    update: Update

    @property
    def as_path(self) -> list[int]:
        a = self.update.get(AsPath)
        return a.asns() if a is not None else []

    def get(self, cls):
        return self.update.get(cls)


class Received:
    """What one peer got from us, decoded with its own codec."""

    def __init__(self, chunks: list[bytes], codec: CodecContext) -> None:
        self.messages = decode(b"".join(chunks), codec) if chunks else []
        self.routes: dict[str, Route] = {}
        self.withdrawn: set[str] = set()
        self.sequence: list[tuple[str, Family | None]] = []  # ("update"|"eor"|"borr"|"eorr", family)
        for m in self.messages:
            if isinstance(m, RouteRefresh):
                self.sequence.append(({SUBTYPE_BORR: "borr", SUBTYPE_EORR: "eorr"}[m.subtype], m.family))
                continue
            assert isinstance(m, Update), m
            eor = m.end_of_rib()
            if eor is not None:
                self.sequence.append(("eor", eor))
                continue
            self.sequence.append(("update", None))
            for fam, nh, nlri in m.reachable():
                for n in nlri:
                    self.routes[str(n)] = Route(fam, nh, m)
            for _fam, nlri in m.unreachable():
                self.withdrawn.update(str(n) for n in nlri)

    def __bool__(self) -> bool:
        return bool(self.messages)


@dataclass
class PeerSession:
    neg: Negotiated
    peer_codec: CodecContext  # the peer's view (ADD-PATH directions swapped)
    source: Source


def merge(into: RibOutput, more: RibOutput) -> RibOutput:
    for name, chunks in more.send.items():
        into.add_send(name, chunks)
    into.timers += more.timers
    into.shutdowns += more.shutdowns
    into.dirty = into.dirty or more.dirty
    return into


class Node:
    """One :class:`RibManager` and the sessions of its neighbours, wired like ``Speaker``.

    Neighbour number ``n`` (in configuration order, from 1) sits on link 172.16.n.0/24:
    it is 172.16.n.2 with router id 10.0.0.(10+n); we are 172.16.n.1.
    """

    def __init__(self, *peers: PeerTableConfig | str, cluster_id: str | None = None,
                 decision: DecisionConfig | None = None, restart_time: int = 120) -> None:
        cfgs = [p if isinstance(p, PeerTableConfig) else PeerTableConfig(p) for p in peers]
        self.cluster_id = cluster_id
        self.rib = RibManager(RibSettings(US_AS, US_ID, cluster_id, decision or DecisionConfig(), restart_time), cfgs)
        self.numbers = {c.name: i + 1 for i, c in enumerate(cfgs)}
        self.sessions: dict[str, PeerSession] = {}

    def addr(self, name: str) -> str:
        return f"172.16.{self.numbers[name]}.2"

    def local_addr(self, name: str) -> str:
        return f"172.16.{self.numbers[name]}.1"

    def rid(self, name: str) -> str:
        return f"10.0.0.{10 + self.numbers[name]}"

    # ------------------------------------------------------------ session events

    def up(self, name: str, asn: int = 65002, *, families=(IPV4_UNICAST,), rr_client: bool = False,
           next_hop_self: bool = False, enhanced: bool = True, gr_families=None, gr_time: int = 90,
           gr_forwarding: bool = True, addpath: bool = False) -> RibOutput:
        """The session comes up (``Speaker.on_established``)."""
        rid = self.rid(name)
        families = tuple(families)
        if enhanced:
            us = dict(local_as=US_AS, router_id=US_ID, peer_as=asn, families=families,
                      addpath_receive=families if addpath else ())
            them: dict = dict(local_as=asn, router_id=rid, peer_as=US_AS, families=families)
            if gr_families is not None:
                # restarting: the R bit, and the F bit (forwarding state kept) per family; RFC 4724
                # 4.2 keeps stale routes over a restart only for families with the F bit
                them.update(graceful_restart_time=gr_time, graceful_restart_families=tuple(gr_families),
                            restarting=gr_forwarding)
            if addpath:
                them["extra_capabilities"] = (AddPathCap(tuple((f, ADDPATH_SEND) for f in families)),)
            link = pair(us, them)
            link.establish()
            neg, peer_codec = link.a.negotiated, link.b.negotiated.codec
        else:  # a peer with plain RFC 2918 route refresh only
            caps = tuple(Multiprotocol(f) for f in families) + (RouteRefreshCap(), FourOctetAs(asn))
            s, _ = established_with(SessionConfig(US_AS, US_ID, asn, families),
                                    peer_open(asn, router_id=rid, caps=caps))
            neg, peer_codec = s.negotiated, s.negotiated.codec
        assert neg is not None
        source = Source(name, self.addr(name), neg.peer_as, neg.peer_id, neg.ibgp, rr_client, neg.local_as)
        ctx = ExportContext(
            peer_name=name, peer_as=neg.peer_as, local_as=neg.local_as, router_id=US_ID, families=neg.families,
            self_next_hop=self_next_hop(self.local_addr(name), None), ibgp=neg.ibgp, rr_client=rr_client,
            cluster_id=self.cluster_id, next_hop_self=next_hop_self, extended_next_hop=neg.extended_next_hop)
        self.sessions[name] = PeerSession(neg, peer_codec, source)
        return self.rib.peer_up(name, neg, source, ctx)

    def down(self, name: str, notification: bool = False) -> RibOutput:
        """The session ends (``Speaker.on_session_down``): helper mode keeps the families
        of the peer's graceful restart capability unless a NOTIFICATION was involved."""
        gr = self.sessions[name].neg.peer_graceful_restart
        keep = tuple(f for f, _fwd in gr.families) if gr is not None and not notification else ()
        return self.rib.peer_down(name, keep, gr.restart_time if gr is not None else None)

    def send(self, name: str, *messages: Update | bytes) -> RibOutput:
        """``name`` sends UPDATEs: encoded as the peer would, decoded as the FSM would."""
        s = self.sessions[name]
        out = RibOutput()
        for m in messages:
            raw = m if isinstance(m, bytes) else m.encode(s.peer_codec)
            (upd,) = decode(raw, s.neg.codec)
            merge(out, self.rib.update_received(name, upd))
        return out

    # ------------------------------------------------------------ looking at the results

    def received(self, name: str, chunks: list[bytes]) -> Received:
        return Received(chunks, self.sessions[name].peer_codec)

    def drain(self) -> dict[str, Received]:
        return {name: self.received(name, chunks) for name, chunks in self.rib.drain().items()}

    def best(self, text: str, family: Family | None = None) -> Path | None:
        key = Prefix.parse(text)
        family = family or (IPV4_UNICAST if key.afi == 1 else IPV6_UNICAST)
        d = self.rib.loc_rib(family).dests.get(key)
        return d.best if d is not None else None

    def dest(self, text: str, family: Family = IPV4_UNICAST):
        return self.rib.loc_rib(family).dests.get(Prefix.parse(text))


def ipv4(*prefixes: str, nh: str, as_path=(65002,), attrs=()) -> Update:
    return Update(attributes=(Origin(0), AsPath.sequence(*as_path), NextHop(nh)) + tuple(attrs),
                  nlri=tuple(Prefix.parse(p) for p in prefixes))


def mp(family: Family, nh: MpNextHop | str, *nlri, as_path=(65002,), attrs=()) -> Update:
    nh = MpNextHop(nh) if isinstance(nh, str) else nh
    nlri = tuple(Prefix.parse(n) if isinstance(n, str) else n for n in nlri)
    return Update(attributes=(MpReachNlri(family, nh, nlri), Origin(0), AsPath.sequence(*as_path)) + tuple(attrs))


def withdraw(*prefixes: str) -> Update:
    return Update(withdrawn=tuple(Prefix.parse(p) for p in prefixes))


def mp_withdraw(family: Family, *nlri) -> Update:
    nlri = tuple(Prefix.parse(n) if isinstance(n, str) else n for n in nlri)
    return Update(attributes=(MpUnreachNlri(family, nlri),))


def eor(family: Family = IPV4_UNICAST) -> Update:
    return Update() if family == IPV4_UNICAST else Update(attributes=(MpUnreachNlri(family, ()),))


def vpn(text: str, rd: str = "10.0.0.11:100", label: int = 100) -> VpnPrefix:
    return VpnPrefix(RouteDistinguisher.parse(rd), Prefix.parse(text), (label,))


def changed_keys(changed) -> list[str]:
    """Every destination process() reported, duplicates kept."""
    return [str(d.key) for _fam, ds in changed for d in ds]


def connected(*nets: str) -> set[tuple[int, int, int]]:
    out = set()
    for n in nets:
        net = ipaddress.ip_network(n)
        out.add((net.version, int(net.network_address), net.prefixlen))
    return out


def local_path(text: str, *attrs, family: Family | None = None) -> Path:
    key = Prefix.parse(text)
    family = family or (IPV4_UNICAST if key.afi == 1 else IPV6_UNICAST)
    return Path(family, key, None, (Origin(0), AsPath()) + attrs, (), LOCAL)


def policy(terms, default="accept"):
    return parse_policy("p", {"default": default, "terms": terms})


# ====================================================================== best path selection


def test_first_route_is_best_and_reported_once():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    out = node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    assert out.dirty and out.send == {} and out.timers == [] and out.shutdowns == []
    assert node.rib.drain() == {} and not node.rib.pending_out()  # only marked dirty so far
    changed = node.rib.process()
    assert [(f, changed_keys([(f, ds)])) for f, ds in changed] == [(IPV4_UNICAST, ["10.1.0.0/24"])]
    (d,) = changed[0][1]
    assert d.old_best is None and d.best.source.name == "a" and d.multipath == (d.best,)
    assert d.best.next_hop == MpNextHop(node.addr("a")) and d.best.as_path.asns() == [65002]
    assert node.rib.pending_out()
    assert node.rib.process() == []  # nothing happened since
    assert node.rib.counts()["ipv4-unicast"] == 1


def test_local_pref_decides_between_ibgp_paths():
    node = Node("n1", "n2")
    node.up("n1", 65001)
    node.up("n2", 65001)
    node.send("n1", ipv4("10.1.0.0/24", nh=node.addr("n1"), as_path=(65010,), attrs=(LocalPref(100),)))
    node.send("n2", ipv4("10.1.0.0/24", nh=node.addr("n2"), as_path=(65020, 65030, 65040), attrs=(LocalPref(200),)))
    node.rib.process()
    d = node.dest("10.1.0.0/24")
    assert d.best.source.name == "n2" and d.reason == "local-pref"
    assert d.multipath == (d.best,)


def test_shorter_as_path_wins():
    node = Node("a", "b")
    node.up("a", 65002)  # lower router id
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), as_path=(65002, 65010, 65020)))
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(65003, 65020)))
    node.rib.process()
    d = node.dest("10.1.0.0/24")
    assert d.best.source.name == "b" and d.reason == "as-path" and len(d.paths) == 2


@pytest.mark.parametrize("always_compare, same_as, winner, reason", [
    (False, True, "b", "med"),          # same neighbouring AS: the lower MED wins
    (False, False, "a", "router-id"),   # different neighbouring ASes: MED not compared
    (True, False, "b", "med"),          # always-compare-med
])
def test_med(always_compare, same_as, winner, reason):
    node = Node("a", "b", decision=DecisionConfig(always_compare_med=always_compare))
    b_as = 65002 if same_as else 65003
    node.up("a", 65002)
    node.up("b", b_as)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), as_path=(65002, 65020), attrs=(Med(50),)))
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(b_as, 65020), attrs=(Med(10),)))
    node.rib.process()
    d = node.dest("10.1.0.0/24")
    assert (d.best.source.name, d.reason) == (winner, reason)
    assert d.multipath == (d.best,)  # unequal MED (or another AS without relax): no ECMP


@pytest.mark.parametrize("maximum_paths, members", [(1, 1), (2, 2), (64, 3)])
def test_ecmp_over_spines_of_one_as(maximum_paths, members):
    node = Node("s1", "s2", "s3", "host", decision=DecisionConfig(maximum_paths=maximum_paths))
    for s in ("s1", "s2", "s3"):
        node.up(s, 65000)
        node.send(s, ipv4("10.1.0.0/24", nh=node.addr(s), as_path=(65000, 65100)))
    changed = node.rib.process()
    assert changed_keys(changed) == ["10.1.0.0/24"]
    d = node.dest("10.1.0.0/24")
    assert d.best.source.name == "s1"  # lowest router id
    assert [p.source.name for p in d.multipath] == ["s1", "s2", "s3"][:members]


def test_multipath_relax_across_neighbour_ases_and_a_new_member_is_not_an_update():
    node = Node("s1", "s2", "h", decision=DecisionConfig(multipath_relax=False))
    node.up("s1", 65000)
    node.up("s2", 65009)
    node.up("h", 65099)
    node.send("s1", ipv4("10.1.0.0/24", nh=node.addr("s1"), as_path=(65000, 65100)))
    node.rib.process()
    assert set(node.drain()) == {"s2", "h"}
    node.send("s2", ipv4("10.1.0.0/24", nh=node.addr("s2"), as_path=(65009, 65100)))
    assert node.rib.process() == []  # another neighbour AS without relax: not a member, nothing changed
    relaxed = Node("s1", "s2", "h", decision=DecisionConfig(multipath_relax=True))
    relaxed.up("s1", 65000)
    relaxed.up("s2", 65009)
    relaxed.up("h", 65099)
    relaxed.send("s1", ipv4("10.1.0.0/24", nh=relaxed.addr("s1"), as_path=(65000, 65100)))
    relaxed.rib.process()
    relaxed.drain()
    relaxed.send("s2", ipv4("10.1.0.0/24", nh=relaxed.addr("s2"), as_path=(65009, 65100)))
    (ch,) = [d for _f, ds in relaxed.rib.process() for d in ds]
    assert [p.source.name for p in ch.multipath] == ["s1", "s2"]
    assert ch.best.source.name == "s1"
    # the FIB must learn the new member, but the best is unchanged: no peer gets an UPDATE
    assert relaxed.rib.drain() == {}


def test_a_burst_is_decided_once():
    node = Node("a", "b", "c")
    for name, asn in (("a", 65002), ("b", 65003), ("c", 65004)):
        node.up(name, asn)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a"), as_path=(65002, 65010)))
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(65003,)))
    node.send("a", withdraw("10.2.0.0/24"))
    changed = node.rib.process()
    # 10.1 once, with b's path; 10.2 came and went within the burst: never reported
    assert changed_keys(changed) == ["10.1.0.0/24"]
    (d,) = changed[0][1]
    assert d.old_best is None and d.best.source.name == "b" and len(d.paths) == 2
    got = node.drain()
    assert set(got["c"].routes) == {"10.1.0.0/24"} and got["c"].withdrawn == set()
    assert got["c"].routes["10.1.0.0/24"].as_path == [65001, 65003]
    assert node.rib.process() == [] and node.rib.drain() == {}


def test_a_worse_path_changes_nothing():
    node = Node("a", "b", "c")
    for name, asn in (("a", 65002), ("b", 65003), ("c", 65004)):
        node.up(name, asn)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(65003, 65010, 65020)))
    assert node.rib.process() == []
    assert node.rib.drain() == {}
    assert len(node.dest("10.1.0.0/24").paths) == 2


def test_an_identical_reannouncement_sends_no_update():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()  # (reports the destination again: its best is a new, equal Path object)
    assert node.rib.drain() == {} and not node.rib.pending_out()
    assert node.best("10.1.0.0/24").source.name == "a"


# ====================================================================== export


def test_ebgp_route_goes_to_the_other_ebgp_peer_prepended_with_next_hop_self():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.1.1.0/24", nh=node.addr("a"), as_path=(65002, 65010),
                        attrs=(Med(7), Communities((parse_community("65002:1"),)))))
    node.rib.process()
    got = node.drain()
    assert set(got) == {"b"}  # split horizon: nothing back to a
    r = got["b"]
    assert set(r.routes) == {"10.1.0.0/24", "10.1.1.0/24"} and r.withdrawn == set()
    assert len(r.messages) == 1  # one attribute set, one UPDATE
    route = r.routes["10.1.0.0/24"]
    assert route.family == IPV4_UNICAST
    assert route.next_hop == MpNextHop(node.local_addr("b"))
    assert route.get(NextHop).address == node.local_addr("b")
    assert route.as_path == [65001, 65002, 65010]
    assert route.get(Med) is None and route.get(LocalPref) is None  # not to another AS
    assert route.get(Communities).communities == (parse_community("65002:1"),)  # transitive: kept
    assert not node.rib.pending_out()


def test_best_moving_between_peers_withdraws_from_the_new_source():
    node = Node("a", "b", "c")
    for name, asn in (("a", 65002), ("b", 65003), ("c", 65004)):
        node.up(name, asn)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), as_path=(65002, 65010)))
    node.rib.process()
    got = node.drain()
    assert set(got) == {"b", "c"}
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(65003,)))
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.old_best.source.name == "a" and d.best.source.name == "b"
    got = node.drain()
    assert got["b"].withdrawn == {"10.1.0.0/24"} and not got["b"].routes  # b's own route is not echoed
    assert got["a"].routes["10.1.0.0/24"].as_path == [65001, 65003]      # a now learns b's route
    assert got["c"].routes["10.1.0.0/24"].as_path == [65001, 65003]
    node.send("b", withdraw("10.1.0.0/24"))
    node.rib.process()
    got = node.drain()
    assert got["a"].withdrawn == {"10.1.0.0/24"}
    assert got["b"].routes["10.1.0.0/24"].as_path == [65001, 65002, 65010]
    assert got["c"].routes["10.1.0.0/24"].as_path == [65001, 65002, 65010]


def test_split_horizon_even_when_the_source_as_is_not_in_the_path():
    # a route-server-like peer that does not put its AS first: only the source check
    # keeps its route (and a reflected client route) from going back to it
    node = Node("rs", "b")
    node.up("rs", 65002)
    node.up("b", 65003)
    node.send("rs", ipv4("10.1.0.0/24", nh=node.addr("rs"), as_path=(65010,)))
    node.rib.process()
    got = node.drain()
    assert set(got) == {"b"} and got["b"].routes["10.1.0.0/24"].as_path == [65001, 65010]
    out = node.rib.route_refresh("rs", RouteRefresh(IPV4_UNICAST))
    assert not node.received("rs", out.send["rs"]).routes


def test_no_route_to_an_ebgp_peer_whose_as_is_in_the_path():
    node = Node("a", "b", "c")
    node.up("a", 65002)
    node.up("b", 65003)
    node.up("c", 65004)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), as_path=(65002, 65003)))
    node.rib.process()
    got = node.drain()
    assert set(got) == {"c"}


def test_peer_up_sends_the_table_then_end_of_rib_per_family():
    node = Node("a", "b")
    node.up("a", 65002)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.originate([local_path("2001:db8:1::/48")])
    node.rib.process()
    out = node.up("b", 65003, families=(IPV4_UNICAST, IPV6_UNICAST))
    assert set(out.send) == {"b"} and not out.timers and not out.shutdowns
    r = node.received("b", out.send["b"])
    assert r.sequence[-2:] == [("eor", IPV4_UNICAST), ("eor", IPV6_UNICAST)]
    assert all(kind == "update" for kind, _ in r.sequence[:-2])
    assert r.routes["10.1.0.0/24"].as_path == [65001, 65002]
    v6 = r.routes["2001:db8:1::/48"]
    assert v6.family == IPV6_UNICAST and v6.as_path == [65001]
    # an IPv6 route over an IPv4 session: the IPv4-mapped form of our address
    assert ipaddress.ip_address(v6.next_hop.address).ipv4_mapped == ipaddress.ip_address(node.local_addr("b"))
    assert node.rib.drain() == {}  # the initial table went out with peer_up, nothing is left staged


def test_peer_up_with_an_empty_table_is_just_end_of_rib():
    node = Node("a")
    out = node.up("a", 65002)
    assert out.send == {"a": [update()]}  # the IPv4 End-of-RIB: an empty UPDATE


def test_ibgp_split_horizon_without_route_reflection():
    node = Node("n1", "n2", "e")
    node.up("n1", 65001)
    node.up("n2", 65001)
    node.up("e", 65002)
    node.send("n1", ipv4("10.1.0.0/24", nh=node.addr("n1"), as_path=(65010,), attrs=(LocalPref(150),)))
    node.rib.process()
    got = node.drain()
    assert set(got) == {"e"}  # not n2: no reflection between non-clients, and no RR configured
    assert got["e"].routes["10.1.0.0/24"].as_path == [65001, 65010]
    assert got["e"].routes["10.1.0.0/24"].get(LocalPref) is None


def test_ebgp_route_to_ibgp_peers_keeps_next_hop_and_adds_local_pref_and_next_hop_self():
    node = Node("e", "n1", "n2")
    node.up("e", 65002)
    node.up("n1", 65001, next_hop_self=True)
    node.up("n2", 65001)
    node.send("e", ipv4("10.1.0.0/24", nh=node.addr("e"), attrs=(Med(7),)))
    node.rib.process()
    got = node.drain()
    assert set(got) == {"n1", "n2"}
    for name in ("n1", "n2"):
        route = got[name].routes["10.1.0.0/24"]
        assert route.as_path == [65002]  # iBGP: no prepend
        assert route.get(LocalPref) == LocalPref(100)
        assert route.get(Med) == Med(7)
        assert route.get(OriginatorId) is None and route.get(ClusterList) is None  # not reflected
    assert got["n1"].routes["10.1.0.0/24"].next_hop == MpNextHop(node.local_addr("n1"))  # next-hop-self
    assert got["n2"].routes["10.1.0.0/24"].next_hop == MpNextHop(node.addr("e"))        # unchanged


def rr_node() -> Node:
    node = Node("c1", "c2", "n1", "n2", cluster_id="10.0.0.100")
    for name in ("c1", "c2", "n1", "n2"):
        node.up(name, 65001, rr_client=name.startswith("c"))
    return node


def test_route_reflection_between_clients_and_non_clients():
    node = rr_node()
    node.send("c1", ipv4("10.1.0.0/24", nh=node.addr("c1"), as_path=(), attrs=(LocalPref(100),)))
    node.send("n1", ipv4("10.4.0.0/24", nh=node.addr("n1"), as_path=(), attrs=(LocalPref(100),)))
    node.rib.process()
    got = node.drain()
    # a client's route goes to every other iBGP peer, with ORIGINATOR_ID and CLUSTER_LIST
    for name in ("c2", "n1", "n2"):
        route = got[name].routes["10.1.0.0/24"]
        assert route.get(OriginatorId).originator == node.rid("c1")
        assert route.get(ClusterList).cluster_ids == ("10.0.0.100",)
        assert route.next_hop == MpNextHop(node.addr("c1"))  # iBGP: next hop unchanged
        assert route.as_path == []
    # a non-client's route reaches the clients only
    assert set(got["c1"].routes) == {"10.4.0.0/24"}
    assert set(got["c2"].routes) == {"10.1.0.0/24", "10.4.0.0/24"}
    assert got["c2"].routes["10.4.0.0/24"].get(OriginatorId).originator == node.rid("n1")
    assert set(got["n1"].routes) == {"10.1.0.0/24"}
    assert set(got["n2"].routes) == {"10.1.0.0/24"}


def test_reflection_keeps_the_originator_and_prepends_our_cluster():
    node = rr_node()
    node.send("c1", ipv4("10.1.0.0/24", nh=node.addr("c1"), as_path=(),
                         attrs=(OriginatorId("10.9.9.9"), ClusterList(("10.0.0.200",)))))
    node.rib.process()
    route = node.drain()["n1"].routes["10.1.0.0/24"]
    assert route.get(OriginatorId).originator == "10.9.9.9"
    assert route.get(ClusterList).cluster_ids == ("10.0.0.100", "10.0.0.200")


def test_export_policy_filters_sets_and_next_hop_self():
    to_b = policy([
        {"name": "deny", "match": {"prefix": ["10.2.0.0/24"]}, "action": "reject"},
        {"name": "tag", "set": {"communities": {"add": ["65001:7"]}, "next-hop": "self"}, "action": "accept"},
    ])
    node = Node("a", PeerTableConfig("n", export_policy=to_b), "c")
    node.up("a", 65002)
    node.up("n", 65001)
    node.up("c", 65001)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    got = node.drain()
    n = got["n"]
    assert set(n.routes) == {"10.1.0.0/24"}
    assert n.routes["10.1.0.0/24"].get(Communities).communities == (parse_community("65001:7"),)
    assert n.routes["10.1.0.0/24"].next_hop == MpNextHop(node.local_addr("n"))  # the policy's next-hop self
    c = got["c"]  # no export policy: everything, next hop unchanged on iBGP
    assert set(c.routes) == {"10.1.0.0/24", "10.2.0.0/24"}
    assert c.routes["10.1.0.0/24"].next_hop == MpNextHop(node.addr("a"))
    assert c.routes["10.1.0.0/24"].get(Communities) is None


# ====================================================================== loop prevention


@pytest.mark.parametrize("allowas_in, own_as_count, accepted", [
    (0, 1, False), (1, 1, True), (1, 2, False), (2, 2, True),
])
def test_own_as_in_path_and_allowas_in(allowas_in, own_as_count, accepted):
    node = Node(PeerTableConfig("p", allowas_in=allowas_in), "q")
    node.up("p", 65002)
    node.up("q", 65003)
    looped = (65002,) + (US_AS, 65005) * own_as_count
    node.send("p", ipv4("10.7.0.0/24", nh=node.addr("p"), as_path=looped))
    node.send("p", ipv4("10.8.0.0/24", nh=node.addr("p"), as_path=(65002, 65003)))
    changed = node.rib.process()
    assert sorted(changed_keys(changed)) == (["10.7.0.0/24", "10.8.0.0/24"] if accepted else ["10.8.0.0/24"])
    assert (node.best("10.7.0.0/24") is not None) is accepted
    assert (node.rib.peers["p"].rib_in.get(IPV4_UNICAST, Prefix.parse("10.7.0.0/24")) is not None) is accepted


def test_a_looped_reannouncement_withdraws_the_previous_path():
    node = Node("p", "q")
    node.up("p", 65002)
    node.up("q", 65003)
    node.send("p", ipv4("10.7.0.0/24", nh=node.addr("p"), as_path=(65002,)))
    node.rib.process()
    assert "10.7.0.0/24" in node.drain()["q"].routes
    node.send("p", ipv4("10.7.0.0/24", nh=node.addr("p"), as_path=(65002, US_AS)))
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best is None and d.old_best.source.name == "p"
    assert node.drain()["q"].withdrawn == {"10.7.0.0/24"}
    assert node.rib.peers["p"].rib_in.count() == 0


def test_ibgp_route_with_our_router_id_as_originator_is_rejected():
    node = Node("n1")
    node.up("n1", 65001)
    node.send("n1", ipv4("10.1.0.0/24", nh=node.addr("n1"), as_path=(), attrs=(OriginatorId(US_ID),)))
    node.send("n1", ipv4("10.2.0.0/24", nh=node.addr("n1"), as_path=(), attrs=(OriginatorId("10.0.0.99"),)))
    node.rib.process()
    assert node.best("10.1.0.0/24") is None and node.dest("10.1.0.0/24") is None
    assert node.best("10.2.0.0/24").source.name == "n1"


@pytest.mark.parametrize("cluster_id, looped_list", [
    ("10.0.0.100", ("10.0.0.200", "10.0.0.100")),  # the configured cluster id, anywhere in the list
    (None, (US_ID,)),                              # without one, the router id is the cluster id
])
def test_ibgp_route_with_our_cluster_id_is_rejected(cluster_id, looped_list):
    node = Node("c1", "n2", cluster_id=cluster_id)
    node.up("c1", 65001, rr_client=True)
    node.up("n2", 65001)
    node.send("n2", ipv4("10.9.0.0/24", nh=node.addr("n2"), as_path=(),
                         attrs=(OriginatorId("10.0.0.9"), ClusterList(looped_list))))
    node.send("n2", ipv4("10.5.0.0/24", nh=node.addr("n2"), as_path=(),
                         attrs=(OriginatorId("10.0.0.9"), ClusterList(("10.0.0.201",)))))
    assert changed_keys(node.rib.process()) == ["10.5.0.0/24"]
    assert [str(k) for k in node.rib.peers["n2"].rib_in.tables[IPV4_UNICAST]] == ["10.5.0.0/24"]
    assert set(node.drain()["c1"].routes) == {"10.5.0.0/24"}


# ====================================================================== import policy


def test_import_policy_rejects_a_prefix():
    imp = policy([{"name": "no-10-2", "match": {"prefix": ["10.2.0.0/24"]}, "action": "reject"}])
    node = Node(PeerTableConfig("a", import_policy=imp), "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    assert changed_keys(node.rib.process()) == ["10.1.0.0/24"]
    assert node.dest("10.2.0.0/24") is None
    assert node.rib.peers["a"].rib_in.count() == 1
    assert node.rib.peers["a"].rib_in_pre is None  # not kept unless configured
    assert set(node.drain()["b"].routes) == {"10.1.0.0/24"}


def test_import_policy_set_changes_the_stored_path():
    imp = policy([{"name": "prefer", "match": {"prefix": ["10.1.0.0/24"]},
                   "set": {"local-pref": 300, "communities": {"add": ["65001:300"]}}, "action": "accept"}])
    node = Node(PeerTableConfig("a", import_policy=imp), "b", "c")
    node.up("a", 65002)
    node.up("b", 65003)
    node.up("c", 65004)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), as_path=(65002, 65010, 65020)))
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(65003,)))
    node.rib.process()
    d = node.dest("10.1.0.0/24")
    assert d.best.source.name == "a" and d.reason == "local-pref"  # the set made the longer path win
    assert d.best.local_pref == 300 and d.best.communities == (parse_community("65001:300"),)
    stored = node.rib.peers["a"].rib_in.get(IPV4_UNICAST, Prefix.parse("10.1.0.0/24"))
    assert stored is d.best
    sent = node.drain()["c"].routes["10.1.0.0/24"]
    assert sent.get(Communities).communities == (parse_community("65001:300"),)
    assert sent.get(LocalPref) is None  # never to another AS


def test_keep_pre_policy_holds_what_import_policy_rejected():
    imp = policy([{"name": "no-10-2", "match": {"prefix": ["10.2.0.0/24"]}, "action": "reject"}])
    node = Node(PeerTableConfig("a", import_policy=imp, keep_pre_policy=True))
    node.up("a", 65002)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    pr = node.rib.peers["a"]
    assert pr.rib_in_pre is not None
    assert sorted(str(p.key) for p in pr.rib_in_pre.paths(IPV4_UNICAST)) == ["10.1.0.0/24", "10.2.0.0/24"]
    assert [str(p.key) for p in pr.rib_in.paths(IPV4_UNICAST)] == ["10.1.0.0/24"]
    node.send("a", withdraw("10.2.0.0/24"))
    assert [str(p.key) for p in pr.rib_in_pre.paths(IPV4_UNICAST)] == ["10.1.0.0/24"]


def test_keep_pre_policy_holds_looped_routes_too():
    node = Node(PeerTableConfig("a", keep_pre_policy=True))
    node.up("a", 65002)
    node.send("a", ipv4("10.7.0.0/24", nh=node.addr("a"), as_path=(65002, US_AS)))
    pr = node.rib.peers["a"]
    assert pr.rib_in_pre.count(IPV4_UNICAST) == 1 and pr.rib_in.count() == 0


def test_a_reannouncement_the_policy_rejects_withdraws_the_previous_path():
    imp = policy([{"name": "drop-tagged", "match": {"community": ["65002:666"]}, "action": "reject"}])
    node = Node(PeerTableConfig("a", import_policy=imp), "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), attrs=(Communities((parse_community("65002:666"),)),)))
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best is None
    assert node.drain()["b"].withdrawn == {"10.1.0.0/24"}


def test_a_route_the_policy_rejects_changes_nothing():
    imp = policy([], default="reject")
    node = Node(PeerTableConfig("a", import_policy=imp), "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    assert node.rib.process() == [] and node.rib.drain() == {}
    assert len(node.rib.loc_rib(IPV4_UNICAST)) == 0


def host_locator_node(limit: int = 6) -> Node:
    node = Node(PeerTableConfig("host11", import_policy=leaf_from_host(LOCATOR11), keep_pre_policy=True,
                                max_prefix=MaxPrefix(limit, restart=0)))
    node.up("host11", 65011, families=(IPV6_UNICAST, VPNV4))
    return node


def vpn_reach(sid: str, *nlri) -> Update:
    return mp(VPNV4, sid, *nlri, as_path=(65011,), attrs=(ExtendedCommunities((route_target("65000:100"),)),))


def test_leaf_filters_a_rogue_host_and_resolves_sids_through_its_locator():
    """tests/system/test_policy_e2e.py without sockets: the leaf's per-host filter."""
    node = host_locator_node()
    node.send(
        "host11",
        mp(IPV6_UNICAST, "fe80::11", LOCATOR11, as_path=(65011,)),               # its locator: ok
        mp(IPV6_UNICAST, "fe80::11", "2001:db8:0:22::/64", as_path=(65011,)),    # another host's locator
        mp(IPV6_UNICAST, "fe80::11", "2001:db8:0:11::/63", as_path=(65011,)),    # wider than its own
        vpn_reach("2001:db8:0:11::5", vpn("192.168.1.5/32")),                    # SID in its locator: ok
        vpn_reach("2001:db8:0:22::7", vpn("192.168.1.7/32")),                    # another host's SID
    )
    pr = node.rib.peers["host11"]
    assert pr.rib_in_pre.counts() == {"ipv6-unicast": 3, "vpnv4": 2}
    assert pr.rib_in.counts() == {"ipv6-unicast": 1, "vpnv4": 1}
    changed = node.rib.process()
    assert sorted(changed_keys(changed)) == sorted([LOCATOR11, "10.0.0.11:100:192.168.1.5/32"])
    best = {(d.best.family, str(d.key)) for d in node.rib.best([IPV6_UNICAST, VPNV4])}
    assert best == {(IPV6_UNICAST, LOCATOR11), (VPNV4, "10.0.0.11:100:192.168.1.5/32")}
    (vd,) = node.rib.loc_rib(VPNV4).dests.values()
    assert vd.best.next_hop == MpNextHop("2001:db8:0:11::5") and vd.best.labels == (100,)


def test_max_prefix_closes_the_session_with_rfc4486_data():
    node = host_locator_node(limit=6)
    node.send("host11", mp(IPV6_UNICAST, "fe80::11", LOCATOR11, as_path=(65011,)),
              vpn_reach("2001:db8:0:11::5", vpn("192.168.1.5/32")))
    node.rib.process()
    out = node.send("host11", vpn_reach("2001:db8:0:11::5", *[vpn(f"192.168.2.{i}/32") for i in range(7)]))
    assert out.shutdowns == [Shutdown("host11", Notification(6, 1, struct.pack("!HBI", 1, 128, 6)), 0)]
    assert out.shutdowns[0].notification.describe().startswith("6/1 (maximum number of prefixes reached)")
    # the daemon closes the session with that NOTIFICATION: every route of the peer goes
    node.down("host11", notification=True)
    node.rib.process()
    assert list(node.rib.best([IPV6_UNICAST, VPNV4])) == []
    assert node.rib.counts() == {"ipv4-unicast": 0, "ipv6-unicast": 0, "vpnv4": 0, "vpnv6": 0}


# ====================================================================== withdrawals


def test_explicit_withdraw_removes_the_route_and_is_propagated():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    out = node.send("a", withdraw("10.1.0.0/24"))
    assert out.dirty
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert str(d.key) == "10.1.0.0/24" and d.best is None and d.old_best.source.name == "a"
    assert node.dest("10.1.0.0/24") is None
    got = node.drain()
    assert set(got) == {"b"} and got["b"].withdrawn == {"10.1.0.0/24"} and not got["b"].routes
    assert node.best("10.2.0.0/24") is not None


def test_withdraw_falls_back_to_the_remaining_path():
    node = Node("a", "b", "c")
    for name, asn in (("a", 65002), ("b", 65003), ("c", 65004)):
        node.up(name, asn)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), as_path=(65002,)))
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(65003, 65010)))
    node.rib.process()
    node.drain()
    node.send("a", withdraw("10.1.0.0/24"))
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best.source.name == "b" and d.old_best.source.name == "a"
    got = node.drain()
    assert got["c"].routes["10.1.0.0/24"].as_path == [65001, 65003, 65010] and not got["c"].withdrawn
    assert got["b"].withdrawn == {"10.1.0.0/24"}  # b had a's route; its own is never sent back


def test_withdrawing_what_does_not_exist_changes_nothing():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    node.send("a", withdraw("10.9.0.0/24"), mp_withdraw(IPV6_UNICAST, "2001:db8::/32"))
    node.send("b", withdraw("10.1.0.0/24"))  # b never announced it
    assert node.rib.process() == []
    assert node.rib.drain() == {}
    assert node.best("10.1.0.0/24").source.name == "a"


def test_mp_unreach_withdraws_ipv6():
    node = Node("a", "b")
    node.up("a", 65002, families=(IPV4_UNICAST, IPV6_UNICAST))
    node.up("b", 65003, families=(IPV4_UNICAST, IPV6_UNICAST))
    node.send("a", mp(IPV6_UNICAST, "fe80::2", "2001:db8:1::/48", "2001:db8:2::/48"))
    node.rib.process()
    got = node.drain()["b"]
    assert set(got.routes) == {"2001:db8:1::/48", "2001:db8:2::/48"}
    assert got.routes["2001:db8:1::/48"].family == IPV6_UNICAST
    node.send("a", mp_withdraw(IPV6_UNICAST, "2001:db8:1::/48"))
    node.rib.process()
    assert node.drain()["b"].withdrawn == {"2001:db8:1::/48"}
    assert node.best("2001:db8:2::/48") is not None and node.best("2001:db8:1::/48") is None


def test_rfc7606_treat_as_withdraw_removes_the_route():
    """tests/system/test_malformed_peer.py without sockets: an ORIGIN of 7 (RFC 7606
    section 7.1) turns the announcement into a withdrawal; the session stays."""
    node = Node("raw", "b")
    node.up("raw", 65002)
    node.up("b", 65003)
    good = attr(0x40, 1, b"\x00") + AS_PATH_65002 + next_hop(node.addr("raw"))
    node.send("raw", update(attrs=good, nlri=prefix("10.1.0.0/24")))
    node.rib.process()
    assert "10.1.0.0/24" in node.drain()["b"].routes
    bad = update(attrs=attr(0x40, 1, b"\x07") + AS_PATH_65002 + next_hop(node.addr("raw")),
                 nlri=prefix("10.1.0.0/24"))
    (decoded,) = decode(bad, node.sessions["raw"].neg.codec)
    assert decoded.treat_as_withdraw  # what the FSM hands the daemon
    out = node.send("raw", bad)
    assert out.shutdowns == []
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best is None
    assert node.drain()["b"].withdrawn == {"10.1.0.0/24"}
    # an attribute-discard fault keeps the route (ATOMIC_AGGREGATE with a length)
    node.send("raw", update(attrs=good + attr(0x40, 6, b"\x00"), nlri=prefix("10.2.0.0/24")))
    node.rib.process()
    assert node.best("10.2.0.0/24") is not None


# ====================================================================== families


def test_families_not_negotiated_are_ignored():
    node = Node("a", "b")
    node.up("a", 65002)  # IPv4 unicast only
    node.up("b", 65003, families=(IPV4_UNICAST, VPNV4))
    out = node.send("a", vpn_reach("2001:db8:0:11::5", vpn("192.168.1.5/32")),
                    mp(IPV6_UNICAST, "fe80::2", "2001:db8:1::/48"))
    assert out.shutdowns == []
    assert node.rib.process() == []
    assert len(node.rib.loc_rib(VPNV4)) == 0 and len(node.rib.loc_rib(IPV6_UNICAST)) == 0
    assert node.rib.peers["a"].rib_in.count() == 0
    assert node.rib.drain() == {}


def test_routes_of_a_family_go_only_to_peers_that_negotiated_it():
    node = Node("a", "v4only", "both")
    node.up("a", 65002, families=(IPV4_UNICAST, IPV6_UNICAST))
    node.up("v4only", 65003)
    node.up("both", 65004, families=(IPV4_UNICAST, IPV6_UNICAST))
    node.send("a", mp(IPV6_UNICAST, "fe80::2", "2001:db8:1::/48"), ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    got = node.drain()
    assert set(got["v4only"].routes) == {"10.1.0.0/24"}
    assert set(got["both"].routes) == {"10.1.0.0/24", "2001:db8:1::/48"}


# ====================================================================== maximum-prefix


def test_max_prefix_at_the_limit_is_fine_above_it_shuts_down():
    node = Node(PeerTableConfig("a", max_prefix=MaxPrefix(3, restart=45.0)))
    node.up("a", 65002)
    out = node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", nh=node.addr("a")))
    assert out.shutdowns == []
    out = node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), attrs=(Med(1),)))  # replaces: still 3
    assert out.shutdowns == []
    out = node.send("a", ipv4("10.4.0.0/24", nh=node.addr("a")))
    (s,) = out.shutdowns
    assert s.peer == "a" and s.restart_after == 45.0
    assert (s.notification.code, s.notification.subcode) == (6, 1)
    assert struct.unpack("!HBI", s.notification.data) == (1, 1, 3)


def test_max_prefix_counts_accepted_routes_after_withdrawals():
    imp = policy([{"name": "no-10-9", "match": {"prefix": ["10.9.0.0/24"]}, "action": "reject"}])
    node = Node(PeerTableConfig("a", import_policy=imp, max_prefix=MaxPrefix(2)))
    node.up("a", 65002)
    assert node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", "10.9.0.0/24", nh=node.addr("a"))).shutdowns == []
    # one withdrawn and one added in the same UPDATE: still two
    assert node.send("a", Update(withdrawn=(Prefix.parse("10.1.0.0/24"),),
                                 attributes=(Origin(0), AsPath.sequence(65002), NextHop(node.addr("a"))),
                                 nlri=(Prefix.parse("10.3.0.0/24"),))).shutdowns == []
    assert node.rib.peers["a"].rib_in.count() == 2


def test_max_prefix_warning_is_logged_once_per_session(caplog):
    caplog.set_level(logging.WARNING, logger="l3fab.rib")
    node = Node(PeerTableConfig("a", max_prefix=MaxPrefix(10, warning=50)))
    node.up("a", 65002)

    def warnings() -> int:
        return sum("of maximum-prefix" in r.getMessage() for r in caplog.records)

    node.send("a", ipv4(*[f"10.1.{i}.0/24" for i in range(4)], nh=node.addr("a")))
    assert warnings() == 0
    node.send("a", ipv4("10.1.4.0/24", nh=node.addr("a")))  # 5 of 10: 50 %
    assert warnings() == 1
    node.send("a", ipv4(*[f"10.2.{i}.0/24" for i in range(5)], nh=node.addr("a")))  # 10: at the limit
    assert warnings() == 1
    node.down("a")
    node.up("a", 65002)
    node.send("a", ipv4(*[f"10.3.{i}.0/24" for i in range(6)], nh=node.addr("a")))
    assert warnings() == 2  # a new session warns again


def test_over_limit_routes_never_reach_other_peers_when_the_session_is_closed_first():
    node = Node(PeerTableConfig("a", max_prefix=MaxPrefix(1)), "b")
    node.up("a", 65002)
    node.up("b", 65003)
    out = node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    assert [s.peer for s in out.shutdowns] == ["a"]
    node.down("a", notification=True)  # the daemon executes the Shutdown before the decision run
    assert node.rib.process() == []
    assert node.rib.drain() == {}


# ====================================================================== graceful restart (RFC 4724 helper)


def gr_node(*extra: PeerTableConfig | str, restart_time: int = 120, **a_cfg) -> Node:
    node = Node(PeerTableConfig("a", **a_cfg), *extra, restart_time=restart_time)
    return node


def test_graceful_restart_keeps_routes_as_stale_best_paths():
    node = gr_node("b")
    node.up("a", 65002, gr_families=(IPV4_UNICAST,), gr_time=90)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    out = node.down("a")
    assert out.timers == [StaleTimer("a", 90)] and out.dirty and out.send == {} and out.shutdowns == []
    node.rib.process()
    for p in ("10.1.0.0/24", "10.2.0.0/24"):
        best = node.best(p)
        assert best is not None and best.source.name == "a" and best.stale
    assert node.rib.peers["a"].stale_count() == 2
    assert node.rib.drain() == {}  # nothing flaps towards b
    assert not node.rib.eor_complete("a")


def test_end_of_rib_sweeps_only_stale_routes_not_reannounced():
    node = gr_node("b")
    node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    node.down("a")
    node.rib.process()
    out = node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    # the restarted peer gets our table (not its own stale routes) and End-of-RIB
    assert node.received("a", out.send["a"]).sequence == [("eor", IPV4_UNICAST)]
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))  # re-announced, unchanged
    assert node.best("10.2.0.0/24").stale
    node.rib.process()
    assert not node.best("10.1.0.0/24").stale and node.best("10.2.0.0/24").stale
    assert node.rib.drain() == {}  # the re-announcement is no news to b
    out = node.send("a", eor())
    assert out.timers == [StaleTimer("a", None)] and out.dirty
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert str(d.key) == "10.2.0.0/24" and d.best is None
    got = node.drain()
    assert got["b"].withdrawn == {"10.2.0.0/24"} and not got["b"].routes
    assert node.best("10.1.0.0/24").source.name == "a"
    assert node.rib.peers["a"].stale_count() == 0
    assert node.rib.eor_complete("a")


def test_stale_expired_removes_what_is_left():
    node = gr_node("b")
    node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    node.down("a")
    node.rib.process()
    out = node.rib.stale_expired("a")  # the peer never came back
    assert out.dirty and out.timers == [] and out.send == {}
    changed = node.rib.process()
    assert sorted(changed_keys(changed)) == ["10.1.0.0/24", "10.2.0.0/24"]
    assert all(d.best is None for _f, ds in changed for d in ds)
    assert node.drain()["b"].withdrawn == {"10.1.0.0/24", "10.2.0.0/24"}
    assert node.rib.stale_expired("a").dirty is False  # nothing left: nothing to do


def test_stale_expired_after_a_partial_reannouncement():
    node = gr_node("b")
    node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.down("a")
    node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    assert node.rib.stale_expired("a").dirty  # no End-of-RIB in time
    node.rib.process()
    assert node.best("10.1.0.0/24") is not None and node.best("10.2.0.0/24") is None
    assert node.drain()["b"].withdrawn == {"10.2.0.0/24"}


@pytest.mark.parametrize("how", ["notification", "no-capability", "disabled-in-config"])
def test_without_helper_mode_every_route_goes_at_once(how):
    node = gr_node("b", graceful_restart=how != "disabled-in-config")
    node.up("a", 65002, gr_families=None if how == "no-capability" else (IPV4_UNICAST,))
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    out = node.down("a", notification=how == "notification")
    assert out.timers == [] and out.dirty
    assert node.rib.peers["a"].rib_in.count() == 0
    changed = node.rib.process()
    assert sorted(changed_keys(changed)) == ["10.1.0.0/24", "10.2.0.0/24"]
    assert node.drain()["b"].withdrawn == {"10.1.0.0/24", "10.2.0.0/24"}
    assert len(node.rib.loc_rib(IPV4_UNICAST)) == 0


def test_graceful_restart_keeps_only_the_families_of_the_capability():
    node = gr_node("b")
    node.up("a", 65002, families=(IPV4_UNICAST, IPV6_UNICAST), gr_families=(IPV4_UNICAST,))
    node.up("b", 65003, families=(IPV4_UNICAST, IPV6_UNICAST))
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")), mp(IPV6_UNICAST, "fe80::2", "2001:db8:1::/48"))
    node.rib.process()
    node.drain()
    out = node.down("a")
    assert [t.peer for t in out.timers] == ["a"]
    node.rib.process()
    assert node.best("10.1.0.0/24").stale
    assert node.best("2001:db8:1::/48") is None
    got = node.drain()["b"]
    assert got.withdrawn == {"2001:db8:1::/48"} and not got.routes


def test_the_timer_is_cancelled_once_every_family_swept():
    node = gr_node()
    fams = (IPV4_UNICAST, IPV6_UNICAST)
    node.up("a", 65002, families=fams, gr_families=fams)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")), mp(IPV6_UNICAST, "fe80::2", "2001:db8:1::/48"))
    node.rib.process()
    node.down("a")
    node.up("a", 65002, families=fams, gr_families=fams)
    out = node.send("a", eor(IPV4_UNICAST))
    assert out.timers == [] and out.dirty  # IPv6 routes are still stale: the timer keeps running
    node.rib.process()
    assert node.best("10.1.0.0/24") is None and node.best("2001:db8:1::/48").stale
    assert node.rib.peers["a"].stale_count() == 1
    out = node.send("a", eor(IPV6_UNICAST))
    assert out.timers == [StaleTimer("a", None)]
    assert node.rib.eor_complete("a")


def test_restart_time_defaults_to_the_settings_when_the_capability_gives_none():
    node = gr_node(restart_time=77)
    node.up("a", 65002)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    out = node.rib.peer_down("a", [IPV4_UNICAST], None)
    assert out.timers == [StaleTimer("a", 77)]
    assert node.rib.peers["a"].rib_in.get(IPV4_UNICAST, Prefix.parse("10.1.0.0/24")).stale


def test_end_of_rib_without_stale_routes_starts_and_cancels_nothing():
    node = gr_node()
    node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    out = node.send("a", eor())
    assert out.timers == [] and not out.dirty and out.send == {}
    assert node.rib.eor_complete("a")


def test_an_advertised_restart_time_of_zero_keeps_nothing_for_long():
    node = gr_node("b")
    node.up("a", 65002, gr_families=(IPV4_UNICAST,), gr_time=0)
    assert node.sessions["a"].neg.peer_graceful_restart.restart_time == 0
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    out = node.down("a")
    # either the routes go at once, or the timer runs for the advertised 0 s
    assert all(t.seconds in (0, None) for t in out.timers), out.timers


def test_end_of_rib_sweep_also_clears_the_pre_policy_table():
    node = gr_node(keep_pre_policy=True)
    node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.down("a")
    node.up("a", 65002, gr_families=(IPV4_UNICAST,))
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")), eor())
    pr = node.rib.peers["a"]
    assert [str(p.key) for p in pr.rib_in.paths(IPV4_UNICAST)] == ["10.1.0.0/24"]
    assert [str(p.key) for p in pr.rib_in_pre.paths(IPV4_UNICAST)] == ["10.1.0.0/24"]


def test_peer_down_clears_the_pre_policy_table_of_fully_rejected_families():
    imp = policy([], default="reject")
    node = Node(PeerTableConfig("a", import_policy=imp, keep_pre_policy=True))
    node.up("a", 65002)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    assert node.rib.peers["a"].rib_in_pre.count() == 1
    node.down("a")
    assert node.rib.peers["a"].rib_in_pre.count() == 0


def test_peer_down_clears_the_pre_policy_table():
    node = Node(PeerTableConfig("a", keep_pre_policy=True))
    node.up("a", 65002)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.down("a")
    assert node.rib.peers["a"].rib_in_pre.count() == 0 and node.rib.peers["a"].rib_in.count() == 0


# ====================================================================== next-hop tracking


def third_party_node() -> Node:
    node = Node("a", "b", "c")
    node.up("a", 65002)
    node.up("b", 65003)
    node.up("c", 65004)
    return node


def test_a_route_with_an_unreachable_next_hop_has_no_best():
    node = third_party_node()
    node.send("a", ipv4("10.1.0.0/24", nh="198.51.100.7"))  # not a's address, not connected
    assert node.rib.process() == []
    d = node.dest("10.1.0.0/24")
    assert d is not None and len(d.paths) == 1 and d.best is None
    assert not node.rib.valid(d.paths[0])
    assert node.rib.drain() == {}
    assert list(node.rib.best([IPV4_UNICAST])) == []
    assert node.rib.set_connected(connected("192.0.2.0/24")) is False  # does not cover it
    assert node.rib.process() == []


def test_set_connected_makes_a_third_party_next_hop_valid_and_invalid():
    node = third_party_node()
    node.send("a", ipv4("10.1.0.0/24", nh="198.51.100.7"))
    node.rib.process()
    assert node.rib.set_connected(connected("198.51.100.0/24")) is True
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best is not None and d.best.next_hop == MpNextHop("198.51.100.7")
    assert "10.1.0.0/24" in node.drain()["b"].routes
    assert node.rib.set_connected(connected("198.51.100.0/24")) is False  # no change
    assert node.rib.set_connected(set()) is True
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best is None
    assert node.drain()["b"].withdrawn == {"10.1.0.0/24"}


def test_a_next_hop_already_connected_is_valid_at_once():
    node = third_party_node()
    assert node.rib.set_connected(connected("198.51.100.0/24")) is False  # nothing depends on it yet
    node.send("a", ipv4("10.1.0.0/24", nh="198.51.100.7"))
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best is not None and node.rib.valid(d.best)


def test_a_recursive_next_hop_follows_the_covering_route():
    node = third_party_node()
    # 10.9/24 via 203.0.113.9, which 203.0.113.0/24 covers, whose next hop 198.51.100.7
    # b's 198.51.100.0/24 covers: two levels of recursion
    node.send("a", ipv4("10.9.0.0/24", nh="203.0.113.9"))
    node.send("a", ipv4("203.0.113.0/24", nh="198.51.100.7"))
    assert node.rib.process() == []
    node.send("b", ipv4("198.51.100.0/24", nh=node.addr("b"), as_path=(65003,)))
    changed = node.rib.process()  # one call settles the ripple
    assert sorted(set(changed_keys(changed))) == ["10.9.0.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    for p in ("10.9.0.0/24", "198.51.100.0/24", "203.0.113.0/24"):
        assert node.best(p) is not None, p
    got = node.drain()
    assert set(got["c"].routes) == {"10.9.0.0/24", "198.51.100.0/24", "203.0.113.0/24"}
    # the covering route goes: everything resolved through it goes too
    node.send("b", withdraw("198.51.100.0/24"))
    changed = node.rib.process()
    assert sorted(set(changed_keys(changed))) == ["10.9.0.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    assert all(node.best(p) is None for p in ("10.9.0.0/24", "198.51.100.0/24", "203.0.113.0/24"))
    assert node.dest("10.9.0.0/24") is not None  # a's paths stay, unusable
    assert node.drain()["c"].withdrawn == {"10.9.0.0/24", "198.51.100.0/24", "203.0.113.0/24"}
    # and it comes back
    node.send("b", ipv4("198.51.100.0/24", nh=node.addr("b"), as_path=(65003,)))
    node.rib.process()
    assert node.best("10.9.0.0/24") is not None


def test_a_route_cannot_resolve_its_own_next_hop():
    node = third_party_node()
    node.send("a", ipv4("198.51.100.0/24", nh="198.51.100.7"))
    assert node.rib.process() == []
    assert node.best("198.51.100.0/24") is None


def test_a_less_specific_route_resolves_a_route_inside_it():
    node = third_party_node()
    node.send("b", ipv4("198.51.0.0/16", nh=node.addr("b"), as_path=(65003,)))
    node.send("a", ipv4("198.51.100.0/24", nh="198.51.100.7"))  # resolves via the /16, not itself
    node.rib.process()
    assert node.best("198.51.100.0/24") is not None


# ====================================================================== route refresh


@pytest.mark.parametrize("enhanced", [True, False])
def test_route_refresh_sends_the_family_again(enhanced):
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003, enhanced=enhanced)
    assert node.sessions["b"].neg.enhanced_route_refresh is enhanced
    node.send("a", ipv4("10.1.0.0/24", "10.2.0.0/24", nh=node.addr("a")))
    node.rib.process()
    node.drain()
    out = node.rib.route_refresh("b", RouteRefresh(IPV4_UNICAST))
    assert set(out.send) == {"b"} and not out.dirty
    r = node.received("b", out.send["b"])
    assert set(r.routes) == {"10.1.0.0/24", "10.2.0.0/24"} and not r.withdrawn
    assert r.routes["10.1.0.0/24"].as_path == [65001, 65002]
    if enhanced:
        assert r.sequence == [("borr", IPV4_UNICAST), ("update", None), ("eorr", IPV4_UNICAST)]
    else:
        assert r.sequence == [("update", None), ("eor", IPV4_UNICAST)]
    assert node.rib.drain() == {}


def test_route_refresh_of_an_empty_family_and_requests_that_are_ignored():
    node = Node("a", "b")
    node.up("a", 65002)
    out = node.rib.route_refresh("a", RouteRefresh(IPV4_UNICAST))
    assert node.received("a", out.send["a"]).sequence == [("borr", IPV4_UNICAST), ("eorr", IPV4_UNICAST)]
    assert node.rib.route_refresh("a", RouteRefresh(IPV6_UNICAST)).send == {}        # not negotiated
    assert node.rib.route_refresh("a", RouteRefresh(IPV4_UNICAST, SUBTYPE_BORR)).send == {}  # not a request
    assert node.rib.route_refresh("b", RouteRefresh(IPV4_UNICAST)).send == {}        # not established


# ====================================================================== origination


def test_originate_and_withdraw_local():
    node = Node("a", "n")
    node.up("a", 65002)
    node.up("n", 65001)
    assert node.rib.originate([local_path("10.5.0.0/24", Med(5))]) == 1
    (d,) = [d for _f, ds in node.rib.process() for d in ds]
    assert d.best.source is LOCAL
    got = node.drain()
    ebgp = got["a"].routes["10.5.0.0/24"]
    assert ebgp.as_path == [US_AS] and ebgp.next_hop == MpNextHop(node.local_addr("a"))
    assert ebgp.get(Med) == Med(5)  # our own MED does go to a neighbouring AS
    ibgp = got["n"].routes["10.5.0.0/24"]
    assert ibgp.as_path == [] and ibgp.get(LocalPref) == LocalPref(100)
    assert ibgp.next_hop == MpNextHop(node.local_addr("n"))  # no next hop of its own: ourselves
    key = (IPV4_UNICAST, Prefix.parse("10.5.0.0/24"))
    assert node.rib.withdraw_local([key]) == 1
    assert node.rib.withdraw_local([key, (IPV4_UNICAST, Prefix.parse("10.6.0.0/24"))]) == 0
    node.rib.process()
    got = node.drain()
    assert got["a"].withdrawn == got["n"].withdrawn == {"10.5.0.0/24"}


def test_a_local_route_beats_learned_ones_and_withdraw_local_leaves_them():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.5.0.0/24", nh=node.addr("a")))
    node.rib.originate([local_path("10.5.0.0/24")])
    node.rib.process()
    d = node.dest("10.5.0.0/24")
    assert d.best.source is LOCAL and d.reason == "local" and d.multipath == (d.best,)
    assert node.drain()["a"].routes["10.5.0.0/24"].as_path == [US_AS]  # a now hears our route
    node.rib.withdraw_local([(IPV4_UNICAST, Prefix.parse("10.5.0.0/24"))])
    node.rib.process()
    assert node.best("10.5.0.0/24").source.name == "a"
    assert node.drain()["a"].withdrawn == {"10.5.0.0/24"}
    assert node.rib.withdraw_local([(IPV4_UNICAST, Prefix.parse("10.5.0.0/24"))]) == 0  # a's path stays
    assert node.best("10.5.0.0/24").source.name == "a"


def test_set_origin_group_applies_only_the_differences():
    node = Node("a")
    node.up("a", 65002)
    p1, p2, p4 = local_path("10.1.0.0/24"), local_path("10.2.0.0/24"), local_path("10.4.0.0/24")
    assert node.rib.set_origin_group("tenant", [p1, p2, p4]) == 3
    assert sorted(changed_keys(node.rib.process())) == ["10.1.0.0/24", "10.2.0.0/24", "10.4.0.0/24"]
    node.drain()
    best1 = node.best("10.1.0.0/24")
    p2b = local_path("10.2.0.0/24", Communities((parse_community("65001:2"),)))
    p3 = local_path("10.3.0.0/24")
    # p1 unchanged (an equal, new object), p2 changed, p3 new, p4 gone
    assert node.rib.set_origin_group("tenant", [local_path("10.1.0.0/24"), p2b, p3]) == 3
    changed = node.rib.process()
    assert sorted(changed_keys(changed)) == ["10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"]
    assert node.best("10.1.0.0/24") is best1  # untouched
    got = node.drain()["a"]
    assert set(got.routes) == {"10.2.0.0/24", "10.3.0.0/24"} and got.withdrawn == {"10.4.0.0/24"}
    assert got.routes["10.2.0.0/24"].get(Communities).communities == (parse_community("65001:2"),)
    assert node.rib.set_origin_group("tenant", [p1, p2b, p3]) == 0
    assert node.rib.process() == []
    assert node.rib.set_origin_group("other", [local_path("10.8.0.0/24")]) == 1  # groups are independent
    assert node.rib.set_origin_group("tenant", []) == 3
    node.rib.process()
    assert sorted(str(d.key) for d in node.rib.best([IPV4_UNICAST])) == ["10.8.0.0/24"]


# ====================================================================== End-of-RIB and sessions


def test_eor_complete_needs_end_of_rib_for_every_negotiated_family():
    node = Node("a")
    assert not node.rib.eor_complete("a")  # not established
    fams = (IPV4_UNICAST, IPV6_UNICAST)
    node.up("a", 65002, families=fams)
    assert not node.rib.eor_complete("a")
    out = node.send("a", eor(IPV6_UNICAST))
    assert not out.dirty and out.send == {} and not node.rib.eor_complete("a")
    node.send("a", eor(IPV4_UNICAST))
    assert node.rib.eor_complete("a")
    node.down("a")
    assert not node.rib.eor_complete("a")
    node.up("a", 65002, families=fams)
    assert not node.rib.eor_complete("a")  # a new session must send them again


def test_updates_from_a_peer_that_is_down_are_ignored():
    node = Node("a")
    node.up("a", 65002)
    s = node.sessions["a"]
    node.down("a")
    (upd,) = decode(ipv4("10.1.0.0/24", nh=node.addr("a")).encode(s.peer_codec), s.neg.codec)
    out = node.rib.update_received("a", upd)
    assert out == RibOutput()
    assert node.rib.process() == [] and node.dest("10.1.0.0/24") is None


def test_peer_names_are_unique_table_sources():
    node = Node("a")
    with pytest.raises(ValueError):
        node.rib.add_peer(PeerTableConfig("a"))
    with pytest.raises(ValueError):
        node.rib.add_peer(PeerTableConfig("local"))


def test_nothing_is_staged_for_a_peer_that_is_down():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.down("b")
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a")))
    node.rib.process()
    assert node.rib.drain() == {} and not node.rib.pending_out()
    out = node.up("b", 65003)
    assert set(node.received("b", out.send["b"]).routes) == {"10.1.0.0/24"}


def test_addpath_paths_of_one_peer_are_separate_candidates():
    node = Node("a", "b")
    node.up("a", 65002, addpath=True)
    node.up("b", 65003)
    assert node.sessions["a"].neg.addpath_receive == {IPV4_UNICAST}
    pfx = Prefix.parse("10.1.0.0/24")
    base = (Origin(0), NextHop(node.addr("a")))
    node.send("a", Update(attributes=base + (AsPath.sequence(65002, 65010),), nlri=(PathId(1, pfx),)),
              Update(attributes=base + (AsPath.sequence(65002),), nlri=(PathId(2, pfx),)))
    node.rib.process()
    d = node.dest("10.1.0.0/24")
    assert sorted(p.path_id for p in d.paths) == [1, 2] and d.best.path_id == 2
    assert node.drain()["b"].routes["10.1.0.0/24"].as_path == [65001, 65002]
    node.send("a", Update(withdrawn=(PathId(2, pfx),)))
    node.rib.process()
    assert node.dest("10.1.0.0/24").best.path_id == 1
    assert node.drain()["b"].routes["10.1.0.0/24"].as_path == [65001, 65002, 65010]
    node.send("a", Update(withdrawn=(PathId(1, pfx),)))
    node.rib.process()
    assert node.dest("10.1.0.0/24") is None
    assert node.drain()["b"].withdrawn == {"10.1.0.0/24"}


# ====================================================================== reported bugs (eBGP LOCAL_PREF)


def test_local_pref_from_an_ebgp_peer_is_ignored():
    node = Node("a", "b")
    node.up("a", 65002)
    node.up("b", 65003)
    node.send("a", ipv4("10.1.0.0/24", nh=node.addr("a"), as_path=(65002,)))
    node.send("b", ipv4("10.1.0.0/24", nh=node.addr("b"), as_path=(65003, 65010, 65020),
                        attrs=(LocalPref(1000),)))
    node.rib.process()
    assert node.best("10.1.0.0/24").source.name == "a"  # shorter AS path; b's LOCAL_PREF means nothing
