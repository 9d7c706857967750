"""Attribute sets are freed when no route uses them (issue 10, finding 4).

A neighbour that sends UPDATEs for one prefix, each with a new MED, used to grow the
attribute interner by one set per UPDATE, for ever (20,000 UPDATEs: +500 MB, kept
after the withdrawal and the session's end).  The interner now forgets the sets no
Adj-RIB-In route refers to, in batches whose cost is paid for by the inserts or drops
that made them due; sets that routes still use stay shared.

UPDATEs go through the codec and the RIB manager as the daemon feeds them.  Nothing
here is timed: the amortisation is checked by counting collections.
"""
from __future__ import annotations

import ipaddress

import pytest
from sessions import pair

from l3fab.speaker.origination import self_next_hop
from l3fab.speaker.table.adj_rib_in import AttributeInterner
from l3fab.speaker.table.export import ExportContext
from l3fab.speaker.table.manager import PeerTableConfig, RibManager, RibSettings
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    AsPath,
    CodecContext,
    LocalPref,
    Med,
    MessageReader,
    NextHop,
    Origin,
    Prefix,
    Update,
)

US_AS, US_ID = 65001, "10.0.0.1"
CHURN = 20_000


class Node:
    """A RibManager with eBGP neighbours ``a`` (172.16.1.2, AS 65002) and ``b`` (172.16.2.2,
    AS 65003), sessions up through the sans-IO FSM."""

    def __init__(self, keep_pre_policy: bool = False) -> None:
        self.rib = RibManager(RibSettings(US_AS, US_ID),
                              [PeerTableConfig("a", keep_pre_policy=keep_pre_policy), PeerTableConfig("b")])
        self.codecs: dict[str, tuple[MessageReader, CodecContext]] = {}
        for i, name in enumerate(("a", "b"), start=1):
            asn, rid, addr = 65001 + i, f"10.0.0.{10 + i}", f"172.16.{i}.2"
            link = pair(dict(local_as=US_AS, router_id=US_ID, peer_as=asn),
                        dict(local_as=asn, router_id=rid, peer_as=US_AS))
            link.establish()
            neg = link.a.negotiated
            self.codecs[name] = (MessageReader(neg.codec), link.b.negotiated.codec)
            ctx = ExportContext(peer_name=name, peer_as=asn, local_as=US_AS, router_id=US_ID, families=neg.families,
                                self_next_hop=self_next_hop(f"172.16.{i}.1", None), ibgp=False, rr_client=False,
                                cluster_id=None, next_hop_self=False, extended_next_hop=neg.extended_next_hop)
            self.rib.peer_up(name, neg, Source(name, addr, asn, rid, False, False, US_AS), ctx)

    @property
    def interned(self) -> int:
        return len(self.rib.intern)

    def send(self, name: str, update: Update) -> None:
        """``name`` sends ``update``: encoded as the peer would, decoded as the FSM would."""
        reader, theirs = self.codecs[name]
        reader.feed(update.encode(theirs))
        (upd,) = reader.messages()
        self.rib.update_received(name, upd)

    def path(self, name: str, prefix: str) -> Path:
        p = self.rib.peers[name].rib_in.get(IPV4_UNICAST, Prefix.parse(prefix))
        assert p is not None
        return p


def route(*prefixes: str, med: int | None = None, asn: int = 65002, nh: str = "172.16.1.2", extra=()) -> Update:
    attrs = (Origin(0), AsPath.sequence(asn), NextHop(nh)) + ((Med(med),) if med is not None else ()) + tuple(extra)
    return Update(attributes=attrs, nlri=tuple(Prefix.parse(p) for p in prefixes))


def withdraw(*prefixes: str) -> Update:
    return Update(withdrawn=tuple(Prefix.parse(p) for p in prefixes))


def prefixes(n: int) -> list[str]:
    base = int(ipaddress.IPv4Address("10.100.0.0"))
    return [f"{ipaddress.IPv4Address(base + (i << 8))}/24" for i in range(n)]


@pytest.mark.parametrize("keep_pre_policy", [False, True])
def test_a_new_med_in_every_update_leaves_a_bounded_interner(keep_pre_policy):
    node = Node(keep_pre_policy=keep_pre_policy)
    node.send("b", route("10.2.0.0/24", asn=65003, nh="172.16.2.2"))
    slack = node.rib.intern.slack
    bound = slack + 8  # the live sets (a's latest, b's) and the slack: a constant, not 20,000
    peak = 0
    for med in range(CHURN):
        node.send("a", route("10.1.0.0/24", med=med))
        peak = max(peak, node.interned)
    assert peak <= bound, peak
    assert node.path("a", "10.1.0.0/24").med == CHURN - 1
    node.rib.process()
    d = node.rib.loc_rib(IPV4_UNICAST).dests[Prefix.parse("10.1.0.0/24")]
    assert d.best is not None and d.best.med == CHURN - 1
    # amortised: one walk per `slack` new sets at most, never one per UPDATE
    assert 0 < node.rib.intern.collections <= CHURN // slack + 2

    node.send("a", withdraw("10.1.0.0/24"))
    assert node.interned <= bound
    node.rib.peer_down("a")
    assert node.interned <= bound
    # what b's route uses survived every collection, still the shared tuple
    assert node.path("b", "10.2.0.0/24").attributes in node.rib.intern._seen


def test_routes_that_share_a_set_share_one_tuple_across_updates_and_collections():
    node = Node()
    node.send("a", route("10.1.0.0/24", med=5))
    node.send("a", route("10.3.0.0/24", med=5))
    first = node.path("a", "10.1.0.0/24").attributes
    assert node.path("a", "10.3.0.0/24").attributes is first
    for med in range(1000, 1000 + CHURN // 4):  # churn on another prefix: collections run
        node.send("a", route("10.4.0.0/24", med=med))
    assert node.rib.intern.collections > 0
    node.send("a", route("10.5.0.0/24", med=5))  # the same set again, after the collections
    assert node.path("a", "10.5.0.0/24").attributes is first
    assert node.path("a", "10.1.0.0/24").attributes is first


def test_ebgp_local_pref_is_stripped_into_one_shared_tuple():
    node = Node()
    node.send("a", route("10.1.0.0/24", med=5, extra=(LocalPref(500),)))
    node.send("a", route("10.3.0.0/24", med=5, extra=(LocalPref(500),)))
    p1, p3 = node.path("a", "10.1.0.0/24"), node.path("a", "10.3.0.0/24")
    assert p1.get(LocalPref) is None
    assert p1.attributes is p3.attributes


@pytest.mark.parametrize("how", ["withdraw", "session-down"])
def test_a_large_table_leaving_frees_its_sets(how):
    node = Node()
    node.send("b", route("10.2.0.0/24", asn=65003, nh="172.16.2.2"))
    table = prefixes(3000)
    for i, p in enumerate(table):  # every route its own set
        node.send("a", route(p, med=i))
    assert node.interned >= 3000
    if how == "withdraw":
        for start in range(0, len(table), 500):
            node.send("a", withdraw(*table[start:start + 500]))
    else:
        node.rib.peer_down("a")
    assert node.rib.peers["a"].rib_in.count() == 0
    assert node.interned <= 2 + node.rib.intern.slack // 2, node.interned  # not 3,000


def test_collections_are_amortised_over_a_large_table():
    node = Node()
    node.send("b", route(*prefixes(3000), asn=65003, nh="172.16.2.2"))  # 3,000 routes, one set
    before = node.rib.intern.collections
    for med in range(CHURN):
        node.send("a", route("10.1.0.0/24", med=med))
    walks = node.rib.intern.collections - before
    # each walk visits the 3,000 routes; it comes only after about as many new sets
    assert 0 < walks <= CHURN // 3000 + 2, walks
    assert node.interned <= 2 * 3000 + node.rib.intern.slack + 8


def test_collect_keeps_what_live_paths_hold_by_identity():
    intern = AttributeInterner(slack=4)
    live = intern((Origin(0), Med(1)))
    intern((Origin(0), Med(2)))
    assert intern((Origin(0), Med(1))) is live and len(intern) == 2
    assert not intern.due()
    for m in range(3, 8):
        intern((Origin(0), Med(m)))
    assert intern.due()
    path = Path(IPV4_UNICAST, Prefix.parse("10.0.0.0/8"), None, live)
    assert intern.collect([{path.key: path}]) == 6
    assert len(intern) == 1 and intern((Origin(0), Med(1))) is live
    assert not intern.due()
    intern.dropped(4 + 1 // 2 + 1)  # more routes dropped than half the live ones plus the slack
    assert intern.due()
