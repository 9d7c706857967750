"""What a real FRR 8.4.4 sent, byte for byte (tests/unit/data/README.md), decoded by
the codec and fed through a Session: OPEN capabilities, UPDATEs of all four
families with 4/12/16/24/32/48-octet next hops, ADD-PATH, End-of-RIB, enhanced
route refresh and an RFC 9003 shutdown NOTIFICATION."""
from __future__ import annotations

import pytest

from captures import ALL, load, run_session
from l3fab.speaker.session.events import (
    Established,
    NotificationReceived,
    RouteRefreshReceived,
    SessionDown,
    State,
    UpdateReceived,
)
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    VPNV4,
    VPNV6,
    AsPath,
    CodecContext,
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    Med,
    MpNextHop,
    Notification,
    Open,
    Origin,
    PathId,
    Prefix,
    RemoteProtocolError,
    RouteDistinguisher,
    RouteRefresh,
    Update,
    VpnPrefix,
    decode_message,
    route_target,
)
from l3fab.speaker.wire.capabilities import (
    AddPathCap,
    ExtendedNextHop,
    FqdnCap,
    GracefulRestartCap,
    UnknownCapability,
)

FRR_NH = "2001:db8::2"


V4 = load("frr-8.4.4-ipv4-session.hex")
V6 = load("frr-8.4.4-ipv6-session.hex")
LINK_LOCAL = str(decode_message(V6[2], CodecContext(max_message=65535)).reachable()[0][1].link_local)


def test_captures_are_there():
    assert len(V4) == 16 and len(V6) == 20
    assert [m[18] for m in V4[:2]] == [1, 4] and [m[18] for m in V6[:2]] == [1, 4]


# ------------------------------------------------------------------ OPEN


def test_frr_open_capabilities():
    o = decode_message(V6[0])
    assert isinstance(o, Open)
    assert (o.asn, o.hold_time, o.router_id, o.my_as_field) == (65002, 9, "10.0.0.2", 65002)
    assert o.families() == set(ALL)
    # one extended-next-hop capability per family, not one with two entries
    assert [c.entries for c in o.find(ExtendedNextHop)] == [((IPV4_UNICAST, 2),), ((VPNV4, 2),)]
    assert set(o.first(AddPathCap).entries) == {(f, 1) for f in ALL}  # receive, for every family
    assert o.first(FqdnCap) == FqdnCap("frr", "")
    assert o.first(GracefulRestartCap) == GracefulRestartCap(True, True, 120, ())
    unknown = {c.code: c.raw for c in o.find(UnknownCapability)}
    assert set(unknown) == {128, 71}  # old Cisco route refresh, long-lived graceful restart
    # every capability l3fab understands re-encodes to what FRR sent
    assert all(c.pack() in V6[0] for c in o.capabilities)


def test_frr_open_ipv4_session_has_no_extended_next_hop():
    o = decode_message(V4[0])
    assert o.families() == {IPV4_UNICAST, VPNV4}
    assert not o.find(ExtendedNextHop)


# ------------------------------------------------------------------ UPDATEs


PATH_SET = (  # route-map SET in the capture's configuration
    Origin(2),
    AsPath.sequence(65002, 4200000001, 65010),
    Med(77),
    Communities(((65002 << 16) | 1, 0xFFFF029A)),
    ExtendedCommunities((route_target("65002:100"), route_target("65002:200"))),
    LargeCommunities((LargeCommunity(65002, 1, 2),)),
)


def _updates(events) -> list[Update]:
    return [e.update for e in events if isinstance(e, UpdateReceived)]


def test_frr_ipv4_session_updates():
    _, events = run_session(V4, addpath_receive=(IPV4_UNICAST,))
    (up,) = [e.negotiated for e in events if isinstance(e, Established)]
    assert up.addpath_receive == {IPV4_UNICAST} and up.families == {IPV4_UNICAST, VPNV4}
    ups = _updates(events)
    assert all(not u.faults and not u.treat_as_withdraw for u in ups)
    first = ups[0]
    assert first.nlri == (PathId(2, Prefix.parse("10.1.0.0/16")),)
    assert first.reachable()[0][1] == MpNextHop("10.0.0.2")
    assert set(first.path_attributes()) >= set(PATH_SET)
    vpn = ups[1].reachable()
    assert vpn == [(VPNV4, MpNextHop("10.0.0.2"), (  # 12-octet next hop: RD 0 + IPv4
        VpnPrefix(RouteDistinguisher(0, 65002, 7), Prefix.parse("10.2.0.0/24"), (100,)),
        VpnPrefix(RouteDistinguisher(1, "10.0.0.2", 8), Prefix.parse("10.3.0.0/24"), (101,)),
    ))]
    assert ups[2].nlri == (PathId(3, Prefix.parse("192.0.2.1/32")),)
    assert [u.end_of_rib() for u in ups if u.end_of_rib()] == [VPNV4, IPV4_UNICAST]


def test_frr_ipv6_session_updates_on_a_shared_link():
    _, events = run_session(V6)
    (up,) = [e.negotiated for e in events if isinstance(e, Established)]
    assert up.extended_next_hop == {IPV4_UNICAST, VPNV4} and up.families == set(ALL)
    ups = _updates(events)
    assert all(not u.faults and not u.treat_as_withdraw for u in ups)
    global_and_ll = MpNextHop(FRR_NH, LINK_LOCAL)
    reach = [r for u in ups for r in u.reachable()]
    assert reach[:5] == [
        # RFC 8950: IPv4 with a 32-octet IPv6 next hop
        (IPV4_UNICAST, global_and_ll, (Prefix.parse("10.1.0.0/16"),)),
        # VPNv4 with a 24-octet next hop (RD 0 + IPv6)
        (VPNV4, MpNextHop(FRR_NH), (VpnPrefix(RouteDistinguisher(0, 65002, 7), Prefix.parse("10.2.0.0/24"), (100,)),
                                    VpnPrefix(RouteDistinguisher(1, "10.0.0.2", 8), Prefix.parse("10.3.0.0/24"),
                                              (101,)))),
        (IPV6_UNICAST, global_and_ll, (Prefix.parse("2001:db8:1::/48"),)),
        # VPNv6 with the 48-octet next hop (RD + global + RD + link-local) ExaBGP rejects
        (VPNV6, global_and_ll,
         (VpnPrefix(RouteDistinguisher(2, 4200000001, 9), Prefix.parse("2001:db8:2::/48"), (102,)),)),
        (IPV4_UNICAST, global_and_ll, (Prefix.parse("192.0.2.1/32"),)),
    ]
    assert set(ups[0].path_attributes()) >= set(PATH_SET)
    assert {u.end_of_rib() for u in ups if u.end_of_rib()} == set(ALL)
    # on the wire: MP_REACH_NLRI first, extended length, AFI 2 SAFI 128, next-hop length 48
    assert V6[5][23:31] == bytes.fromhex("900e") + V6[5][25:27] + bytes.fromhex("0002 80 30")


@pytest.mark.parametrize("capture", ["v4", "v6"])
def test_frr_route_refresh_and_shutdown(capture):
    msgs, cfg = (V4, {"addpath_receive": (IPV4_UNICAST,)}) if capture == "v4" else (V6, {})
    s, events = run_session(msgs, **cfg)
    assert [type(e) for e in events if isinstance(e, Established)] == [Established]
    refreshes = [e.refresh for e in events if isinstance(e, RouteRefreshReceived)]
    asked = IPV4_UNICAST if capture == "v4" else IPV6_UNICAST
    # BoRR, EoRR (RFC 7313) around the re-sent routes, then FRR's own request
    assert refreshes == [RouteRefresh(IPV4_UNICAST, 1), RouteRefresh(IPV4_UNICAST, 2), RouteRefresh(asked, 0)]
    (note,) = [e.notification for e in events if isinstance(e, NotificationReceived)]
    assert note == Notification(6, 2, b"\x13planned maintenance")
    assert note.shutdown_message == "planned maintenance"
    assert s.state is State.IDLE and any(isinstance(e, SessionDown) for e in events)


@pytest.mark.parametrize("msgs,ctx",
                         [(V4, CodecContext(addpath_receive=frozenset({IPV4_UNICAST}))), (V6, CodecContext())])
def test_l3fab_re_encoding_of_frr_updates_decodes_to_the_same(msgs, ctx):
    for m in msgs:
        u = decode_message(m, ctx)
        if isinstance(u, Update):
            again = decode_message(u.encode(ctx), ctx)
            assert again == u and not again.faults
            # FRR sends AS_PATH with the extended-length flag and large communities
            # before extended ones; l3fab's form differs only in such details
            assert abs(len(u.encode(ctx)) - len(m)) <= 4


def test_truncated_frr_messages_are_protocol_errors_not_crashes():
    ctx = CodecContext(addpath_receive=frozenset({IPV4_UNICAST}))
    errors = decoded = 0
    for m in V4 + V6:
        for cut in range(19, len(m)):
            wire = m[:16] + cut.to_bytes(2, "big") + m[18:cut]
            try:
                decoded += decode_message(wire, ctx).type == m[18]
            except RemoteProtocolError as e:  # anything else fails the test
                errors += 1
                assert e.code in (1, 2, 3, 7)
    assert errors > 1000 and decoded > 0
