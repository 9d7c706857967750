"""KEEPALIVE, NOTIFICATION, ROUTE-REFRESH and message framing (RFC 4271 4.1, 4.4, 4.5, 6.1;
RFC 2918; RFC 7313; RFC 9003)."""
from __future__ import annotations

import pytest

from bgpbytes import MARKER, hx, message, update
from sessions import config, established_with, peer_open
from l3fab.speaker.session.events import NotificationSent, Send, State
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    KEEPALIVE,
    VPNV4,
    CodecContext,
    Keepalive,
    MessageReader,
    Notification,
    RouteRefresh,
    Update,
    decode_message,
)
from l3fab.speaker.wire.capabilities import ExtendedMessageCap, FourOctetAs, Multiprotocol
from l3fab.speaker.wire.constants import Family
from l3fab.speaker.wire.errors import MessageHeaderError, RouteRefreshError
from l3fab.speaker.wire.route_refresh import SUBTYPE_BORR, SUBTYPE_EORR, SUBTYPE_REQUEST

KEEPALIVE_WIRE = hx("ffffffff ffffffff ffffffff ffffffff 0013 04")


# ------------------------------------------------------------------ KEEPALIVE


def test_keepalive_is_a_bare_19_octet_header():
    assert KEEPALIVE.encode() == KEEPALIVE_WIRE
    assert Keepalive().encode() == KEEPALIVE_WIRE


def test_keepalive_decodes():
    assert decode_message(KEEPALIVE_WIRE) == KEEPALIVE


def test_keepalive_with_a_body_is_a_length_error():
    # RFC 4271 section 6.1: a KEEPALIVE must be exactly 19 octets.
    with pytest.raises(MessageHeaderError) as e:
        decode_message(message(4, b"\x00", length=20))
    assert (e.value.code, e.value.subcode, e.value.data) == (1, 2, b"\x00\x14")


# ------------------------------------------------------------------ NOTIFICATION


def test_notification_cease_admin_shutdown_without_message():
    n = Notification(6, 2)
    assert n.encode() == MARKER + hx("0015 03 06 02")
    assert decode_message(n.encode()) == n


def test_notification_hold_timer_expired():
    assert Notification(4, 0).encode() == MARKER + hx("0015 03 04 00")


def test_notification_with_data_round_trips():
    n = Notification(3, 2, hx("c0 63 01 00"))
    wire = n.encode()
    assert wire == MARKER + hx("0019 03 03 02 c0630100")
    assert decode_message(wire) == n


def test_rfc9003_shutdown_communication_encoding():
    # RFC 9003 section 2: Cease 6/2 data = length octet + UTF-8 text.
    n = Notification.shutdown("maintenance")
    assert (n.code, n.subcode) == (6, 2)
    assert n.data == b"\x0bmaintenance"
    assert n.encode() == MARKER + hx("0021 03 0602 0b") + b"maintenance"
    back = decode_message(n.encode())
    assert back.shutdown_message == "maintenance"
    assert 'maintenance' in back.describe()


def test_rfc9003_shutdown_message_on_admin_reset():
    n = Notification(6, 4, b"\x03bye")
    assert n.shutdown_message == "bye"


def test_rfc9003_shutdown_without_text_has_no_data():
    n = Notification.shutdown()
    assert n.data == b""
    assert n.shutdown_message is None


def test_rfc9003_truncated_length_is_not_a_message():
    # Length octet claims more than is there: not a valid shutdown communication.
    assert Notification(6, 2, b"\x09abc").shutdown_message is None


def test_rfc9003_message_capped_at_255_octets_and_stays_valid_utf8():
    # Regression: truncating at 255 octets cut a multi-octet character in half,
    # which RFC 9003 forbids (the communication MUST be UTF-8).
    text = "a" * 254 + "é"  # 254 + 2 octets
    n = Notification.shutdown(text)
    assert n.data[0] == len(n.data) - 1 <= 255
    n.data[1:].decode("utf-8")  # strict: raises if invalid
    assert n.shutdown_message == "a" * 254


def test_rfc9003_not_applied_to_other_codes():
    assert Notification(3, 1, b"\x02ab").shutdown_message is None


def test_notification_describe_names_the_error():
    assert Notification(4, 0).describe().startswith("4/0 (hold timer expired)")
    assert "data 0004" in Notification(2, 1, b"\x00\x04").describe()
    assert "unknown" in Notification(99, 1).describe()


def test_notification_too_short_is_a_length_error():
    # RFC 4271 section 6.1: minimum NOTIFICATION length is 21.
    with pytest.raises(MessageHeaderError) as e:
        decode_message(message(3, b"\x06", length=20))
    assert (e.value.code, e.value.subcode, e.value.data) == (1, 2, b"\x00\x14")


# ------------------------------------------------------------------ ROUTE-REFRESH


@pytest.mark.parametrize(
    "family,subtype,body",
    [
        (IPV4_UNICAST, SUBTYPE_REQUEST, "0001 00 01"),
        (IPV6_UNICAST, SUBTYPE_REQUEST, "0002 00 01"),
        (VPNV4, SUBTYPE_BORR, "0001 01 80"),  # RFC 7313 BoRR
        (Family(2, 128), SUBTYPE_EORR, "0002 02 80"),  # RFC 7313 EoRR
    ],
)
def test_route_refresh_encoding(family, subtype, body):
    rr = RouteRefresh(family, subtype)
    wire = MARKER + hx("0017 05") + hx(body)
    assert rr.encode() == wire
    assert decode_message(wire) == rr


@pytest.mark.parametrize("body", [b"", b"\x00\x01\x00", b"\x00\x01\x01\x01\x00"])
def test_route_refresh_bad_length_is_7_1_with_the_message_as_data(body):
    # RFC 7313 section 5: ROUTE-REFRESH Message Error / Invalid Message Length,
    # the data field carries the complete ROUTE-REFRESH message.
    wire = message(5, body)
    with pytest.raises(RouteRefreshError) as e:
        decode_message(wire)
    assert (e.value.code, e.value.subcode) == (7, 1)
    assert e.value.data == wire


# ------------------------------------------------------------------ header errors


def test_bad_marker_is_1_1():
    wire = b"\xfe" + KEEPALIVE_WIRE[1:]
    with pytest.raises(MessageHeaderError) as e:
        decode_message(wire)
    assert (e.value.code, e.value.subcode, e.value.data) == (1, 1, b"")


@pytest.mark.parametrize("msg_type", [0, 6, 255])
def test_bad_type_is_1_3_with_the_type_as_data(msg_type):
    with pytest.raises(MessageHeaderError) as e:
        decode_message(message(msg_type, b""))
    assert (e.value.code, e.value.subcode, e.value.data) == (1, 3, bytes((msg_type,)))


@pytest.mark.parametrize(
    "msg_type,length",
    [(1, 28), (2, 22), (3, 20), (4, 18), (4, 20), (5, 18), (2, 4097)],
)
def test_bad_length_is_1_2_with_the_length_as_data(msg_type, length):
    reader = MessageReader()
    reader.feed(message(msg_type, b"\x00" * max(0, length - 19), length=length))
    with pytest.raises(MessageHeaderError) as e:
        list(reader.messages())
    assert (e.value.code, e.value.subcode) == (1, 2)
    assert e.value.data == length.to_bytes(2, "big")


def test_extended_message_context_raises_the_limit():
    # RFC 8654: UPDATEs up to 65535 octets once extended messages are negotiated...
    big = update(nlri=b"\x20\x0a\x00\x00\x01" * 1000)
    assert len(big) > 4096
    with pytest.raises(MessageHeaderError):
        r = MessageReader()
        r.feed(big)
        list(r.messages())
    r = MessageReader(CodecContext(max_message=65535))
    r.feed(big)
    (u,) = list(r.messages())
    assert isinstance(u, Update) and len(u.nlri) == 1000


def test_open_may_not_exceed_4096_even_with_extended_messages():
    # RFC 8654 section 3: the OPEN is sent before the capability is known.
    r = MessageReader(CodecContext(max_message=65535))
    r.feed(message(1, b"\x00" * 5000))
    with pytest.raises(MessageHeaderError) as e:
        list(r.frames())
    assert e.value.subcode == 2


def test_decode_message_rejects_length_mismatch():
    with pytest.raises(MessageHeaderError) as e:
        decode_message(KEEPALIVE_WIRE + b"\x00")
    assert e.value.subcode == 2
    with pytest.raises(MessageHeaderError):
        decode_message(KEEPALIVE_WIRE[:10])


# ------------------------------------------------------------------ framing


def test_reader_reassembles_messages_fed_one_octet_at_a_time():
    stream = KEEPALIVE_WIRE + Notification(6, 2).encode() + RouteRefresh(IPV4_UNICAST).encode()
    r = MessageReader()
    got = []
    for b in stream:
        r.feed(bytes((b,)))
        got += list(r.messages())
    assert got == [KEEPALIVE, Notification(6, 2), RouteRefresh(IPV4_UNICAST)]
    assert r.buffered == 0


def test_reader_keeps_an_incomplete_tail():
    r = MessageReader()
    r.feed(KEEPALIVE_WIRE * 2 + KEEPALIVE_WIRE[:7])
    assert list(r.frames()) == [(4, b""), (4, b"")]
    assert r.buffered == 7
    r.feed(KEEPALIVE_WIRE[7:])
    assert list(r.frames()) == [(4, b"")]
    assert r.buffered == 0


def test_reader_follows_a_context_change_between_messages():
    # Regression: frames() computed the size limit once, so a context switched
    # to extended messages after the OPEN did not apply to the rest of the same
    # chunk (an extended UPDATE right behind the OPEN + KEEPALIVE failed 1/2).
    big = update(nlri=b"\x20\x0a\x00\x00\x01" * 1000)
    r = MessageReader()
    r.feed(KEEPALIVE_WIRE + big)
    frames = r.frames()
    assert next(frames) == (4, b"")
    r.ctx = CodecContext(max_message=65535)
    msg_type, body = next(frames)
    assert msg_type == 2 and len(body) == len(big) - 19


# ------------------------------------------------------------------ NOTIFICATION size (issue 10, finding 16)


def test_notification_data_is_cut_to_fit_4096_octets_without_a_context():
    # RFC 4271 section 4.1: no message exceeds the maximum. Without a negotiated
    # context only 4096 octets are sure to be accepted, so the data is cut there.
    n = Notification(3, 2, bytes(range(256)) * 300)
    wire = n.encode()
    assert len(wire) == 4096
    back = decode_message(wire)
    assert (back.code, back.subcode) == (3, 2)
    assert back.data == n.data[: 4096 - 21]


def test_notification_data_is_cut_to_fit_the_negotiated_maximum():
    n = Notification(7, 1, b"\xab" * 70000)
    wire = n.encode(CodecContext(max_message=65535))
    assert len(wire) == 65535
    assert decode_message(wire, CodecContext(max_message=65535)).data == n.data[: 65535 - 21]
    assert len(n.encode(CodecContext())) == 4096
    # data that fits is left alone
    assert Notification(3, 1, b"\x01\x02").encode(CodecContext(max_message=65535)) == MARKER + hx("0017 03 0301 0102")


def test_decode_message_enforces_the_context_maximum():
    # Regression: decode_message accepted 65535 octets whatever ctx.max_message said
    # (only MessageReader enforced it).
    big = update(nlri=b"\x20\x0a\x00\x00\x01" * 1000)
    with pytest.raises(MessageHeaderError) as e:
        decode_message(big)
    assert (e.value.code, e.value.subcode, e.value.data) == (1, 2, len(big).to_bytes(2, "big"))
    assert len(decode_message(big, CodecContext(max_message=65535)).nlri) == 1000


def _sent(actions):
    return b"".join(a.data for a in actions if isinstance(a, Send))


@pytest.mark.parametrize("length", [65515, 65516, 65534, 65535])
def test_huge_route_refresh_on_an_extended_session_gets_a_notification_that_fits(length):
    # Regression (issue 10, finding 16): the 7/1 NOTIFICATION carried the whole
    # ROUTE-REFRESH (RFC 7313 section 5) and struct.error escaped from data_received.
    s, _ = established_with(config(peer_as=65002),
                            peer_open(caps=(Multiprotocol(IPV4_UNICAST), FourOctetAs(65002), ExtendedMessageCap())))
    assert s.negotiated is not None and s.negotiated.codec.max_message == 65535
    rr = message(5, b"\x00\x01\x00\x01" + bytes(length - 23))
    actions = s.data_received(rr)
    assert s.state is State.IDLE
    (sent,) = [a.notification for a in actions if isinstance(a, NotificationSent)]
    assert (sent.code, sent.subcode) == (7, 1)
    wire = _sent(actions)
    r = MessageReader(CodecContext(max_message=65535))
    r.feed(wire)
    (n,) = list(r.messages())
    assert len(wire) <= 65535 and (n.code, n.subcode) == (7, 1)
    assert rr.startswith(n.data)  # the start of the offending message, as much as fits


def test_bad_4096_octet_message_gets_a_notification_of_at_most_4096_octets():
    # Regression (finding 16): without extended messages, a bad 4096-octet UPDATE
    # (its one attribute is an unrecognised well-known one: 3/2 carries the attribute)
    # produced a 4117-octet NOTIFICATION, which the peer must reject as 1/2.
    s, _ = established_with(config(peer_as=65002, extended_message=False), peer_open())
    value = bytes(4096 - 19 - 4 - 4)
    bad = update(attrs=b"\x50\x63" + len(value).to_bytes(2, "big") + value)  # well-known, type 99, ext length
    assert len(bad) == 4096
    actions = s.data_received(bad)
    assert s.state is State.IDLE
    (sent,) = [a.notification for a in actions if isinstance(a, NotificationSent)]
    assert (sent.code, sent.subcode) == (3, 2)
    wire = _sent(actions)
    assert len(wire) <= 4096
    r = MessageReader()  # the peer's view: no extended messages
    r.feed(wire)
    (n,) = list(r.messages())
    assert (n.code, n.subcode) == (3, 2) and bad[23:].startswith(n.data)
