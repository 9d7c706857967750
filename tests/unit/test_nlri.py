"""NLRI encodings: IP prefixes (RFC 4271 4.3), labeled VPN prefixes (RFC 4364 4.3.4,
RFC 4659, RFC 8277), route distinguishers (RFC 4364 4.2) and ADD-PATH (RFC 7911)."""
from __future__ import annotations

import pytest

from bgpbytes import hx, label, prefix, rd0, rd1, rd2, vpn_prefix
from l3fab.speaker.wire import PathId, Prefix, RouteDistinguisher, VpnPrefix
from l3fab.speaker.wire.constants import IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6
from l3fab.speaker.wire.errors import LocalProtocolError, UpdateMessageError
from l3fab.speaker.wire.nlri import decode_nlri, decode_prefixes, decode_vpn_prefixes, encode_nlri, nlri_family_ok

# ------------------------------------------------------------------ plain prefixes


@pytest.mark.parametrize(
    "text,wire",
    [
        ("0.0.0.0/0", "00"),
        ("10.0.0.0/8", "08 0a"),
        ("10.128.0.0/9", "09 0a80"),
        ("192.0.2.0/24", "18 c00002"),
        ("192.0.2.128/25", "19 c0000280"),
        ("192.0.2.1/32", "20 c0000201"),
        ("::/0", "00"),
        ("2001:db8::/32", "20 20010db8"),
        ("2001:db8:1::/48", "30 20010db80001"),
        ("2001:db8::1/128", "80 20010db8000000000000000000000001"),
    ],
)
def test_prefix_wire_form(text, wire):
    p = Prefix.parse(text)
    assert encode_nlri(p) == hx(wire) == prefix(text)
    assert p.wire() == hx(wire)
    assert str(p) == text
    afi = 1 if "." in text else 2
    assert decode_prefixes(afi, hx(wire)) == [p]


@pytest.mark.parametrize("afi,width", [(1, 32), (2, 128)])
def test_every_prefix_length_round_trips(afi, width):
    full = b"\xa5" * (width // 8)
    prefixes = []
    for n in range(width + 1):
        raw = bytearray(full)
        # clear host bits
        for bit in range(n, width):
            raw[bit // 8] &= ~(0x80 >> (bit % 8)) & 0xFF
        prefixes.append(Prefix(afi, n, bytes(raw)))
    wire = b"".join(encode_nlri(p) for p in prefixes)
    assert decode_prefixes(afi, wire) == prefixes


def test_host_bits_beyond_the_length_are_cleared_on_decode():
    # 10.1.2.255/23: the last octet holds host bits a sloppy sender left set.
    (p,) = decode_prefixes(1, hx("17 0a0103"))
    assert str(p) == "10.1.2.0/23"


@pytest.mark.parametrize("afi,wire", [(1, "21 0a000001 00"), (2, "81" + "00" * 17)])
def test_prefix_length_too_long_is_3_10(afi, wire):
    with pytest.raises(UpdateMessageError) as e:
        decode_prefixes(afi, hx(wire))
    assert (e.value.code, e.value.subcode) == (3, 10)


@pytest.mark.parametrize("wire", ["18 0a00", "20", "09"])
def test_prefix_overrunning_the_field_is_3_10(wire):
    with pytest.raises(UpdateMessageError) as e:
        decode_prefixes(1, hx(wire))
    assert (e.value.code, e.value.subcode) == (3, 10)


def test_network_property_and_parse_errors():
    assert str(Prefix.parse("10.1.2.3/16").network) == "10.1.0.0/16"
    with pytest.raises(ValueError):
        Prefix.parse("10.0.0.0/33")


# ------------------------------------------------------------------ ADD-PATH


def test_addpath_prefixes():
    wire = hx("00000001 18 c00002  00000002 18 c00002")
    got = decode_prefixes(1, wire, addpath=True)
    p = Prefix.parse("192.0.2.0/24")
    assert got == [PathId(1, p), PathId(2, p)]
    assert b"".join(encode_nlri(n) for n in got) == wire
    assert str(got[0]) == "192.0.2.0/24 path-id 1"


@pytest.mark.parametrize("wire", ["000000", "00000001"])
def test_addpath_truncated_path_id_is_3_10(wire):
    with pytest.raises(UpdateMessageError) as e:
        decode_prefixes(1, hx(wire), addpath=True)
    assert e.value.subcode == 10


# ------------------------------------------------------------------ route distinguishers


@pytest.mark.parametrize(
    "rd,wire,text",
    [
        (RouteDistinguisher(0, 65000, 100), rd0(65000, 100), "65000:100"),
        (RouteDistinguisher(0, 65535, 4294967295), rd0(65535, 4294967295), "65535:4294967295"),
        (RouteDistinguisher(1, "192.0.2.1", 7), rd1("192.0.2.1", 7), "192.0.2.1:7"),
        (RouteDistinguisher(2, 4200000001, 65535), rd2(4200000001, 65535), "4200000001:65535"),
    ],
)
def test_route_distinguisher_types(rd, wire, text):
    assert rd.pack() == wire
    assert RouteDistinguisher.unpack(wire) == rd
    assert str(rd) == text
    assert RouteDistinguisher.parse(text) == rd


def test_route_distinguisher_unknown_type_is_kept_and_sent_on_as_received():
    # Regression (found by bench/fuzz.py): an RD of a type other than 0-2 was decoded
    # but could not be encoded, so a VPN route carrying one was accepted and then made
    # the Adj-RIB-Out of every peer raise LocalProtocolError.
    wire = hx("0041 0102030405 06")
    rd = RouteDistinguisher.unpack(wire)
    assert rd.type == 0x41 and rd.assigned == 0x010203040506
    assert rd.pack() == wire
    assert str(rd) == "type65:0x10203040506"
    v = VpnPrefix(rd, Prefix.parse("10.1.0.0/16"), (100,))
    nlri = vpn_prefix(wire, "10.1.0.0/16", (100,))
    assert decode_vpn_prefixes(1, nlri) == [v] and encode_nlri(v) == nlri
    # what no RD of any type can hold is still refused
    for bad in (RouteDistinguisher(5, "192.0.2.1", 1), RouteDistinguisher(5, 0, 1 << 48),
                RouteDistinguisher(0x10000, 0, 1)):
        with pytest.raises(LocalProtocolError):
            bad.pack()


@pytest.mark.parametrize("text", ["65000", "a:1", "1.2.3:4", "1.2.3.4:70000", "4294967296:1", "70000:70000"])
def test_route_distinguisher_parse_errors(text):
    with pytest.raises(ValueError):
        RouteDistinguisher.parse(text)


# ------------------------------------------------------------------ VPN prefixes


@pytest.mark.parametrize(
    "nlri,wire",
    [
        (VpnPrefix(RouteDistinguisher(0, 65000, 1), Prefix.parse("10.1.0.0/16"), (16,)),
         vpn_prefix(rd0(65000, 1), "10.1.0.0/16", (16,))),
        (VpnPrefix(RouteDistinguisher(1, "10.0.0.1", 2), Prefix.parse("192.0.2.1/32"), (1048575,)),
         vpn_prefix(rd1("10.0.0.1", 2), "192.0.2.1/32", (1048575,))),
        (VpnPrefix(RouteDistinguisher(2, 4200000000, 3), Prefix.parse("0.0.0.0/0"), (0,)),
         vpn_prefix(rd2(4200000000, 3), "0.0.0.0/0", (0,))),
    ],
)
def test_vpnv4_prefix(nlri, wire):
    assert encode_nlri(nlri) == wire
    assert decode_nlri(VPNV4, wire) == [nlri]


def test_vpnv4_byte_exact_rfc_layout():
    # 88 bits = 24 label + 64 RD + 0... here /24: 24 + 64 + 24 = 112 = 0x70.
    nlri = VpnPrefix(RouteDistinguisher(0, 100, 1), Prefix.parse("192.0.2.0/24"), (100,))
    assert encode_nlri(nlri) == hx("70 000641 0000 0064 00000001 c00002")


def test_vpnv6_prefix():
    nlri = VpnPrefix(RouteDistinguisher(0, 65000, 9), Prefix.parse("2001:db8:9::/48"), (3000,))
    wire = encode_nlri(nlri)
    assert wire == hx("88") + label(3000) + rd0(65000, 9) + hx("20010db80009")
    assert decode_nlri(VPNV6, wire) == [nlri]


def test_more_than_one_label_is_not_sent():
    # RFC 8277 section 2.1: several labels need the Multiple Labels Capability, which
    # l3fab does not negotiate; FRR would read the second label as the RD.
    for labels in ((3000, 17), (1, 2, 3)):
        nlri = VpnPrefix(RouteDistinguisher(0, 1, 1), Prefix.parse("2001:db8::1/128"), labels)
        with pytest.raises(LocalProtocolError):
            encode_nlri(nlri)


@pytest.mark.parametrize("raw", [0x800000, 0x000000, 0x000640])
def test_label_field_without_bottom_of_stack_is_one_label(raw):
    # Regression: the decoder read labels until the bottom-of-stack bit, so a label
    # field without it swallowed the RD (and 0x80000/0 above the bottom were taken for
    # withdrawal values).  RFC 8277 section 2.2: without the Multiple Labels
    # Capability there is exactly one label and the S bit is ignored on reception.
    wire = hx("70") + raw.to_bytes(3, "big") + rd0(65000, 1) + hx("c00002")
    (v,) = decode_nlri(VPNV4, wire)
    assert v == VpnPrefix(RouteDistinguisher(0, 65000, 1), Prefix.parse("192.0.2.0/24"), (raw >> 4,))


def test_vpn_label_out_of_range():
    with pytest.raises(LocalProtocolError):
        encode_nlri(VpnPrefix(RouteDistinguisher(0, 1, 1), Prefix.parse("10.0.0.0/8"), (1 << 20,)))


def test_vpn_withdrawal_uses_the_rfc8277_compatibility_label():
    nlri = VpnPrefix(RouteDistinguisher(0, 65000, 1), Prefix.parse("10.1.0.0/16"), (16,))
    wire = encode_nlri(nlri, withdraw=True)
    assert wire == vpn_prefix(rd0(65000, 1), "10.1.0.0/16", withdraw_label=True)
    assert decode_vpn_prefixes(1, wire, withdraw=True) == [nlri._replace(labels=())]


def test_vpn_withdrawal_with_a_real_label_is_accepted():
    # RFC 8277 section 2.4: the label field of a withdrawal is ignored by the receiver.
    wire = vpn_prefix(rd0(1, 1), "10.0.0.0/8", (77,))
    (w,) = decode_vpn_prefixes(1, wire, withdraw=True)
    assert w.labels == () and str(w.prefix) == "10.0.0.0/8"


def test_vpn_key_and_str():
    v = VpnPrefix(RouteDistinguisher(0, 65000, 1), Prefix.parse("10.1.0.0/16"), (16,))
    assert v.key == (RouteDistinguisher(0, 65000, 1), Prefix.parse("10.1.0.0/16"))
    assert str(v) == "65000:1:10.1.0.0/16"


def test_vpn_addpath():
    v = VpnPrefix(RouteDistinguisher(0, 65000, 1), Prefix.parse("10.1.0.0/16"), (16,))
    wire = hx("0000002a") + encode_nlri(v)
    assert encode_nlri(PathId(42, v)) == wire
    assert decode_nlri(VPNV4, wire, addpath=True) == [PathId(42, v)]


@pytest.mark.parametrize(
    "wire",
    [
        "70 000641",  # stops inside the RD
        "10 000641 00000000 00000001",  # 16 bits: shorter than one label
        "58 000640",  # label and nothing else
        "98 000641 0000006400000001 c00002",  # 152 bits: /64 for VPNv4
        "78 000641 0000006400000001 c00002",  # /32 promised, 3 octets present
    ],
)
def test_malformed_vpn_nlri_is_3_10(wire):
    with pytest.raises(UpdateMessageError) as e:
        decode_nlri(VPNV4, hx(wire))
    assert (e.value.code, e.value.subcode) == (3, 10)


def test_nlri_family_ok():
    p4, p6 = Prefix.parse("10.0.0.0/8"), Prefix.parse("2001:db8::/32")
    v4 = VpnPrefix(RouteDistinguisher(0, 1, 1), p4, (1,))
    assert nlri_family_ok(IPV4_UNICAST, p4) and not nlri_family_ok(IPV4_UNICAST, p6)
    assert nlri_family_ok(IPV6_UNICAST, PathId(1, p6))
    assert nlri_family_ok(VPNV4, v4) and not nlri_family_ok(VPNV6, v4) and not nlri_family_ok(VPNV4, p4)

