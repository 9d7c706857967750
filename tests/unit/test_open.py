"""OPEN messages and capabilities (RFC 4271 4.2 and 6.2, RFC 5492, RFC 9072) and the
OPEN checks the session makes (hold time, peer AS, BGP identifier)."""
from __future__ import annotations

import struct

import pytest

from bgpbytes import MARKER, cap, hx, ip, message, open_body
from l3fab.speaker.session import Session, SessionConfig
from l3fab.speaker.session.events import NotificationSent, Send, State
from l3fab.speaker.wire import IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6, Open, decode_message
from l3fab.speaker.wire.capabilities import (
    AddPathCap,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHop,
    FourOctetAs,
    FqdnCap,
    GracefulRestartCap,
    Multiprotocol,
    RouteRefreshCap,
    UnknownCapability,
    decode_capability,
)
from l3fab.speaker.wire.constants import AS_TRANS, Family
from l3fab.speaker.wire.errors import LocalProtocolError, OpenMessageError

# --------------------------------------------------------------- capabilities, byte-exact

CAPABILITY_WIRE = [
    (Multiprotocol(IPV4_UNICAST), "01 04 0001 00 01"),
    (Multiprotocol(IPV6_UNICAST), "01 04 0002 00 01"),
    (Multiprotocol(VPNV4), "01 04 0001 00 80"),
    (Multiprotocol(VPNV6), "01 04 0002 00 80"),
    (RouteRefreshCap(), "02 00"),
    (EnhancedRouteRefreshCap(), "46 00"),
    (ExtendedMessageCap(), "06 00"),
    (FourOctetAs(4200000001), "41 04 fa56ea01"),
    (FourOctetAs(65001), "41 04 0000fde9"),
    # RFC 8950: NLRI AFI (2) + NLRI SAFI (2) + next-hop AFI (2)
    (ExtendedNextHop(((IPV4_UNICAST, 2), (VPNV4, 2))), "05 0c 0001 0001 0002 0001 0080 0002"),
    # RFC 4724: R bit + restart time 120, IPv4 unicast with F bit, IPv6 unicast without
    (GracefulRestartCap(True, False, 120, ((IPV4_UNICAST, True), (IPV6_UNICAST, False))),
     "40 0a 8078 0001 01 80 0002 01 00"),
    # RFC 8538 N bit
    (GracefulRestartCap(False, True, 300, ()), "40 02 412c"),
    # RFC 7911: IPv4 unicast receive, IPv6 unicast both
    (AddPathCap(((IPV4_UNICAST, 1), (IPV6_UNICAST, 3))), "45 08 0001 01 01 0002 01 03"),
    # draft-walton-bgp-hostname-capability, as FRR sends it
    (FqdnCap("leaf1", "dc.example"), "49 11 05 6c65616631 0a 64632e6578616d706c65"),
    (FqdnCap("spine", ""), "49 07 05 7370696e65 00"),
    (UnknownCapability(code=75, raw=b"\x05FRR 8"), "4b 06 05 46525220 38"),
]


@pytest.mark.parametrize("capability,wire", CAPABILITY_WIRE,
                         ids=lambda x: type(x).__name__ if not isinstance(x, str) else "")
def test_capability_encoding_and_decoding(capability, wire):
    raw = hx(wire)
    assert capability.pack() == raw
    assert decode_capability(raw[0], raw[2:]) == capability


@pytest.mark.parametrize("code,value", [(1, b"\x00\x01\x00"), (65, b"\x00\x00\xfd"), (5, b"\x00\x01\x00\x01"),
                                        (64, b"\x00"), (64, b"\x00\x78\x00"), (69, b"\x00\x01\x01")])
def test_known_capability_with_bad_length_is_an_open_error(code, value):
    body = open_body(65001, 90, "10.0.0.1", cap(code, value))
    with pytest.raises(OpenMessageError) as e:
        decode_message(message(1, body))
    assert e.value.code == 2


def test_hostname_capability_with_overlong_hostname_is_kept_raw():
    assert decode_capability(73, b"\x09ab") == UnknownCapability(code=73, raw=b"\x09ab")


def test_capability_longer_than_255_octets_cannot_be_encoded():
    # Regression: this raised a bare ValueError from bytes((code, 300)).
    many = ExtendedNextHop(tuple((Family(1, n), 2) for n in range(50)))
    with pytest.raises(LocalProtocolError):
        many.pack()
    with pytest.raises(LocalProtocolError):
        FqdnCap("h" * 200, "d" * 200).pack()


# --------------------------------------------------------------- OPEN, byte-exact


def test_open_ipv4_only_byte_exact():
    o = Open(65001, 90, "10.0.0.1", (Multiprotocol(IPV4_UNICAST), FourOctetAs(65001)))
    # version 4, my AS fde9, hold 005a, id 0a000001, optional parameters 0e:
    # one capabilities parameter (02, 0c) holding MP + 4-octet AS.
    assert o.encode() == MARKER + hx("002b 01 04 fde9 005a 0a000001 0e 02 0c 0104 00010001 4104 0000fde9")


def test_open_four_octet_asn_uses_as_trans():
    o = Open(4200000001, 180, "192.0.2.1", (FourOctetAs(4200000001),))
    wire = o.encode()
    assert wire[19 + 1 : 19 + 3] == struct.pack("!H", AS_TRANS)
    back = decode_message(wire)
    assert back.asn == 4200000001 and back.my_as_field == AS_TRANS


def test_open_without_capabilities():
    o = Open(65001, 0, "1.2.3.4")
    assert o.encode() == MARKER + hx("001d 01 04 fde9 0000 01020304 00")
    assert decode_message(o.encode()) == Open(65001, 0, "1.2.3.4", (), 4, 65001)


def test_frr_style_open_decodes_every_capability_and_keeps_unknown_ones():
    # Shape of an FRR 8.4 OPEN (datacenter profile): MP v4/v6, route refresh (new and
    # old Cisco code 128), enhanced RR, 4-octet AS, extended next hop, ADD-PATH,
    # hostname, long-lived GR (71, unknown here), graceful restart, software version.
    caps = b"".join((
        cap(1, hx("0001 00 01")), cap(1, hx("0002 00 01")),
        cap(128), cap(2), cap(70), cap(65, hx("0000fde9")),
        cap(5, hx("0001 0001 0002")), cap(69, hx("0001 01 01 0002 01 01")),
        cap(73, hx("05") + b"leaf1" + hx("00")), cap(71), cap(64, hx("c078")),
        cap(75, hx("1a") + b"FRRouting/8.4.4_git" + b"\x00" * 7),
    ))
    # FRR puts each capability in its own optional parameter; do the same.
    params = b""
    i = 0
    while i < len(caps):
        n = 2 + caps[i + 1]
        params += bytes((2, n)) + caps[i : i + n]
        i += n
    body = struct.pack("!BHH4sB", 4, 65001, 9, ip("10.0.0.2"), len(params)) + params
    o = decode_message(message(1, body))
    assert (o.asn, o.hold_time, o.router_id) == (65001, 9, "10.0.0.2")
    assert o.families() == {IPV4_UNICAST, IPV6_UNICAST}
    assert o.first(FqdnCap) == FqdnCap("leaf1", "")
    assert o.first(ExtendedNextHop).entries == ((IPV4_UNICAST, 2),)
    assert o.first(AddPathCap).entries == ((IPV4_UNICAST, 1), (IPV6_UNICAST, 1))
    gr = o.first(GracefulRestartCap)
    assert gr.restart_state and gr.notification and gr.restart_time == 120
    unknown = {c.code: c.raw for c in o.find(UnknownCapability)}
    assert set(unknown) == {128, 71, 75}
    assert unknown[75].startswith(b"\x1aFRRouting")
    assert o.first(RouteRefreshCap) and o.first(EnhancedRouteRefreshCap)


def test_open_round_trip_with_every_capability():
    caps = tuple(c for c, _ in CAPABILITY_WIRE)
    o = Open(4200000001, 90, "10.9.8.7", caps)
    back = decode_message(o.encode())
    assert back.capabilities == caps
    assert back.asn == 4200000001


def test_rfc9072_extended_optional_parameters_round_trip():
    caps = tuple(UnknownCapability(code=200 + i, raw=bytes(40)) for i in range(8))  # 336 octets
    o = Open(65001, 90, "10.0.0.1", caps)
    wire = o.encode()
    body = wire[19:]
    # Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length, then a
    # parameter with a 2-octet length.
    assert body[9:11] == b"\xff\xff"
    assert struct.unpack("!H", body[11:13])[0] == 3 + 336
    assert body[13] == 2 and struct.unpack("!H", body[14:16])[0] == 336
    assert decode_message(wire).capabilities == caps


def test_rfc9072_truncated_extended_length_is_an_open_error():
    # Regression: 12-octet body with the extended marker raised struct.error.
    body = struct.pack("!BHH4sBB", 4, 65001, 90, ip("10.0.0.1"), 255, 255) + b"\x00"
    with pytest.raises(OpenMessageError):
        decode_message(message(1, body))


# --------------------------------------------------------------- OPEN errors (codec)


def test_unsupported_version_is_2_1_with_our_version_as_data():
    # RFC 4271 section 6.2: data is the largest locally supported version, 2 octets.
    with pytest.raises(OpenMessageError) as e:
        decode_message(message(1, open_body(65001, 90, "10.0.0.1", version=3)))
    assert (e.value.code, e.value.subcode, e.value.data) == (2, 1, b"\x00\x04")


def test_unsupported_optional_parameter_is_2_4():
    # Parameter type 1 (authentication, deprecated) is not supported.
    body = struct.pack("!BHH4sB", 4, 65001, 90, ip("10.0.0.1"), 4) + hx("01 02 abcd")
    with pytest.raises(OpenMessageError) as e:
        decode_message(message(1, body))
    assert (e.value.code, e.value.subcode) == (2, 4)


@pytest.mark.parametrize("tail", [hx("02"), hx("02 05 0104"), hx("02 02 01 04")])
def test_malformed_optional_parameters_are_open_errors(tail):
    body = struct.pack("!BHH4sB", 4, 65001, 90, ip("10.0.0.1"), len(tail)) + tail
    with pytest.raises(OpenMessageError) as e:
        decode_message(message(1, body))
    assert e.value.code == 2


def test_optional_parameter_length_mismatch_is_an_open_error():
    body = struct.pack("!BHH4sB", 4, 65001, 90, ip("10.0.0.1"), 10) + hx("02 02 0200")
    with pytest.raises(OpenMessageError):
        decode_message(message(1, body))


# --------------------------------------------------------------- OPEN errors (session)


def _opensent(**kw) -> Session:
    cfg = dict(local_as=65001, router_id="10.0.0.1", peer_as=65002)
    cfg.update(kw)
    s = Session(SessionConfig(**cfg))
    s.start()
    s.connection_made()
    assert s.state is State.OPENSENT
    return s


def _notification_sent(actions):
    sent = [a.notification for a in actions if isinstance(a, NotificationSent)]
    assert len(sent) == 1, actions
    wire = [a.data for a in actions if isinstance(a, Send)]
    assert wire and wire[-1] == sent[0].encode()
    return sent[0]


def _peer_open(asn=65002, hold=90, rid="10.0.0.2", caps=(FourOctetAs(65002),), version=4) -> bytes:
    return Open(asn, hold, rid, caps, version).encode()


@pytest.mark.parametrize("hold", [1, 2])
def test_hold_time_1_or_2_is_2_6(hold):
    s = _opensent()
    n = _notification_sent(s.data_received(_peer_open(hold=hold)))
    assert (n.code, n.subcode) == (2, 6)
    assert s.state is State.IDLE


@pytest.mark.parametrize("hold", [0, 3])
def test_hold_time_0_or_3_is_accepted(hold):
    # a peer's hold time 0 is accepted only where ours is 0 too (minimum hold time: issue 10, finding 8)
    s = _opensent(**({"hold_time": 0} if hold == 0 else {}))
    s.data_received(_peer_open(hold=hold))
    assert s.state is State.OPENCONFIRM
    assert s.negotiated.hold_time == hold


def test_unexpected_peer_as_is_2_2():
    s = _opensent()
    n = _notification_sent(s.data_received(_peer_open(asn=65003, caps=(FourOctetAs(65003),))))
    assert (n.code, n.subcode) == (2, 2)


def test_peer_as_from_the_four_octet_capability_is_the_one_checked():
    s = _opensent(peer_as=4200000002)
    s.data_received(_peer_open(asn=4200000002, caps=(FourOctetAs(4200000002),)))
    assert s.state is State.OPENCONFIRM
    assert s.negotiated.peer_as == 4200000002


@pytest.mark.parametrize("want,peer,ok", [("external", 65002, True), ("external", 65001, False),
                                          ("internal", 65001, True), ("internal", 65002, False),
                                          (None, 65009, True)])
def test_peer_as_external_internal_any(want, peer, ok):
    s = _opensent(peer_as=want)
    actions = s.data_received(_peer_open(asn=peer, caps=(FourOctetAs(peer),)))
    if ok:
        assert s.state is State.OPENCONFIRM
    else:
        assert (_notification_sent(actions).subcode) == 2


def test_zero_bgp_identifier_is_2_3():
    s = _opensent()
    n = _notification_sent(s.data_received(_peer_open(rid="0.0.0.0")))
    assert (n.code, n.subcode) == (2, 3)


def test_same_bgp_identifier_on_ibgp_is_2_3():
    s = _opensent(peer_as=65001)
    n = _notification_sent(s.data_received(_peer_open(asn=65001, rid="10.0.0.1", caps=(FourOctetAs(65001),))))
    assert (n.code, n.subcode) == (2, 3)


def test_bad_version_from_peer_gets_2_1_notification():
    s = _opensent()
    body = open_body(65002, 90, "10.0.0.2", version=5)
    n = _notification_sent(s.data_received(message(1, body)))
    assert (n.code, n.subcode, n.data) == (2, 1, b"\x00\x04")
