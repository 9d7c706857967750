"""RFC 7606 revised UPDATE error handling: one test per rule, asserting the outcome.

Outcomes: "treat-as-withdraw" (``Update.treat_as_withdraw``), "attribute discard"
(the attribute is gone, the route stays) and "session reset" (an
:class:`UpdateMessageError` carrying the NOTIFICATION code, subcode and data).
"""
from __future__ import annotations

import struct

import pytest

from bgpbytes import (
    AS_PATH_65001,
    OPT_NONTRANS,
    OPT_TRANS,
    ORIGIN_IGP,
    PARTIAL,
    WELL_KNOWN,
    as_path_value,
    attr,
    hx,
    ip,
    mp_reach,
    mp_unreach,
    next_hop,
    prefix,
    update,
    update_body,
)
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    Aggregator,
    AsPath,
    AtomicAggregate,
    CodecContext,
    Communities,
    Med,
    MpNextHop,
    MpReachNlri,
    NextHop,
    Origin,
    Prefix,
    Update,
    decode_message,
)
from l3fab.speaker.wire.errors import UpdateMessageError
from l3fab.speaker.wire.update import ATTRIBUTE_DISCARD, TREAT_AS_WITHDRAW, decode_update

NH = next_hop("10.0.0.1")
NLRI = prefix("192.0.2.0/24")
P = Prefix.parse("192.0.2.0/24")
TWO = CodecContext(four_octet_as=False)


def announce(*attrs: bytes, nlri: bytes = NLRI, ctx: CodecContext = CodecContext()) -> Update:
    u = decode_message(update(attrs=b"".join(attrs), nlri=nlri), ctx)
    assert isinstance(u, Update)
    return u


def assert_taw(u: Update, attr_type: int | None, subcode: int) -> None:
    assert u.treat_as_withdraw
    assert u.reachable() == []
    assert (IPV4_UNICAST, (P,)) in u.unreachable()
    taw = [f for f in u.faults if f.action == TREAT_AS_WITHDRAW]
    assert taw, u.faults
    assert (taw[0].attr_type, taw[0].subcode) == (attr_type, subcode)


def assert_discarded(u: Update, attr_type: int) -> None:
    assert not u.treat_as_withdraw
    assert u.get(attr_type) is None
    assert [f.attr_type for f in u.faults if f.action == ATTRIBUTE_DISCARD] == [attr_type]
    assert u.reachable() == [(IPV4_UNICAST, MpNextHop("10.0.0.1"), (P,))]


def assert_reset(wire_or_body, code: int, subcode: int, data: bytes | None = b"",
                 ctx=CodecContext()) -> UpdateMessageError:
    with pytest.raises(UpdateMessageError) as e:
        if wire_or_body[:16] == b"\xff" * 16:
            decode_message(wire_or_body, ctx)
        else:
            decode_update(wire_or_body, ctx)
    assert (e.value.code, e.value.subcode) == (code, subcode)
    if data is not None:
        assert e.value.data == data
    return e.value


def test_valid_update_has_no_faults():
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH)
    assert not u.faults and not u.treat_as_withdraw
    assert u.reachable() == [(IPV4_UNICAST, MpNextHop("10.0.0.1"), (P,))]


# ------------------------------------------------------------------ section 7.1 ORIGIN


@pytest.mark.parametrize("value", [b"", b"\x00\x00"])
def test_origin_bad_length_is_treat_as_withdraw(value):
    assert_taw(announce(attr(WELL_KNOWN, 1, value), AS_PATH_65001, NH), 1, 5)


def test_origin_undefined_value_is_treat_as_withdraw():
    assert_taw(announce(attr(WELL_KNOWN, 1, b"\x03"), AS_PATH_65001, NH), 1, 6)


# ------------------------------------------------------------------ section 7.2 AS_PATH


@pytest.mark.parametrize(
    "value,why",
    [
        (hx("05 01 0000fde9"), "unknown segment type"),
        (hx("00 01 0000fde9"), "segment type 0"),
        (hx("02 00"), "zero-length segment"),
        (hx("02 02 0000fde9"), "segment overruns the attribute"),
        (hx("02 01 0000fde9 02"), "one trailing octet"),
        (hx("02 01 0000fde9 00"), "trailing octet that looks like a type"),
    ],
)
def test_malformed_as_path_is_treat_as_withdraw(value, why):
    assert_taw(announce(ORIGIN_IGP, attr(WELL_KNOWN, 2, value), NH), 2, 11)


def test_as_path_parsed_with_the_wrong_width_is_malformed():
    # A 4-octet AS_PATH read on a 2-octet session: 02 01 0000 then "fde9" trailing.
    assert_taw(announce(ORIGIN_IGP, AS_PATH_65001, NH, ctx=TWO), 2, 11)


# ------------------------------------------------------------------ section 7.3 NEXT_HOP


@pytest.mark.parametrize("value", [b"", hx("0a0000"), hx("0a000001 00"), ip("2001:db8::1")])
def test_next_hop_bad_length_is_treat_as_withdraw(value):
    assert_taw(announce(ORIGIN_IGP, AS_PATH_65001, attr(WELL_KNOWN, 3, value)), 3, 5)


@pytest.mark.parametrize("addr", ["0.0.0.0", "255.255.255.255", "224.0.0.5"])
def test_next_hop_not_unicast_is_treat_as_withdraw(addr):
    assert_taw(announce(ORIGIN_IGP, AS_PATH_65001, next_hop(addr)), 3, 8)


def test_bad_next_hop_is_ignored_when_only_mp_reach_announces():
    # Regression: RFC 4760 section 3 says a NEXT_HOP in an UPDATE whose only NLRI is
    # in MP_REACH_NLRI SHOULD be ignored; a junk one used to withdraw the IPv6 routes.
    p6 = Prefix.parse("2001:db8::/32")
    u = announce(mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32")), ORIGIN_IGP, AS_PATH_65001,
                 next_hop("0.0.0.0"), nlri=b"")
    assert not u.treat_as_withdraw
    assert u.reachable() == [(IPV6_UNICAST, MpNextHop("2001:db8::1"), (p6,))]
    assert u.get(NextHop) is None
    assert [f.action for f in u.faults] == [ATTRIBUTE_DISCARD]


# ------------------------------------------------------------------ sections 7.4 / 7.5 MED, LOCAL_PREF


@pytest.mark.parametrize("code,flags", [(4, OPT_NONTRANS), (5, WELL_KNOWN)])
@pytest.mark.parametrize("value", [b"", b"\x00\x00\x00", b"\x00" * 5])
def test_med_and_local_pref_bad_length_are_treat_as_withdraw(code, flags, value):
    assert_taw(announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(flags, code, value)), code, 5)


# ------------------------------------------------------------------ sections 7.6 / 7.7 discard


def test_atomic_aggregate_with_a_value_is_discarded():
    assert_discarded(announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(WELL_KNOWN, 6, b"\x01")), 6)


@pytest.mark.parametrize("value", [hx("0000fde9 0a0000"), hx("fde9 0a000009"), b""])
def test_aggregator_bad_length_is_discarded(value):
    assert_discarded(announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(OPT_TRANS, 7, value)), 7)


def test_aggregator_two_octet_length_on_two_octet_session_is_fine():
    u = announce(ORIGIN_IGP, attr(WELL_KNOWN, 2, hx("02 01 fde9")), NH, attr(OPT_TRANS, 7, hx("fde9 0a000009")),
                 ctx=TWO)
    assert u.get(Aggregator) == Aggregator(65001, "10.0.0.9") and not u.faults


def test_aggregator_four_octet_length_on_two_octet_session_is_discarded():
    u = announce(ORIGIN_IGP, attr(WELL_KNOWN, 2, hx("02 01 fde9")), NH, attr(OPT_TRANS, 7, hx("0000fde9 0a000009")),
                 ctx=TWO)
    assert_discarded(u, 7)


# ------------------------------------------------------------------ length multiples (7.8, 7.10, 7.14, RFC 8092)


@pytest.mark.parametrize(
    "code,value",
    [
        (8, hx("fde800")),  # COMMUNITIES, 3 octets
        (8, b""),
        (10, hx("0a000001 0a")),  # CLUSTER_LIST
        (10, b""),
        (16, hx("0002fde8 000000")),  # EXTENDED COMMUNITIES, 7 octets
        (16, b""),
        (32, bytes(13)),  # LARGE_COMMUNITY
        (32, b""),
    ],
)
def test_list_attributes_not_a_nonzero_multiple_are_treat_as_withdraw(code, value):
    flags = OPT_NONTRANS if code == 10 else OPT_TRANS
    assert_taw(announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(flags, code, value)), code, 5)


@pytest.mark.parametrize("value", [hx("0a0000"), hx("0a00000101")])
def test_originator_id_bad_length_is_treat_as_withdraw(value):
    assert_taw(announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(OPT_NONTRANS, 9, value)), 9, 5)


# ------------------------------------------------------------------ section 3 (c) flags


@pytest.mark.parametrize(
    "raw,code",
    [
        (attr(OPT_TRANS, 1, b"\x00"), 1),  # ORIGIN marked optional
        (attr(0x00, 2, b""), 2),  # AS_PATH marked non-transitive
        (attr(WELL_KNOWN | PARTIAL, 3, ip("10.0.0.1")), 3),  # Partial on a well-known attribute
        (attr(OPT_TRANS, 4, bytes(4)), 4),  # MED marked transitive
        (attr(OPT_NONTRANS, 8, bytes(4)), 8),  # COMMUNITIES marked non-transitive
    ],
)
def test_flag_conflict_on_a_treat_as_withdraw_attribute(raw, code):
    attrs = {1: ORIGIN_IGP, 2: AS_PATH_65001, 3: NH}
    attrs[code] = raw
    u = announce(*attrs.values())
    assert_taw(u, code, 4)


@pytest.mark.parametrize("raw,code", [(attr(OPT_TRANS, 6, b""), 6), (attr(WELL_KNOWN, 7, hx("0000fde9 0a000009")), 7)])
def test_flag_conflict_on_a_discard_attribute(raw, code):
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, raw)
    assert_discarded(u, code)
    assert u.faults[0].subcode == 4


def test_flag_conflict_on_mp_reach_is_a_session_reset():
    bad = mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32"), flags=OPT_TRANS)
    assert_reset(update(attrs=bad + ORIGIN_IGP + AS_PATH_65001), 3, 4, bad)


def test_partial_bit_on_an_optional_attribute_is_accepted():
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(OPT_TRANS | PARTIAL, 8, hx("fde80001")))
    assert u.get(Communities) == Communities((0xFDE80001,)) and not u.faults


# ------------------------------------------------------------------ section 3 (g) duplicates


def test_duplicate_attribute_later_ones_discarded():
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(OPT_NONTRANS, 4, hx("00000001")),
                 attr(OPT_NONTRANS, 4, hx("00000002")))
    assert u.get(Med) == Med(1)
    assert not u.treat_as_withdraw
    assert [(f.action, f.attr_type) for f in u.faults] == [(ATTRIBUTE_DISCARD, 4)]


def test_duplicate_of_a_discarded_attribute_is_discarded_too():
    # Regression: when the first AGGREGATOR was malformed (and discarded), the second
    # copy used to be accepted in its place; RFC 7606 3(g) keeps only the first.
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(OPT_TRANS, 7, hx("00")),
                 attr(OPT_TRANS, 7, hx("0000fde9 0a000009")))
    assert u.get(Aggregator) is None
    assert [f.action for f in u.faults] == [ATTRIBUTE_DISCARD, ATTRIBUTE_DISCARD]


def test_duplicate_of_a_malformed_origin_does_not_rescue_the_route():
    u = announce(attr(WELL_KNOWN, 1, b"\x07"), AS_PATH_65001, NH, ORIGIN_IGP)
    assert u.treat_as_withdraw
    assert u.get(Origin) is None


def test_duplicate_unknown_attribute_keeps_the_first():
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(OPT_TRANS, 99, b"a"), attr(OPT_TRANS, 99, b"b"))
    assert u.get(99).raw == b"a"


@pytest.mark.parametrize("code", [14, 15])
def test_duplicate_mp_attribute_is_3_1(code):
    one = (mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32")) if code == 14
           else mp_unreach(2, 1, prefix("2001:db8::/32")))
    assert_reset(update(attrs=one + ORIGIN_IGP + AS_PATH_65001 + one), 3, 1)


# ------------------------------------------------------------------ section 7.11 MP_REACH / MP_UNREACH


@pytest.mark.parametrize("nh", [bytes(15), bytes(4), bytes(17), bytes(33)])
def test_bad_mp_next_hop_length_is_3_9_with_the_attribute(nh):
    bad = mp_reach(2, 1, nh, prefix("2001:db8::/32"))
    assert_reset(update(attrs=bad + ORIGIN_IGP + AS_PATH_65001), 3, 9, bad)


@pytest.mark.parametrize("nh_len", [4, 16, 11, 13, 25, 47])
def test_bad_vpnv4_next_hop_length_is_3_9(nh_len):
    # 4 and 16: plain (RD-less) next hops are not valid for VPN families.
    bad = mp_reach(1, 128, bytes(nh_len), b"")
    assert_reset(update(attrs=bad), 3, 9, bad)


def test_ipv6_next_hop_of_4_octets_is_3_9():
    bad = mp_reach(2, 1, ip("10.0.0.1"), prefix("2001:db8::/32"))
    assert_reset(update(attrs=bad + ORIGIN_IGP + AS_PATH_65001), 3, 9, bad)


@pytest.mark.parametrize("value", [hx("0002 01"), hx("0002 01 10"), hx("0002 01 20") + bytes(16)])
def test_truncated_mp_reach_is_3_9(value):
    bad = attr(OPT_NONTRANS, 14, value)
    assert_reset(update(attrs=bad), 3, 9, bad)


def test_truncated_mp_unreach_is_3_9():
    bad = attr(OPT_NONTRANS, 15, hx("0002"))
    assert_reset(update(attrs=bad), 3, 9, bad)


def test_bad_prefix_length_inside_mp_reach_is_3_10_with_the_attribute():
    bad = mp_reach(2, 1, ip("2001:db8::1"), hx("81") + bytes(17))
    assert_reset(update(attrs=bad + ORIGIN_IGP + AS_PATH_65001), 3, 10, bad)


def test_bad_prefix_inside_mp_unreach_is_3_10():
    bad = mp_unreach(1, 128, hx("70 800000"))
    assert_reset(update(attrs=bad), 3, 10, bad)


# ------------------------------------------------------------------ NLRI and withdrawn fields (5.3)


def test_nlri_prefix_length_too_long_is_3_10():
    assert_reset(update(attrs=ORIGIN_IGP + AS_PATH_65001 + NH, nlri=hx("21 0a000001 00")), 3, 10)


def test_nlri_prefix_overrunning_the_message_is_3_10():
    assert_reset(update(attrs=ORIGIN_IGP + AS_PATH_65001 + NH, nlri=hx("18 0a00")), 3, 10)


def test_withdrawn_prefix_length_too_long_is_3_10():
    assert_reset(update(withdrawn=hx("29 0a000001 00")), 3, 10)


def test_withdrawn_length_overrunning_the_message_is_3_1():
    body = struct.pack("!H", 10) + hx("18c00002") + hx("0000")
    assert_reset(body, 3, 1)


def test_total_attribute_length_overrunning_the_message_is_3_1():
    body = hx("0000") + struct.pack("!H", 50) + ORIGIN_IGP
    assert_reset(body, 3, 1)


def test_update_body_shorter_than_4_octets_is_3_1():
    assert_reset(hx("000000"), 3, 1)


# ------------------------------------------------------------------ section 4: attribute lengths vs. total


def test_attribute_overrunning_the_attributes_with_nlri_is_treat_as_withdraw():
    # The last attribute claims 9 octets where 4 remain; the total length still
    # locates the NLRI, so treat-as-withdraw.
    attrs = ORIGIN_IGP + AS_PATH_65001 + NH + hx("80 04 09 00000000")
    u = announce(attrs)
    assert_taw(u, 4, 5)


def test_too_few_trailing_octets_for_an_attribute_header_is_treat_as_withdraw():
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, hx("80 04"))
    assert_taw(u, None, 5)


def test_truncated_extended_length_header_is_treat_as_withdraw():
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, hx("90 04 00"))
    assert_taw(u, 4, 5)


def test_attribute_overrun_without_locatable_nlri_is_a_session_reset():
    # No NLRI field and no MP attribute seen before the fault: an MP_REACH hiding
    # behind it cannot be found, so treat-as-withdraw is impossible.
    assert_reset(update(attrs=ORIGIN_IGP + hx("40 02 09 02 01 0000")), 3, 1)


def test_attribute_overrun_after_mp_reach_is_treat_as_withdraw():
    p6 = Prefix.parse("2001:db8::/32")
    mp = mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32"))
    u = decode_message(update(attrs=mp + ORIGIN_IGP + hx("40 02 09 02 01 0000")))
    assert u.treat_as_withdraw
    assert u.unreachable() == [(IPV6_UNICAST, (p6,))]


def test_mp_reach_overrunning_the_attributes_is_a_session_reset():
    mp = mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32"))
    short = mp[:-2]
    e = assert_reset(update(attrs=ORIGIN_IGP + short, nlri=NLRI), 3, 5, None)
    assert e.data == short


# ------------------------------------------------------------------ section 3 (d) missing well-known


@pytest.mark.parametrize(
    "attrs,missing",
    [
        ((AS_PATH_65001, NH), 1),
        ((ORIGIN_IGP, NH), 2),
        ((ORIGIN_IGP, AS_PATH_65001), 3),
        ((), 1),
    ],
)
def test_missing_well_known_attribute_is_treat_as_withdraw(attrs, missing):
    assert_taw(announce(*attrs), missing, 3)


def test_next_hop_not_required_for_mp_reach_only():
    u = announce(mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32")), ORIGIN_IGP, AS_PATH_65001, nlri=b"")
    assert not u.treat_as_withdraw and not u.faults


def test_missing_attributes_are_fine_without_nlri():
    u = decode_message(update(withdrawn=NLRI))
    assert not u.faults and u.unreachable() == [(IPV4_UNICAST, (P,))]


def test_mp_reach_without_origin_is_treat_as_withdraw():
    u = decode_message(update(attrs=mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32")) + AS_PATH_65001))
    assert u.treat_as_withdraw and u.faults[0].subcode == 3


# ------------------------------------------------------------------ unrecognized well-known (RFC 4271 6.3)


def test_unrecognized_well_known_attribute_is_3_2_with_the_attribute():
    bad = attr(WELL_KNOWN, 99, b"\x01\x02")
    assert_reset(update(attrs=ORIGIN_IGP + AS_PATH_65001 + NH + bad, nlri=NLRI), 3, 2, bad)


# ------------------------------------------------------------------ severity


def test_discard_and_treat_as_withdraw_together():
    u = announce(ORIGIN_IGP, AS_PATH_65001, NH, attr(WELL_KNOWN, 6, b"\x01"), attr(OPT_TRANS, 8, b"\x01"))
    assert u.treat_as_withdraw
    assert {f.action for f in u.faults} == {ATTRIBUTE_DISCARD, TREAT_AS_WITHDRAW}
    assert u.get(AtomicAggregate) is None


def test_treat_as_withdraw_keeps_withdrawals():
    w = Prefix.parse("10.9.0.0/16")
    u = decode_message(update(withdrawn=prefix("10.9.0.0/16"), attrs=attr(WELL_KNOWN, 1, b"\x09") + AS_PATH_65001 + NH,
                              nlri=NLRI))
    assert u.unreachable() == [(IPV4_UNICAST, (w,)), (IPV4_UNICAST, (P,))]


def test_fault_str_names_the_attribute():
    u = announce(attr(WELL_KNOWN, 1, b"\x03"), AS_PATH_65001, NH)
    assert str(u.faults[0]).startswith("treat-as-withdraw: attribute 1: ORIGIN value 3")


def test_decode_update_body_without_header_is_the_same_code_path():
    body = update_body(attrs=ORIGIN_IGP + attr(WELL_KNOWN, 2, as_path_value((2, (1,)))) + NH, nlri=NLRI)
    u = decode_update(body)
    assert u.get(AsPath) == AsPath.sequence(1)
    assert u.reachable() == [(IPV4_UNICAST, MpNextHop("10.0.0.1"), (P,))]
    assert u.get(MpReachNlri) is None
