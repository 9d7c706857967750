"""RFC 4724 section 4.2 in the RIB manager: when a peer whose routes are kept as stale
comes back, the stale routes of every family it did not preserve forwarding state for
go at once, not after the restart time.

"Did not preserve" means: its new OPEN has no graceful restart capability at all, or
the capability does not list the family, or lists it without the Forwarding State (F)
bit, or the new session did not negotiate the family (no End-of-RIB can come for it).

Sessions come up through the sans-IO FSM (``sessions.pair``) so the manager gets a
real :class:`Negotiated`; the peer's graceful restart capability is written out by
hand (``extra_capabilities``) to set the F bit per family.  Timers are values: the
stale timer is "cancelled" when ``peer_up`` returns ``StaleTimer(peer, None)``.
"""
from __future__ import annotations

from sessions import pair

from l3fab.speaker.origination import self_next_hop
from l3fab.speaker.table.export import ExportContext
from l3fab.speaker.table.manager import PeerTableConfig, RibManager, RibOutput, RibSettings, StaleTimer
from l3fab.speaker.table.path import Source
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    AsPath,
    CodecContext,
    Family,
    MessageReader,
    MpNextHop,
    MpReachNlri,
    MpUnreachNlri,
    NextHop,
    Origin,
    Prefix,
    Update,
)
from l3fab.speaker.wire.capabilities import GracefulRestartCap

US_AS, US_ID = 65001, "10.0.0.1"
BOTH = (IPV4_UNICAST, IPV6_UNICAST)
V4, V6 = "10.1.0.0/24", "2001:db8:1::/48"


def decode(data: bytes, codec: CodecContext) -> list:
    r = MessageReader(codec)
    r.feed(data)
    return list(r.messages())


class Node:
    """A RibManager with neighbour ``a`` (172.16.1.2, AS 65002, the one that restarts) and
    ``b`` (172.16.2.2, AS 65003, which sees what ``a``'s routes do)."""

    ADDR = {"a": "172.16.1.2", "b": "172.16.2.2"}
    ASN = {"a": 65002, "b": 65003}

    def __init__(self, **a_cfg) -> None:
        self.rib = RibManager(RibSettings(US_AS, US_ID), [PeerTableConfig("a", **a_cfg), PeerTableConfig("b")])
        self.codec: dict[str, tuple[CodecContext, CodecContext]] = {}  # name -> (ours, the peer's)

    def up(self, name: str, families=BOTH, gr: tuple[tuple[Family, bool], ...] | None = None) -> RibOutput:
        """The session comes up; ``gr``: the peer's graceful restart capability, (family,
        F bit) pairs (None: no capability in its OPEN)."""
        asn = self.ASN[name]
        rid = f"10.0.0.{11 if name == 'a' else 12}"
        them: dict = dict(local_as=asn, router_id=rid, peer_as=US_AS, families=tuple(families))
        if gr is not None:
            them["extra_capabilities"] = (GracefulRestartCap(restart_state=any(f for _, f in gr), restart_time=90,
                                                             families=gr),)
        link = pair(dict(local_as=US_AS, router_id=US_ID, peer_as=asn, families=tuple(families)), them)
        link.establish()
        neg = link.a.negotiated
        assert neg is not None and neg.families == frozenset(families)
        assert (neg.peer_graceful_restart is None) == (gr is None)
        self.codec[name] = (neg.codec, link.b.negotiated.codec)
        source = Source(name, self.ADDR[name], asn, rid, False, False, US_AS)
        ctx = ExportContext(peer_name=name, peer_as=asn, local_as=US_AS, router_id=US_ID, families=neg.families,
                            self_next_hop=self_next_hop(self.ADDR[name].replace(".2", ".1"), None), ibgp=False,
                            rr_client=False, cluster_id=None, next_hop_self=False,
                            extended_next_hop=neg.extended_next_hop)
        return self.rib.peer_up(name, neg, source, ctx)

    def down(self, name: str = "a") -> RibOutput:
        """The session ends without a NOTIFICATION; helper mode keeps both families for 90 s."""
        return self.rib.peer_down(name, BOTH, 90)

    def send(self, name: str, *updates: Update) -> None:
        ours, theirs = self.codec[name]
        for u in updates:
            (upd,) = decode(u.encode(theirs), ours)
            self.rib.update_received(name, upd)

    def announce_both(self) -> None:
        """``a`` sends one IPv4 and one IPv6 route; ``b`` learns both."""
        self.send("a", Update(attributes=(Origin(0), AsPath.sequence(65002), NextHop("172.16.1.2")),
                              nlri=(Prefix.parse(V4),)),
                  Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop("fe80::2"), (Prefix.parse(V6),)),
                                     Origin(0), AsPath.sequence(65002))))
        self.rib.process()
        got = self.withdrawn_at_b(self.rib.drain())
        assert got == set()

    def restart(self, **up) -> RibOutput:
        """``a`` goes down (routes kept as stale) and comes back with ``up``'s OPEN."""
        self.up("a", gr=((IPV4_UNICAST, True), (IPV6_UNICAST, True)))
        self.up("b")
        self.announce_both()
        out = self.down()
        assert out.timers == [StaleTimer("a", 90)]
        self.rib.process()
        assert self.rib.drain() == {}  # nothing flaps towards b while a restarts
        assert self.rib.peers["a"].stale_count() == 2
        return self.up("a", **up)

    def best(self, text: str):
        key = Prefix.parse(text)
        d = self.rib.loc_rib(IPV4_UNICAST if key.afi == 1 else IPV6_UNICAST).dests.get(key)
        return d.best if d is not None else None

    def withdrawn_at_b(self, sent: dict[str, list[bytes]]) -> set[str]:
        out: set[str] = set()
        for m in decode(b"".join(sent.get("b", [])), self.codec["b"][1]):
            for _fam, nlri in m.unreachable():
                out.update(str(n) for n in nlri)
        return out

    def gone_at_once(self) -> set[str]:
        """Process what peer_up marked, and what b is told to withdraw."""
        self.rib.process()
        return self.withdrawn_at_b(self.rib.drain())


def test_back_without_the_capability_every_stale_route_goes_at_once():
    node = Node()
    out = node.restart(gr=None)
    assert out.dirty and out.timers == [StaleTimer("a", None)]  # the restart timer is cancelled
    assert node.rib.peers["a"].stale_count() == 0 and node.rib.peers["a"].rib_in.count() == 0
    assert node.gone_at_once() == {V4, V6}
    assert node.best(V4) is None and node.best(V6) is None
    assert node.rib.stale_expired("a").dirty is False  # had the timer fired anyway: nothing left


def test_a_family_without_the_forwarding_bit_goes_at_once_the_others_wait():
    node = Node()
    out = node.restart(gr=((IPV4_UNICAST, True), (IPV6_UNICAST, False)))
    assert out.dirty and out.timers == []  # IPv4 is still stale: the timer keeps running
    assert node.gone_at_once() == {V6}
    assert node.best(V6) is None
    assert node.best(V4).stale and node.rib.peers["a"].stale_count() == 1


def test_a_family_the_new_capability_does_not_list_goes_at_once():
    node = Node()
    out = node.restart(gr=((IPV4_UNICAST, True),))
    assert out.dirty and out.timers == []
    assert node.gone_at_once() == {V6}
    assert node.best(V4).stale


def test_a_family_the_new_session_did_not_negotiate_goes_at_once():
    node = Node()
    out = node.restart(families=(IPV4_UNICAST,), gr=((IPV4_UNICAST, True), (IPV6_UNICAST, True)))
    assert out.dirty and out.timers == []
    assert node.gone_at_once() == {V6}
    assert node.best(V4).stale


def test_no_forwarding_bit_at_all_cancels_the_timer():
    node = Node()
    out = node.restart(gr=((IPV4_UNICAST, False), (IPV6_UNICAST, False)))
    assert out.dirty and out.timers == [StaleTimer("a", None)]
    assert node.gone_at_once() == {V4, V6}


def test_forwarding_state_preserved_for_every_family_keeps_everything_until_end_of_rib():
    node = Node()
    out = node.restart(gr=((IPV4_UNICAST, True), (IPV6_UNICAST, True)))
    assert not out.dirty and out.timers == []
    assert node.gone_at_once() == set()
    assert node.best(V4).stale and node.best(V6).stale


def test_the_pre_policy_table_is_swept_too():
    node = Node(keep_pre_policy=True)
    node.restart(gr=None)
    pr = node.rib.peers["a"]
    assert pr.rib_in_pre is not None and pr.rib_in_pre.count() == 0


def test_an_end_of_rib_for_a_family_not_negotiated_is_ignored():
    node = Node()
    node.restart(families=(IPV4_UNICAST,), gr=((IPV4_UNICAST, True),))
    node.send("a", Update(attributes=(MpUnreachNlri(IPV6_UNICAST, ()),)))  # End-of-RIB for IPv6
    assert IPV6_UNICAST not in node.rib.peers["a"].eor_received
    assert node.best(V4).stale  # IPv4's End-of-RIB has not come
