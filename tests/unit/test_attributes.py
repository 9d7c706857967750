"""UPDATE encodings, byte for byte, and path attribute decoding (RFC 4271 4.3 and 5,
RFC 1997, 4360, 4456, 4760, 4364, 4659, 6793, 8092, 8950, 4724 End-of-RIB)."""
from __future__ import annotations

import pytest

from bgpbytes import (
    AS_PATH_65001,
    EXT_LEN,
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
    rd0,
    rd1,
    rd2,
    update,
    vpn_prefix,
)
from l3fab.speaker.table.adj_rib_in import AttributeInterner, update_paths
from l3fab.speaker.table.nexthop import NexthopTracker
from l3fab.speaker.table.path import Source
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    VPNV4,
    VPNV6,
    Aggregator,
    AsPath,
    AsSegment,
    AtomicAggregate,
    ClusterList,
    CodecContext,
    Communities,
    ExtCommunity,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    LocalPref,
    Med,
    MpNextHop,
    MpReachNlri,
    MpUnreachNlri,
    NextHop,
    Origin,
    OriginatorId,
    Prefix,
    RouteDistinguisher,
    UnknownAttribute,
    Update,
    VpnPrefix,
    decode_message,
    end_of_rib,
    pack_announcements,
    pack_withdrawals,
    route_target,
)
from l3fab.speaker.wire.attributes import (
    AS_CONFED_SEQUENCE,
    AS_SEQUENCE,
    AS_SET,
    As4Aggregator,
    As4Path,
    community_str,
    parse_community,
)
from l3fab.speaker.wire.constants import Family
from l3fab.speaker.wire.errors import LocalProtocolError
from l3fab.speaker.wire.update import ATTRIBUTE_DISCARD, decode_update

TWO = CodecContext(four_octet_as=False)
BASE = (Origin(0), AsPath.sequence(65001))


def _decode(wire: bytes, ctx: CodecContext = CodecContext()) -> Update:
    u = decode_message(wire, ctx)
    assert isinstance(u, Update)
    return u


def _both_ways(u: Update, wire: bytes, ctx: CodecContext = CodecContext()) -> None:
    assert u.encode(ctx) == wire
    back = _decode(wire, ctx)
    assert back == u
    assert not back.faults and not back.treat_as_withdraw


# ------------------------------------------------------------------ IPv4 unicast


def test_ipv4_unicast_update_byte_exact():
    u = Update(
        attributes=(Origin(0), AsPath.sequence(65001), NextHop("10.0.0.1"), Med(100), LocalPref(200)),
        nlri=(Prefix.parse("192.0.2.0/24"), Prefix.parse("10.0.0.0/8")),
    )
    wire = hx(
        "ffffffffffffffffffffffffffffffff 003f 02"
        "0000"  # no withdrawn routes
        "0022"  # 34 octets of attributes
        "40 01 01 00"  # ORIGIN IGP
        "40 02 06 02 01 0000fde9"  # AS_PATH: AS_SEQUENCE of one 4-octet ASN
        "40 03 04 0a000001"  # NEXT_HOP
        "80 04 04 00000064"  # MED 100
        "40 05 04 000000c8"  # LOCAL_PREF 200
        "18 c00002 08 0a"  # NLRI
    )
    _both_ways(u, wire)


def test_ipv4_withdrawal_byte_exact():
    u = Update(withdrawn=(Prefix.parse("192.0.2.0/24"),))
    _both_ways(u, hx("ffffffffffffffffffffffffffffffff 001b 02 0004 18c00002 0000"))
    assert pack_withdrawals(IPV4_UNICAST, [Prefix.parse("192.0.2.0/24")]) == [u.encode()]


def test_ipv4_unicast_two_octet_session_byte_exact():
    u = Update(attributes=(Origin(2), AsPath.sequence(65001, 65002), NextHop("10.0.0.1")),
               nlri=(Prefix.parse("192.0.2.1/32"),))
    wire = update(
        attrs=attr(WELL_KNOWN, 1, b"\x02") + attr(WELL_KNOWN, 2, hx("02 02 fde9 fdea")) + next_hop("10.0.0.1"),
        nlri=prefix("192.0.2.1/32"),
    )
    _both_ways(u, wire, TWO)


def test_pack_announcements_ipv4_uses_the_nlri_field():
    nlri = [Prefix.parse("192.0.2.0/24")]
    (wire,) = pack_announcements(IPV4_UNICAST, BASE, MpNextHop("10.0.0.1"), nlri)
    assert wire == update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1"), nlri=prefix("192.0.2.0/24"))


# ------------------------------------------------------------------ multiprotocol families

V6 = "2001:db8::1"
LL = "fe80::1"


def test_ipv6_unicast_16_octet_next_hop():
    p = Prefix.parse("2001:db8:1::/48")
    u = Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop(V6), (p,)),) + BASE)
    wire = update(attrs=mp_reach(2, 1, ip(V6), prefix("2001:db8:1::/48")) + ORIGIN_IGP + AS_PATH_65001)
    assert wire[23:27] == hx("80 0e 1c 00")  # flags, type, length, AFI high octet
    _both_ways(u, wire)
    assert pack_announcements(IPV6_UNICAST, BASE, MpNextHop(V6), [p]) == [wire]
    assert u.reachable() == [(IPV6_UNICAST, MpNextHop(V6), (p,))]


def test_ipv6_unicast_32_octet_next_hop_with_link_local():
    p = Prefix.parse("2001:db8:2::/64")
    u = Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop(V6, LL), (p,)),) + BASE)
    wire = update(attrs=mp_reach(2, 1, ip(V6) + ip(LL), prefix("2001:db8:2::/64")) + ORIGIN_IGP + AS_PATH_65001)
    _both_ways(u, wire)
    assert str(u.get(MpReachNlri).next_hop) == "2001:db8::1 (fe80::1)"


def test_ipv4_unicast_with_ipv6_next_hop_rfc8950():
    p = Prefix.parse("10.0.0.1/32")
    u = Update(attributes=(MpReachNlri(IPV4_UNICAST, MpNextHop(V6, LL), (p,)),) + BASE)
    wire = update(attrs=mp_reach(1, 1, ip(V6) + ip(LL), prefix("10.0.0.1/32")) + ORIGIN_IGP + AS_PATH_65001)
    _both_ways(u, wire)
    assert pack_announcements(IPV4_UNICAST, BASE, MpNextHop(V6, LL), [p]) == [wire]
    assert u.reachable() == [(IPV4_UNICAST, MpNextHop(V6, LL), (p,))]


def test_ipv4_unicast_mp_reach_with_ipv4_next_hop():
    p = Prefix.parse("10.0.0.0/24")
    wire = update(attrs=mp_reach(1, 1, ip("10.9.9.9"), prefix("10.0.0.0/24")) + ORIGIN_IGP + AS_PATH_65001)
    u = _decode(wire)
    assert u.get(MpReachNlri) == MpReachNlri(IPV4_UNICAST, MpNextHop("10.9.9.9"), (p,))


@pytest.mark.parametrize(
    "family,nh,nh_wire",
    [
        (VPNV4, MpNextHop("10.0.0.1"), bytes(8) + ip("10.0.0.1")),  # 12 octets
        (VPNV4, MpNextHop(V6), bytes(8) + ip(V6)),  # 24 octets, RFC 8950
        (VPNV6, MpNextHop(V6), bytes(8) + ip(V6)),  # 24 octets, RFC 4659
        (VPNV6, MpNextHop(V6, LL), bytes(8) + ip(V6) + bytes(8) + ip(LL)),  # 48 octets
        (VPNV4, MpNextHop(V6, LL), bytes(8) + ip(V6) + bytes(8) + ip(LL)),  # 48 octets
    ],
)
@pytest.mark.parametrize(
    "rd,rd_wire",
    [
        (RouteDistinguisher(0, 65000, 100), rd0(65000, 100)),
        (RouteDistinguisher(1, "192.0.2.9", 7), rd1("192.0.2.9", 7)),
        (RouteDistinguisher(2, 4200000001, 300), rd2(4200000001, 300)),
    ],
)
def test_vpn_updates(family, nh, nh_wire, rd, rd_wire):
    text = "10.1.0.0/16" if family.afi == 1 else "2001:db8:5::/48"
    v = VpnPrefix(rd, Prefix.parse(text), (24001,))
    rt = ExtendedCommunities((route_target("65000:100"),))
    u = Update(attributes=(MpReachNlri(family, nh, (v,)),) + BASE + (rt,))
    wire = update(
        attrs=mp_reach(family.afi, 128, nh_wire, vpn_prefix(rd_wire, text, (24001,)))
        + ORIGIN_IGP + AS_PATH_65001 + attr(OPT_TRANS, 16, hx("0002 fde8 00000064"))
    )
    _both_ways(u, wire)
    assert pack_announcements(family, BASE + (rt,), nh, [v]) == [wire]
    withdrawal = pack_withdrawals(family, [v])
    assert withdrawal == [update(attrs=mp_unreach(family.afi, 128, vpn_prefix(rd_wire, text, withdraw_label=True)))]
    assert _decode(withdrawal[0]).unreachable() == [(family, (v._replace(labels=()),))]


def test_vpn_48_octet_next_hop_with_nonzero_rds_decodes():
    # FRR sends RD + global + RD + link-local; the RDs of a next hop are ignored.
    nh = rd0(1, 1) + ip(V6) + rd0(1, 1) + ip(LL)
    v = VpnPrefix(RouteDistinguisher(0, 1, 1), Prefix.parse("2001:db8::/32"), (5,))
    u = _decode(update(attrs=mp_reach(2, 128, nh,
                                      vpn_prefix(rd0(1, 1), "2001:db8::/32", (5,))) + ORIGIN_IGP + AS_PATH_65001))
    assert u.get(MpReachNlri) == MpReachNlri(VPNV6, MpNextHop(V6, LL), (v,))


@pytest.mark.parametrize(
    "afi,safi,nh_wire,nlri_wire,key",
    [
        (2, 1, ip("::") + ip(LL), prefix("2001:db8:7::/48"), Prefix.parse("2001:db8:7::/48")),  # BIRD 2
        (1, 1, ip("::") + ip(LL), prefix("10.7.0.0/16"), Prefix.parse("10.7.0.0/16")),  # RFC 8950
        (2, 128, bytes(8) + ip("::") + bytes(8) + ip(LL), vpn_prefix(rd0(1, 1), "2001:db8:7::/48", (5,)),
         VpnPrefix(RouteDistinguisher(0, 1, 1), Prefix.parse("2001:db8:7::/48"), ())),
    ],
    ids=["ipv6", "ipv4-rfc8950", "vpnv6"],
)
def test_unspecified_global_next_hop_with_a_link_local_is_the_link_local(afi, safi, nh_wire, nlri_wire, key):
    # Regression (issue 10, finding 15): on a link with only link-local addresses BIRD 2
    # sends the next hop as :: + link-local; l3fab took :: for the next hop, which
    # nothing resolves, and every such path was invalid.
    u = _decode(update(attrs=mp_reach(afi, safi, nh_wire, nlri_wire) + ORIGIN_IGP + AS_PATH_65001))
    assert not u.faults
    ((family, nh, nlri),) = u.reachable()
    assert nh == MpNextHop(LL) and nh.link_local is None
    # ... and the table takes such a path as valid (a link-local next hop needs no route)
    source = Source("bird", "fe80::2", 65001)
    ((_, (path,)),), _ = update_paths(u, source, AttributeInterner())
    assert path.key == key and path.next_hop == MpNextHop(LL)
    assert NexthopTracker().valid(path)


def test_mp_next_hop_built_as_unspecified_plus_link_local_is_the_link_local():
    assert MpNextHop("::", LL) == MpNextHop(LL) and MpNextHop("::", LL).link_local is None
    assert MpNextHop(V6, LL) == (V6, LL) and MpNextHop("::") == ("::", None)


def test_unspecified_global_next_hop_alone_is_left_as_sent():
    # Only the pair (::, link-local) is rewritten: a lone :: stays (nothing resolves it).
    u = _decode(update(attrs=mp_reach(2, 1, ip("::"), prefix("2001:db8:7::/48")) + ORIGIN_IGP + AS_PATH_65001))
    assert u.reachable()[0][1] == MpNextHop("::")
    u = _decode(update(attrs=mp_reach(2, 1, ip(V6) + ip(LL), prefix("2001:db8:7::/48")) + ORIGIN_IGP + AS_PATH_65001))
    assert u.reachable()[0][1] == MpNextHop(V6, LL)


def test_ipv6_withdrawal_via_mp_unreach():
    p = Prefix.parse("2001:db8::/32")
    (wire,) = pack_withdrawals(IPV6_UNICAST, [p])
    assert wire == update(attrs=mp_unreach(2, 1, prefix("2001:db8::/32")))
    assert _decode(wire).unreachable() == [(IPV6_UNICAST, (p,))]


def test_mp_next_hop_errors_on_encode():
    with pytest.raises(LocalProtocolError):
        Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop("10.0.0.1", LL), ()),)).encode()


# ------------------------------------------------------------------ End-of-RIB (RFC 4724 section 2)


@pytest.mark.parametrize(
    "family,wire",
    [
        (IPV4_UNICAST, "0017 02 0000 0000"),
        (IPV6_UNICAST, "001d 02 0000 0006 800f03 0002 01"),
        (VPNV4, "001d 02 0000 0006 800f03 0001 80"),
        (VPNV6, "001d 02 0000 0006 800f03 0002 80"),
    ],
)
def test_end_of_rib_markers(family, wire):
    full = b"\xff" * 16 + hx(wire)
    assert end_of_rib(family).encode() == full
    assert _decode(full).end_of_rib() == family


def test_withdrawal_is_not_end_of_rib():
    assert _decode(pack_withdrawals(IPV6_UNICAST, [Prefix.parse("2001:db8::/32")])[0]).end_of_rib() is None
    u = Update(attributes=(MpUnreachNlri(IPV6_UNICAST, ()), Origin(0)))
    assert u.end_of_rib() is None


# ------------------------------------------------------------------ communities


def test_communities_byte_exact_and_names():
    c = Communities((parse_community("65000:1"), parse_community("no-export"), 0xFFFF029A))
    assert c.pack(CodecContext()) == attr(OPT_TRANS, 8, hx("fde80001 ffffff01 ffff029a"))
    assert str(c) == "65000:1 no-export blackhole"
    assert community_str(0x00010002) == "1:2"
    with pytest.raises(ValueError):
        parse_community("65536:1")


@pytest.mark.parametrize(
    "ec,wire,text",
    [
        (route_target("65000:100"), "0002 fde8 00000064", "target:65000:100"),
        (route_target("192.0.2.1:7"), "0102 c0000201 0007", "target:192.0.2.1:7"),
        (route_target("4200000001:100"), "0202 fa56ea01 0064", "target:4200000001:100"),
        (ExtCommunity.parse("origin:65000:5"), "0003 fde8 00000005", "origin:65000:5"),
        (ExtCommunity.parse("soo:10.0.0.1:5"), "0103 0a000001 0005", "origin:10.0.0.1:5"),
        (ExtCommunity.parse("rt:70000:5"), "0202 00011170 0005", "target:70000:5"),
        (ExtCommunity(0x80, 0x06, bytes(6)), "8006 000000000000", "0x8006:000000000000"),
    ],
)
def test_extended_communities(ec, wire, text):
    assert ec.pack() == hx(wire)
    assert ExtCommunity.unpack(hx(wire)) == ec
    assert str(ec) == text
    assert ec.is_route_target == text.startswith("target")
    assert ec.is_route_origin == text.startswith("origin")


@pytest.mark.parametrize("text", ["target:65000", "foo:1:2", "target:1.2.3:4", "target:x:1", "target:1.2.3.4:70000",
                                  "target:70000:70000"])
def test_extended_community_parse_errors(text):
    with pytest.raises(ValueError):
        ExtCommunity.parse(text)


def test_route_targets_filter():
    ecs = ExtendedCommunities((route_target("1:1"), ExtCommunity.parse("origin:1:1"), ExtCommunity(0x80, 6, bytes(6))))
    assert ecs.route_targets() == (route_target("1:1"),)


def test_duplicate_large_communities_are_neither_sent_nor_kept():
    # Regression (found by the ExaBGP cross-check): RFC 8092 section 2, duplicates
    # MUST NOT be transmitted and a receiver MUST silently remove them.
    lc = LargeCommunities((LargeCommunity(1, 2, 3), LargeCommunity(4, 5, 6), LargeCommunity(1, 2, 3)))
    assert lc.pack(CodecContext()) == attr(OPT_TRANS, 32, hx("00000001 00000002 00000003 00000004 00000005 00000006"))
    dup = attr(OPT_TRANS, 32, hx("00000001 00000002 00000003") * 2 + hx("00000004 00000005 00000006"))
    u = _decode(update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1") + dup, nlri=prefix("10.0.0.0/8")))
    assert u.get(LargeCommunities).communities == (LargeCommunity(1, 2, 3), LargeCommunity(4, 5, 6))
    assert not u.faults


def test_large_communities_byte_exact():
    lc = LargeCommunities((LargeCommunity(4200000001, 1, 2), LargeCommunity.parse("65000:0:4294967295")))
    assert lc.pack(CodecContext()) == attr(OPT_TRANS, 32, hx("fa56ea01 00000001 00000002 0000fde8 00000000 ffffffff"))
    assert str(lc) == "4200000001:1:2 65000:0:4294967295"
    with pytest.raises(ValueError):
        LargeCommunity.parse("1:2:4294967296")


# ------------------------------------------------------------------ other attributes


def test_all_attributes_in_one_update_byte_exact():
    p = Prefix.parse("192.0.2.0/24")
    attrs = (
        Origin(1), AsPath.sequence(65001), NextHop("10.0.0.1"), Med(0), LocalPref(100), AtomicAggregate(),
        Aggregator(65001, "10.0.0.9"), Communities((0xFDE80001,)), OriginatorId("10.0.0.7"),
        ClusterList(("10.0.0.8", "10.0.0.9")), ExtendedCommunities((route_target("65000:1"),)),
        LargeCommunities((LargeCommunity(1, 2, 3),)),
    )
    u = Update(attributes=attrs, nlri=(p,))
    wire = update(
        attrs=b"".join((
            attr(WELL_KNOWN, 1, b"\x01"),
            AS_PATH_65001,
            next_hop("10.0.0.1"),
            attr(OPT_NONTRANS, 4, bytes(4)),
            attr(WELL_KNOWN, 5, hx("00000064")),
            attr(WELL_KNOWN, 6, b""),
            attr(OPT_TRANS, 7, hx("0000fde9 0a000009")),
            attr(OPT_TRANS, 8, hx("fde80001")),
            attr(OPT_NONTRANS, 9, ip("10.0.0.7")),
            attr(OPT_NONTRANS, 10, ip("10.0.0.8") + ip("10.0.0.9")),
            attr(OPT_TRANS, 16, hx("0002 fde8 00000001")),
            attr(OPT_TRANS, 32, hx("00000001 00000002 00000003")),
        )),
        nlri=prefix("192.0.2.0/24"),
    )
    _both_ways(u, wire)
    assert u.get(AtomicAggregate) == AtomicAggregate()
    assert u.get(9) == OriginatorId("10.0.0.7")


def test_aggregator_on_a_two_octet_session():
    a = Aggregator(65001, "10.0.0.9")
    assert a.pack(TWO) == attr(OPT_TRANS, 7, hx("fde9 0a000009"))


def test_attributes_are_encoded_in_type_order_with_mp_first():
    u = Update(attributes=(LocalPref(1), Origin(0), MpUnreachNlri(IPV6_UNICAST, (Prefix.parse("2001:db8::/32"),)),
                           AsPath(), Med(1)))
    codes = [a.type_code for a in _decode(u.encode()).attributes]
    assert codes == [15, 1, 2, 4, 5]


def test_extended_length_only_when_needed():
    short = Communities(tuple(range(63)))  # 252 octets
    long_ = Communities(tuple(range(64)))  # 256 octets
    assert short.pack(CodecContext())[:3] == hx("c0 08 fc")
    assert long_.pack(CodecContext())[:4] == bytes((OPT_TRANS | EXT_LEN, 8)) + hx("0100")
    # A sender may use the extended form for a short value too.
    u = _decode(update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1")
                       + attr(OPT_TRANS | EXT_LEN, 8, hx("fde80001")), nlri=prefix("10.0.0.0/8")))
    assert u.get(Communities) == Communities((0xFDE80001,))


def test_as_path_helpers():
    p = AsPath((AsSegment(AS_CONFED_SEQUENCE, (65100,)), AsSegment(AS_SEQUENCE, (1, 2)), AsSegment(AS_SET, (3, 4))))
    assert p.path_length() == 3
    assert str(p) == "(65100) 1 2 {3 4}"
    assert p.first_asn() is None
    assert AsPath.sequence(1, 2).first_asn() == 1
    assert AsPath.sequence(2).prepend(1) == AsPath.sequence(1, 2)
    assert AsPath().prepend(7) == AsPath.sequence(7)
    assert p.asns() == [65100, 1, 2, 3, 4]


def test_as_path_of_more_than_255_asns_is_split_into_segments():
    path = AsPath.sequence(*range(1, 301))
    value = path.value(CodecContext())
    assert value[:2] == bytes((2, 255)) and value[2 + 255 * 4 : 2 + 255 * 4 + 2] == bytes((2, 45))
    back = _decode(Update(attributes=(Origin(0), path, NextHop("10.0.0.1")),
                          nlri=(Prefix.parse("10.0.0.0/8"),)).encode())
    assert back.get(AsPath).asns() == list(range(1, 301))


# ------------------------------------------------------------------ unknown attributes


def test_unknown_optional_transitive_attribute_is_kept_and_passed_on_with_partial():
    raw = attr(OPT_TRANS, 99, b"\x01\x02\x03")
    u = _decode(update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1") + raw, nlri=prefix("10.0.0.0/8")))
    unknown = u.get(99)
    assert unknown == UnknownAttribute(OPT_TRANS, 99, b"\x01\x02\x03")
    assert unknown.transitive
    passed = unknown.passed_on()
    assert passed.attr_flags == OPT_TRANS | PARTIAL
    assert passed.pack(CodecContext()) == attr(OPT_TRANS | PARTIAL, 99, b"\x01\x02\x03")
    # and it survives a re-encode of the whole update
    assert u.encode() == update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1") + raw,
                                nlri=prefix("10.0.0.0/8"))


def test_unknown_optional_non_transitive_attribute_is_dropped():
    u = _decode(update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1") + attr(OPT_NONTRANS, 99, b"\x01"),
                       nlri=prefix("10.0.0.0/8")))
    assert u.get(99) is None
    assert not u.faults and not u.treat_as_withdraw


def test_unknown_extended_length_attribute_keeps_its_flags_canonical():
    u = _decode(update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1") + attr(OPT_TRANS | EXT_LEN, 99, b"\x01"),
                       nlri=prefix("10.0.0.0/8")))
    assert u.get(99).attr_flags == OPT_TRANS


def test_mp_reach_of_an_unsupported_family_is_kept_opaque():
    value = hx("0019 46 04 0a000001 00 0102")  # AFI 25 (L2VPN) SAFI 70 (EVPN)
    u = _decode(update(attrs=attr(OPT_NONTRANS, 14, value) + ORIGIN_IGP + AS_PATH_65001))
    assert u.get(14) == UnknownAttribute(OPT_NONTRANS, 14, value)
    assert u.reachable() == [] and not u.treat_as_withdraw


# ------------------------------------------------------------------ AS4_PATH / AS4_AGGREGATOR (RFC 6793 4.2.3)


def _two_octet_update(as_path: bytes, *extra: bytes) -> Update:
    wire = update(attrs=ORIGIN_IGP + attr(WELL_KNOWN, 2, as_path) + next_hop("10.0.0.1") + b"".join(extra),
                  nlri=prefix("10.0.0.0/8"))
    return _decode(wire, TWO)


def _as4_path(*segments) -> bytes:
    return attr(OPT_TRANS, 17, as_path_value(*segments))


def test_as4_path_same_length_replaces_as_trans():
    u = _two_octet_update(as_path_value((2, (23456, 65002)), four=False), _as4_path((2, (4200000001, 65002))))
    assert u.get(AsPath) == AsPath.sequence(4200000001, 65002)
    assert u.get(17) is None and not u.faults


def test_as4_path_shorter_keeps_the_leading_two_octet_asns():
    # An old (2-octet) speaker prepended 65010 and 65011 after the AS4_PATH was made.
    u = _two_octet_update(as_path_value((2, (65010, 65011, 23456)), four=False), _as4_path((2, (4200000001,))))
    assert u.get(AsPath) == AsPath.sequence(65010, 65011, 4200000001)


def test_as4_path_longer_than_as_path_is_ignored():
    u = _two_octet_update(as_path_value((2, (23456,)), four=False), _as4_path((2, (4200000001, 4200000002))))
    assert u.get(AsPath) == AsPath.sequence(23456)


def test_as4_path_with_as_set_counts_the_set_as_one():
    u = _two_octet_update(as_path_value((2, (65010,)), (1, (23456, 65020)), four=False),
                          _as4_path((1, (4200000001, 65020))))
    assert u.get(AsPath) == AsPath((AsSegment(AS_SEQUENCE, (65010,)), AsSegment(AS_SET, (4200000001, 65020))))


def test_as4_path_keeps_a_leading_confederation_segment():
    u = _two_octet_update(as_path_value((3, (65100,)), (2, (23456,)), four=False), _as4_path((2, (4200000001,))))
    assert u.get(AsPath) == AsPath((AsSegment(AS_CONFED_SEQUENCE, (65100,)), AsSegment(AS_SEQUENCE, (4200000001,))))


def test_as4_aggregator_replaces_an_as_trans_aggregator():
    u = _two_octet_update(as_path_value((2, (23456,)), four=False),
                          attr(OPT_TRANS, 7, hx("5ba0 0a000009")), _as4_path((2, (4200000001,))),
                          attr(OPT_TRANS, 18, hx("fa56ea01 0a000009")))
    assert u.get(Aggregator) == Aggregator(4200000001, "10.0.0.9")
    assert u.get(AsPath) == AsPath.sequence(4200000001)
    assert u.get(18) is None


def test_real_aggregator_makes_as4_attributes_ignored():
    u = _two_octet_update(as_path_value((2, (23456,)), four=False),
                          attr(OPT_TRANS, 7, hx("fde9 0a000009")), _as4_path((2, (4200000001,))),
                          attr(OPT_TRANS, 18, hx("fa56ea01 0a000009")))
    assert u.get(Aggregator) == Aggregator(65001, "10.0.0.9")
    assert u.get(AsPath) == AsPath.sequence(23456)


def test_as4_path_on_a_four_octet_session_is_discarded():
    wire = update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1") + _as4_path((2, (4200000001,))),
                  nlri=prefix("10.0.0.0/8"))
    u = _decode(wire)
    assert u.get(AsPath) == AsPath.sequence(65001) and u.get(17) is None
    assert [f.action for f in u.faults] == [ATTRIBUTE_DISCARD] and not u.treat_as_withdraw


@pytest.mark.parametrize("bad", [hx("02 02 fa56ea01"), hx("03 01 0000fde9"), hx("07 01 0000fde9")])
def test_malformed_as4_path_is_discarded_and_as_path_used(bad):
    u = _two_octet_update(as_path_value((2, (23456,)), four=False), attr(OPT_TRANS, 17, bad))
    assert u.get(AsPath) == AsPath.sequence(23456)
    assert not u.treat_as_withdraw and u.faults[0].action == ATTRIBUTE_DISCARD


def test_malformed_as4_aggregator_is_discarded():
    u = _two_octet_update(as_path_value((2, (65001,)), four=False), attr(OPT_TRANS, 7, hx("5ba0 0a000009")),
                          attr(OPT_TRANS, 18, hx("fa56ea01 0a")))
    assert u.get(Aggregator) == Aggregator(23456, "10.0.0.9")
    assert u.faults[0].action == ATTRIBUTE_DISCARD and not u.treat_as_withdraw


def test_encoding_four_octet_asns_on_a_two_octet_session():
    u = Update(attributes=(Origin(0),
                           AsPath((AsSegment(AS_CONFED_SEQUENCE, (65100,)),
                                   AsSegment(AS_SEQUENCE, (4200000001, 65002)))),
                           NextHop("10.0.0.1"), Aggregator(4200000001, "10.0.0.9")),
               nlri=(Prefix.parse("10.0.0.0/8"),))
    wire = u.encode(TWO)
    expect = update(
        attrs=ORIGIN_IGP
        + attr(WELL_KNOWN, 2, hx("03 01 fe4c 02 02 5ba0 fdea"))
        + next_hop("10.0.0.1")
        + attr(OPT_TRANS, 7, hx("5ba0 0a000009"))
        # RFC 6793 section 4.2.2: AS4_PATH without confederation segments
        + attr(OPT_TRANS, 17, hx("02 02 fa56ea01 0000fdea"))
        + attr(OPT_TRANS, 18, hx("fa56ea01 0a000009")),
        nlri=prefix("10.0.0.0/8"),
    )
    assert wire == expect
    assert _decode(wire, TWO) == u


def test_as4_attributes_are_not_sent_on_a_four_octet_session():
    u = Update(attributes=(Origin(0), AsPath.sequence(4200000001), As4Path(), As4Aggregator(1, "1.1.1.1")))
    codes = [a.type_code for a in _decode(u.encode()).attributes]
    assert codes == [1, 2]


# ------------------------------------------------------------------ reachable / unreachable


def test_reachable_and_unreachable_groups():
    p4, p6 = Prefix.parse("10.0.0.0/8"), Prefix.parse("2001:db8::/32")
    w4, w6 = Prefix.parse("10.1.0.0/16"), Prefix.parse("2001:db8:1::/48")
    u = Update(withdrawn=(w4,),
               attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop(V6), (p6,)), MpUnreachNlri(IPV6_UNICAST, (w6,)),
                                            Origin(0), AsPath(), NextHop("10.0.0.1")), nlri=(p4,))
    assert u.reachable() == [(IPV4_UNICAST, MpNextHop("10.0.0.1"), (p4,)), (IPV6_UNICAST, MpNextHop(V6), (p6,))]
    assert u.unreachable() == [(IPV4_UNICAST, (w4,)), (IPV6_UNICAST, (w6,))]
    taw = Update(u.withdrawn, u.attributes, u.nlri, treat_as_withdraw=True)
    assert taw.reachable() == []
    assert taw.unreachable() == [(IPV4_UNICAST, (w4,)), (IPV6_UNICAST, (w6,)), (IPV4_UNICAST, (p4,)),
                                 (IPV6_UNICAST, (p6,))]
    assert u.path_attributes() == (Origin(0), AsPath(), NextHop("10.0.0.1"))


def test_oversized_update_is_refused_on_encode():
    nlri = tuple(Prefix(1, 32, i.to_bytes(4, "big")) for i in range(1000))
    with pytest.raises(LocalProtocolError):
        Update(attributes=BASE + (NextHop("10.0.0.1"),), nlri=nlri).encode()


def test_family_names():
    assert str(VPNV6) == "vpnv6" and Family.parse("ipv4-vpn") == VPNV4 and Family(25, 70).name == "afi25-safi70"
    with pytest.raises(ValueError):
        Family.parse("evpn")


def test_decode_update_body_directly():
    body = update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1"), nlri=prefix("10.0.0.0/8"))[19:]
    assert decode_update(body).nlri == (Prefix.parse("10.0.0.0/8"),)
