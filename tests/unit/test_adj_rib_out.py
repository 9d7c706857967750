"""A route that no UPDATE of the session can carry (issue 10, finding 13).

Path attributes received over an extended-message session (RFC 8654) can be larger
than a 4096-octet UPDATE allows, and must then not be sent to a peer without
extended messages.  Before the fix ``LocalProtocolError`` escaped from the packing:
at session start the session flapped (no NOTIFICATION, ``peer_up`` raised), on an
Established session every later advertisement stopped (``drain`` raised each time).
Expected, as BIRD does: that route is not sent (logged once, counted, not listed as
advertised), everything else flows.
"""
from __future__ import annotations

import logging

import pytest

from sessions import pair
from l3fab.speaker.table.adj_rib_out import AdjRibOut
from l3fab.speaker.table.export import ExportContext
from l3fab.speaker.table.manager import PeerTableConfig, RibManager, RibOutput, RibSettings
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    VPNV4,
    AsPath,
    CodecContext,
    Communities,
    LocalProtocolError,
    MessageReader,
    MpNextHop,
    NextHop,
    Origin,
    Prefix,
    RouteDistinguisher,
    UnknownAttribute,
    Update,
    VpnPrefix,
    pack_announcements,
    pack_reachable,
)

SMALL = CodecContext()  # 4096 octets
LARGE = CodecContext(max_message=65535)
# 1100 communities: 4400 octets of attribute value, more than any 4096-octet UPDATE holds.
HUGE = Communities(tuple(range(1100)))
SOURCE = Source("big", "192.0.2.9", 65009)
BASE = (Origin(0), AsPath.sequence(65009))


def path(text: str, *extra, nh: str = "192.0.2.9") -> Path:
    return Path(IPV4_UNICAST, Prefix.parse(text), MpNextHop(nh), BASE + extra, (), SOURCE)


def decode(chunks: list[bytes], ctx: CodecContext = SMALL) -> tuple[set[str], set[str]]:
    """(announced, withdrawn) prefixes in ``chunks``, read as a peer with ``ctx`` would."""
    r = MessageReader(ctx)
    r.feed(b"".join(chunks))
    announced: set[str] = set()
    withdrawn: set[str] = set()
    for m in r.messages():
        assert isinstance(m, Update) and not m.faults
        announced |= {str(n) for _f, _nh, nlri in m.reachable() for n in nlri}
        withdrawn |= {str(n) for _f, nlri in m.unreachable() for n in nlri}
    assert r.buffered == 0
    return announced, withdrawn


# ------------------------------------------------------------------ the packer


def test_pack_reachable_refuses_what_cannot_fit_and_packs_the_rest():
    nlri = [Prefix.parse("10.1.0.0/16"), Prefix.parse("10.2.0.0/16")]
    packed = pack_reachable(IPV4_UNICAST, BASE + (HUGE,), MpNextHop("192.0.2.9"), nlri, SMALL)
    assert packed.messages == [] and packed.refused == [0, 1]
    assert "more than the 4096 the session allows" in packed.reason
    with pytest.raises(LocalProtocolError):
        pack_announcements(IPV4_UNICAST, BASE + (HUGE,), MpNextHop("192.0.2.9"), nlri, SMALL)
    # the same group fits an extended-message session
    packed = pack_reachable(IPV4_UNICAST, BASE + (HUGE,), MpNextHop("192.0.2.9"), nlri, LARGE)
    assert packed.refused == [] and decode(packed.messages, LARGE) == ({"10.1.0.0/16", "10.2.0.0/16"}, set())


def test_pack_reachable_refuses_only_the_nlri_that_are_too_long():
    # Attributes that leave room for a 4-octet NLRI (a /24) but not a 5-octet one (a /32).
    probe = pack_reachable(IPV4_UNICAST, BASE, MpNextHop("192.0.2.9"), [Prefix.parse("10.0.0.0/24")])
    free = SMALL.max_message - (len(probe.messages[0]) - 4)
    attrs = BASE + (UnknownAttribute(0xC0, 99, bytes(free - 4 - 4)),)  # 4 octets of TLV header, 4 left
    nlri = [Prefix.parse("10.1.0.0/16"), Prefix.parse("10.9.9.9/32"), Prefix.parse("10.2.3.0/24")]
    packed = pack_reachable(IPV4_UNICAST, attrs, MpNextHop("192.0.2.9"), nlri, SMALL)
    assert packed.refused == [1]
    assert decode(packed.messages) == ({"10.1.0.0/16", "10.2.3.0/24"}, set())
    assert [len(m) for m in packed.messages] == [4096 - 1, 4096]  # one NLRI each: no room for two


def test_pack_reachable_refuses_a_group_whose_next_hop_cannot_be_encoded():
    nlri = [VpnPrefix(RouteDistinguisher(0, 1, 1), Prefix.parse("10.1.0.0/16"), (100,))]
    packed = pack_reachable(VPNV4, BASE, MpNextHop("10.0.0.1", "fe80::1"), nlri, SMALL)
    assert packed.messages == [] and packed.refused == [0] and "link-local" in packed.reason
    assert pack_reachable(VPNV4, BASE, None, nlri, SMALL).refused == [0]


# ------------------------------------------------------------------ the Adj-RIB-Out


def test_flush_skips_the_route_that_does_not_fit_and_sends_the_others(caplog):
    out = AdjRibOut("small")
    out.stage(IPV4_UNICAST, Prefix.parse("10.1.0.0/16"), path("10.1.0.0/16", HUGE))
    out.stage(IPV4_UNICAST, Prefix.parse("10.2.0.0/16"), path("10.2.0.0/16"))
    with caplog.at_level(logging.DEBUG, "l3fab.rib"):
        chunks = out.flush(SMALL)
    announced, withdrawn = decode(chunks)
    assert announced == {"10.2.0.0/16"}
    assert withdrawn == set()  # the peer never held 10.1.0.0/16: nothing to withdraw
    # not listed as advertised (``show rib advertised`` reads ``tables``), but counted
    assert set(map(str, out.tables[IPV4_UNICAST])) == {"10.2.0.0/16"} and out.count() == 1
    assert out.unsent_count() == 1 and out.unsent_count(IPV4_UNICAST) == 1 and out.refused == 1
    (rec,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert rec.getMessage().startswith("small: not advertising ipv4-unicast 10.1.0.0/16: an UPDATE with")
    assert not out.pending()


def test_an_advertised_route_that_grows_too_large_is_withdrawn():
    # The peer held the small version: it must not keep it once the route changed.
    out = AdjRibOut("small")
    key = Prefix.parse("10.1.0.0/16")
    out.stage(IPV4_UNICAST, key, path("10.1.0.0/16"))
    assert decode(out.flush(SMALL)) == ({"10.1.0.0/16"}, set())
    out.stage(IPV4_UNICAST, key, path("10.1.0.0/16", HUGE))
    out.stage(IPV4_UNICAST, Prefix.parse("10.2.0.0/16"), path("10.2.0.0/16"))
    assert decode(out.flush(SMALL)) == ({"10.2.0.0/16"}, {"10.1.0.0/16"})
    assert key not in out.tables[IPV4_UNICAST] and out.unsent_count() == 1


def test_refused_route_is_not_retried_until_it_changes_and_goes_quietly(caplog):
    out = AdjRibOut("small")
    key = Prefix.parse("10.1.0.0/16")
    big = path("10.1.0.0/16", HUGE)
    out.stage(IPV4_UNICAST, key, big)
    with caplog.at_level(logging.DEBUG, "l3fab.rib"):
        out.flush(SMALL)
        # the same route again (e.g. best moved between equal paths): nothing to send
        out.stage(IPV4_UNICAST, key, big._replace(source=Source("other", "192.0.2.10")))
        assert not out.pending() and out.flush(SMALL) == []
        # another route that does not fit: counted, logged at debug level only
        out.stage(IPV4_UNICAST, Prefix.parse("10.3.0.0/16"), path("10.3.0.0/16", HUGE))
        out.flush(SMALL)
    assert out.refused == 2 and out.unsent_count() == 2
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    # a version that fits is advertised
    out.stage(IPV4_UNICAST, key, path("10.1.0.0/16"))
    assert decode(out.flush(SMALL)) == ({"10.1.0.0/16"}, set())
    assert out.unsent_count() == 1 and key in out.tables[IPV4_UNICAST]
    # withdrawn upstream while unsent: the peer holds nothing, nothing is sent
    out.stage(IPV4_UNICAST, Prefix.parse("10.3.0.0/16"), None)
    assert not out.pending() and out.unsent_count() == 0
    # a new session starts afresh (and may have extended messages)
    out.clear()
    assert out.unsent_count() == 0 and out.refused == 2


# ------------------------------------------------------------------ through the RIB manager


class Node:
    """A RibManager with sessions brought up through the sans-IO FSM (``sessions.pair``)."""

    def __init__(self, *names: str) -> None:
        self.rib = RibManager(RibSettings(65001, "10.0.0.1"), [PeerTableConfig(n) for n in names])
        self.codecs: dict[str, CodecContext] = {}

    def up(self, name: str, peer_as: int, extended: bool) -> RibOutput:
        n = peer_as - 65000
        link = pair(dict(local_as=65001, router_id="10.0.0.1", peer_as=peer_as),
                    dict(local_as=peer_as, router_id=f"10.0.0.{n}", peer_as=65001, extended_message=extended))
        link.establish()
        neg = link.a.negotiated
        assert neg is not None and neg.codec.max_message == (65535 if extended else 4096)
        self.codecs[name] = neg.codec
        source = Source(name, f"172.16.{n}.2", neg.peer_as, neg.peer_id, neg.ibgp, False, neg.local_as)
        ctx = ExportContext(name, neg.peer_as, neg.local_as, "10.0.0.1", neg.families, MpNextHop(f"172.16.{n}.1"))
        return self.rib.peer_up(name, neg, source, ctx)

    def announce(self, name: str, *prefixes: str, extra=()) -> None:
        """``name`` sends an UPDATE (encoded for an extended session, decoded as the FSM would)."""
        u = Update(attributes=BASE + (NextHop("172.16.9.2"),) + tuple(extra),
                   nlri=tuple(Prefix.parse(p) for p in prefixes))
        r = MessageReader(self.codecs[name])
        r.feed(u.encode(LARGE))
        (decoded,) = list(r.messages())
        self.rib.update_received(name, decoded)
        self.rib.process()


def test_route_too_large_for_one_peer_does_not_stop_the_others():
    node = Node("big", "small")
    node.up("big", 65009, extended=True)
    # A route with 4400 octets of communities arrives over the extended session...
    node.announce("big", "10.1.0.0/16", extra=(HUGE,))
    node.announce("big", "10.2.0.0/16")
    # ... then a peer without extended messages comes up: before the fix peer_up raised
    # (and the daemon dropped the connection without a NOTIFICATION, every second).
    start = node.up("small", 65010, extended=False)
    announced, withdrawn = decode(start.send["small"], node.codecs["small"])
    assert announced == {"10.2.0.0/16"} and withdrawn == set()
    out = node.rib.peers["small"].rib_out
    assert out.unsent_count() == 1 and {str(k) for k in out.tables[IPV4_UNICAST]} == {"10.2.0.0/16"}
    # On the Established session later advertisements keep flowing (before: every drain
    # raised while a route too large was staged, so nothing was sent any more).
    node.announce("big", "10.3.0.0/16", extra=(HUGE,))
    node.announce("big", "10.4.0.0/16")
    assert decode(node.rib.drain()["small"], node.codecs["small"]) == ({"10.4.0.0/16"}, set())
    assert out.refused == 2
    # the extended-message peer is not affected (it sent them; the others are there)
    assert node.rib.peers["big"].rib_out.count() == 0  # never back to the peer it came from
