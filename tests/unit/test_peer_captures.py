"""What real GoBGP 3.10 and ExaBGP 5.0.15 sent to an l3fab session, byte for byte
(tests/unit/data/README.md, recorded by ``python -m l3fab.lab.capture``), decoded by the
codec and fed through a Session: OPEN capabilities, IPv4 unicast with IPv4 and
RFC 8950 IPv6 next hops, IPv6 unicast, VPNv4/VPNv6 with RD types 0/1/2, labels,
route targets, communities, MED, large communities, withdrawals, End-of-RIB and the
Cease each peer ends the session with.

Both peers got the same routes (lab/capture.py), over an IPv4 and an IPv6 transport."""
from __future__ import annotations

import pytest

from captures import ALL, load, run_session
from l3fab.speaker.session.events import Established, NotificationReceived, SessionDown, State, UpdateReceived
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    KEEPALIVE,
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
    MpReachNlri,
    NextHop,
    Notification,
    Open,
    Origin,
    Prefix,
    RouteDistinguisher,
    Update,
    VpnPrefix,
    decode_message,
    route_target,
)
from l3fab.speaker.wire.capabilities import (
    ExtendedMessageCap,
    ExtendedNextHop,
    FourOctetAs,
    FqdnCap,
    GracefulRestartCap,
    Multiprotocol,
    RouteRefreshCap,
)

CAPTURES = {
    (peer, transport): load(f"{peer}-{transport}-session.hex")
    for peer in ("gobgp-3.10", "exabgp-5.0.15")
    for transport in ("ipv4", "ipv6")
}
IDS = [f"{p}-{t}" for p, t in CAPTURES]
CTX = CodecContext(max_message=65535)
NH4, NH6 = MpNextHop("10.0.0.2"), MpNextHop("2001:db8::2")


def decoded(capture) -> list:
    return [decode_message(m, CTX) for m in CAPTURES[capture]]


def updates(capture) -> list[Update]:
    return [m for m in decoded(capture) if isinstance(m, Update)]


def vpn(rd: RouteDistinguisher, prefix: str, label: int) -> VpnPrefix:
    return VpnPrefix(rd, Prefix.parse(prefix), (label,))


RD_65002_7 = RouteDistinguisher(0, 65002, 7)
RD_IP_8 = RouteDistinguisher(1, "10.0.0.2", 8)
RD_4B_9 = RouteDistinguisher(2, 4200000001, 9)
RD_65002_10 = RouteDistinguisher(0, 65002, 10)


def test_captures_are_there():
    for capture, msgs in CAPTURES.items():
        # OPEN, KEEPALIVE, 4 End-of-RIB, 7 announcements, 3 withdrawals, NOTIFICATION
        assert [m[18] for m in msgs] == [1, 4] + [2] * 14 + [3], capture
        assert decode_message(msgs[1]) == KEEPALIVE


# ------------------------------------------------------------------ OPEN


OPENS = {  # hold time and capabilities, in the order sent
    "gobgp-3.10": (90, (
        RouteRefreshCap(),
        FqdnCap("peer", ""),  # the lab namespace's hostname
        Multiprotocol(IPV4_UNICAST), Multiprotocol(IPV6_UNICAST), Multiprotocol(VPNV4), Multiprotocol(VPNV6),
        FourOctetAs(65002),
        GracefulRestartCap(False, False, 120, tuple((f, False) for f in ALL)),
        # GoBGP also lists VPNv6 with an IPv6 next hop, which RFC 8950 does not need
        ExtendedNextHop(((IPV4_UNICAST, 2), (VPNV4, 2), (VPNV6, 2))),
    )),
    "exabgp-5.0.15": (180, (  # no route refresh, no graceful restart unless configured
        Multiprotocol(IPV4_UNICAST), Multiprotocol(VPNV4), Multiprotocol(IPV6_UNICAST), Multiprotocol(VPNV6),
        FourOctetAs(65002),
        ExtendedNextHop(((IPV4_UNICAST, 2), (VPNV4, 2))),
        ExtendedMessageCap(),
    )),
}


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_open(capture):
    raw = CAPTURES[capture][0]
    o = decode_message(raw)
    assert isinstance(o, Open)
    hold_time, capabilities = OPENS[capture[0]]
    assert (o.version, o.asn, o.my_as_field, o.hold_time, o.router_id) == (4, 65002, 65002, hold_time, "10.0.0.2")
    assert o.capabilities == capabilities
    assert decode_message(o.encode()) == o
    params, at = [], 29  # optional parameters (RFC 5492): type, length, value
    while at < len(raw):
        params.append(raw[at])
        at += 2 + raw[at + 1]
    if capture[0] == "gobgp-3.10":  # all capabilities in one parameter, as l3fab encodes them
        assert params == [2] and o.encode() == raw
    else:  # one capabilities parameter per capability
        assert params == [2] * len(capabilities) and len(o.encode()) == len(raw) - 2 * (len(capabilities) - 1)


# ------------------------------------------------------------------ UPDATEs


def announced(capture) -> list[tuple]:
    """(family, next hop, NLRI) of every announcement, in the order sent."""
    return [r for u in updates(capture) for r in u.reachable()]


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_end_of_rib_markers(capture):
    ups = updates(capture)
    eors = [u.end_of_rib() for u in ups if u.end_of_rib()]
    # GoBGP sends End-of-RIB only with graceful restart enabled on its side (lab/capture.py does),
    # in an order that changes from run to run (Go map iteration): this is the recorded one
    order = {"gobgp-3.10": [VPNV4, VPNV6, IPV4_UNICAST, IPV6_UNICAST],
             "exabgp-5.0.15": [IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6]}[capture[0]]
    assert eors == order
    assert all(u.end_of_rib() for u in ups[:4])  # before any route: none were configured yet
    raw = CAPTURES[capture][2:6]
    # IPv4 unicast: an empty UPDATE (23 octets); the others an empty MP_UNREACH_NLRI,
    # ExaBGP's with the extended-length flag (30 octets), GoBGP's without (29)
    mp_len = 30 if capture[0].startswith("exabgp") else 29
    assert sorted(len(m) for m in raw) == [23, mp_len, mp_len, mp_len]


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_announcements(capture):
    peer, transport = capture
    # 10.1.0.0/16 went with the transport's next hop, 192.0.2.1/32 with the other one;
    # an IPv4 prefix with an IPv6 next hop travels in MP_REACH_NLRI (RFC 8950)
    nh_first, nh_second = (NH4, NH6) if transport == "ipv4" else (NH6, NH4)
    assert announced(capture) == [
        (IPV4_UNICAST, nh_first, (Prefix.parse("10.1.0.0/16"),)),
        (IPV4_UNICAST, nh_second, (Prefix.parse("192.0.2.1/32"),)),
        (IPV6_UNICAST, NH6, (Prefix.parse("2001:db8:1::/48"),)),
        (VPNV4, NH4, (vpn(RD_65002_7, "10.2.0.0/24", 100),)),
        (VPNV4, NH4, (vpn(RD_IP_8, "10.3.0.0/24", 101),)),
        (VPNV6, NH6, (vpn(RD_4B_9, "2001:db8:2::/48", 102),)),
        (VPNV6, NH6, (vpn(RD_65002_10, "2001:db8:3::/48", 103),)),
    ]
    ups = [u for u in updates(capture) if u.reachable()]
    v4_in_nlri_field = ups[0] if transport == "ipv4" else ups[1]
    assert v4_in_nlri_field.nlri and v4_in_nlri_field.get(NextHop) == NextHop("10.0.0.2")
    v4_in_mp = ups[1] if transport == "ipv4" else ups[0]
    assert not v4_in_mp.nlri and v4_in_mp.get(MpReachNlri).family == IPV4_UNICAST


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_path_attributes(capture):
    peer = capture[0]
    ups = [u for u in updates(capture) if u.reachable()]
    # ExaBGP sends the AS_PATH it was given as is, without its own AS
    if peer == "gobgp-3.10":
        origin, path, own = Origin(0), AsPath.sequence(65002, 65010, 4200000001), AsPath.sequence(65002)
    else:
        origin, path, own = Origin(2), AsPath.sequence(65010, 4200000001), AsPath.sequence(65002)
    tagged = {origin, path, Med(77), Communities(((65002 << 16) | 1, 0xFFFF029A)),
              LargeCommunities((LargeCommunity(65002, 1, 2),))}
    for u in (ups[0], ups[2]):  # 10.1.0.0/16 and 2001:db8:1::/48
        assert tagged <= set(u.path_attributes())
        assert u.get(ExtendedCommunities) is None
    assert {Origin(0), own} <= set(ups[1].path_attributes()) and ups[1].get(Med) is None
    assert ups[1].get(Communities) is None and ups[1].get(LargeCommunities) is None
    vpn4, vpn4_ip, vpn6, vpn6_b = ups[3:]
    assert vpn4.get(ExtendedCommunities) == ExtendedCommunities((route_target("65002:100"), route_target("65002:200")))
    assert vpn4.get(Communities) == Communities(((65002 << 16) | 1,)) and vpn4.get(Med) == Med(5)
    # type 1 (IPv4 address specific) route target
    (rt,) = vpn4_ip.get(ExtendedCommunities).communities
    assert (rt.type, rt.subtype, rt.admin_assigned(), rt.is_route_target) == (1, 2, ("10.0.0.2", 100), True)
    assert rt == route_target("10.0.0.2:100")
    for u in (vpn6, vpn6_b):
        assert u.get(ExtendedCommunities) == ExtendedCommunities((route_target("65002:100"),))
        assert u.get(Communities) is None and u.get(Med) is None
    # ExaBGP adds a NEXT_HOP attribute to its VPNv4 UPDATEs besides MP_REACH_NLRI's
    assert (vpn4.get(NextHop) is not None) == (peer == "exabgp-5.0.15")


def raw_attributes(message: bytes) -> list[tuple[int, int, bytes]]:
    """(flags, type code, value) of an UPDATE's path attributes, read without the codec."""
    body = message[19:]
    at = 2 + int.from_bytes(body[:2], "big")
    end = at + 2 + int.from_bytes(body[at:at + 2], "big")
    at += 2
    out = []
    while at < end:
        flags, code = body[at], body[at + 1]
        size = 2 if flags & 0x10 else 1
        length = int.from_bytes(body[at + 2:at + 2 + size], "big")
        out.append((flags, code, body[at + 2 + size:at + 2 + size + length]))
        at += 2 + size + length
    return out


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_mp_reach_next_hop_lengths_on_the_wire(capture):
    """RFC 4364/4659: VPN next hops carry an all-zero RD: 12 octets for IPv4, 24 for IPv6."""
    lengths = {}
    for raw in CAPTURES[capture][2:-1]:
        for flags, code, value in raw_attributes(raw):
            if code == 14:  # MP_REACH_NLRI
                assert flags == 0x80  # optional, non-transitive, 1-octet length
                family = (int.from_bytes(value[:2], "big"), value[2])
                if family in (VPNV4, VPNV6):
                    assert value[4:12] == bytes(8)  # the zero RD
                lengths.setdefault(family, set()).add(value[3])
    assert lengths == {IPV4_UNICAST: {16}, IPV6_UNICAST: {16}, VPNV4: {12}, VPNV6: {24}}


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_attribute_order_on_the_wire(capture):
    """Both put MP_REACH_NLRI (14) last in an IPv6 unicast UPDATE; in VPN UPDATEs GoBGP puts
    it before EXTENDED_COMMUNITIES (16), ExaBGP still last. l3fab accepts any order."""
    orders = [[code for _, code, _ in raw_attributes(m)] for m in CAPTURES[capture][9:13]]
    if capture[0] == "gobgp-3.10":
        assert orders == [[1, 2, 4, 8, 14, 16], [1, 2, 14, 16], [1, 2, 14, 16], [1, 2, 14, 16]]
    else:
        assert orders == [[1, 2, 3, 4, 8, 16, 14], [1, 2, 3, 16, 14], [1, 2, 16, 14], [1, 2, 16, 14]]
    ipv6 = [code for _, code, _ in raw_attributes(CAPTURES[capture][8])]
    assert ipv6 == ([1, 2, 4, 8, 32, 14])  # LARGE_COMMUNITY (32) before MP_REACH_NLRI in both


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_withdrawals(capture):
    ups = updates(capture)[-3:]
    assert [u.unreachable() for u in ups] == [
        # IPv4 unicast is withdrawn in the UPDATE's own field even on the IPv6 session
        # where it was announced with an IPv6 next hop in MP_REACH_NLRI
        [(IPV4_UNICAST, (Prefix.parse("10.1.0.0/16"),))],
        [(VPNV4, (VpnPrefix(RD_65002_7, Prefix.parse("10.2.0.0/24"), ()),))],
        [(VPNV6, (VpnPrefix(RD_65002_10, Prefix.parse("2001:db8:3::/48"), ()),))],
    ]
    assert all(not u.reachable() and not u.end_of_rib() for u in ups)
    # both send the route's own label (bottom of stack) in the withdrawal, not RFC 8277's
    # 0x800000; l3fab ignores it (the RD and prefix are the key)
    assert bytes.fromhex("70 000641 0000fdea00000007 0a0200") in CAPTURES[capture][-3]
    assert bytes.fromhex("88 000671 0000fdea0000000a 20010db80003") in CAPTURES[capture][-2]
    # ExaBGP sends ORIGIN and AS_PATH (and NEXT_HOP for VPNv4) along with MP_UNREACH_NLRI
    extra = {type(a) for u in ups[1:] for a in u.path_attributes()}
    assert extra == ({Origin, AsPath, NextHop} if capture[0] == "exabgp-5.0.15" else set())


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_cease(capture):
    note = decode_message(CAPTURES[capture][-1])
    if capture[0] == "gobgp-3.10":  # DeletePeer
        assert note == Notification(6, 3, b"") and note.shutdown_message is None
    else:  # API "neighbor ... teardown 2": an RFC 9003 shutdown communication
        assert note == Notification(6, 2, b"\x17Administrative Shutdown")
        assert note.shutdown_message == "Administrative Shutdown"


# ------------------------------------------------------------------ through a Session


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_session_established_and_ceased(capture):
    peer = capture[0]
    s, events = run_session(CAPTURES[capture])
    (up,) = [e.negotiated for e in events if isinstance(e, Established)]
    assert up.families == set(ALL) and up.extended_next_hop == {IPV4_UNICAST, VPNV4}
    assert (up.peer_as, up.peer_id, up.hold_time, up.four_octet_as) == (65002, "10.0.0.2", 90, True)
    assert up.extended_message == (peer == "exabgp-5.0.15")
    assert up.route_refresh == (peer == "gobgp-3.10") and not up.enhanced_route_refresh
    assert (up.peer_graceful_restart is not None) == (peer == "gobgp-3.10")
    got = [e.update for e in events if isinstance(e, UpdateReceived)]
    assert got == updates(capture) and len(got) == 14
    assert all(not u.faults and not u.treat_as_withdraw for u in got)
    (note,) = [e.notification for e in events if isinstance(e, NotificationReceived)]
    assert note.code == 6 and note.subcode == (3 if peer == "gobgp-3.10" else 2)
    assert s.state is State.IDLE and any(isinstance(e, SessionDown) for e in events)
    assert s.messages_in == len(CAPTURES[capture]) and s.updates_in == 14


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_l3fab_re_encoding_decodes_to_the_same(capture):
    for u in updates(capture):
        again = decode_message(u.encode(CTX), CTX)
        assert again == u and not again.faults
