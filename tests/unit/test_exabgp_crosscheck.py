"""Cross-check the codec against an independent implementation: ExaBGP 5.0.15.

ExaBGP has no library API; its internal decoder ``Update.unpack_message`` with a
``Negotiated`` built from two ``Open`` objects works as one (see PEERS.md, "As a
library").  What l3fab encodes must decode in ExaBGP to the same prefixes, next
hops, RDs, labels and attributes; and what ExaBGP encodes from the same content
must decode in l3fab to what it was built from.
"""
from __future__ import annotations

import ipaddress
import struct

import pytest

exabgp = pytest.importorskip("exabgp", reason="exabgp==5.0.15 is not installed (pip install -e '.[test]')")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from exabgp.bgp.message import Open as XOpen  # noqa: E402
from exabgp.bgp.message import Update as XUpdate  # noqa: E402
from exabgp.bgp.message.action import Action  # noqa: E402
from exabgp.bgp.message.direction import Direction  # noqa: E402
from exabgp.bgp.message.open import ASN as XASN  # noqa: E402
from exabgp.bgp.message.open import HoldTime, RouterID, Version  # noqa: E402
from exabgp.bgp.message.open.capability import Capabilities, Capability, Negotiated  # noqa: E402
from exabgp.bgp.message.open.capability.addpath import AddPath as XAddPath  # noqa: E402
from exabgp.bgp.message.open.capability.asn4 import ASN4  # noqa: E402
from exabgp.bgp.message.open.capability.mp import MultiProtocol  # noqa: E402
from exabgp.bgp.message.open.capability.nexthop import NextHop as XNextHopCap  # noqa: E402
from exabgp.bgp.message.update.attribute import Attribute, Attributes  # noqa: E402
from exabgp.bgp.message.update.attribute import LocalPreference as XLocalPref  # noqa: E402
from exabgp.bgp.message.update.attribute import MED as XMed  # noqa: E402
from exabgp.bgp.message.update.attribute import NextHop as XNextHop  # noqa: E402
from exabgp.bgp.message.update.attribute import Origin as XOrigin  # noqa: E402
from exabgp.bgp.message.update.attribute.aspath import SEQUENCE, SET, ASPath  # noqa: E402
from exabgp.bgp.message.update.attribute.community.extended.communities import ExtendedCommunities as XExt  # noqa: E402
from exabgp.bgp.message.update.attribute.community.extended.community import ExtendedCommunity as XExtC  # noqa: E402
from exabgp.bgp.message.update.attribute.community.initial.communities import Communities as XComms  # noqa: E402
from exabgp.bgp.message.update.attribute.community.initial.community import Community as XComm  # noqa: E402
from exabgp.bgp.message.update.attribute.community.large.communities import LargeCommunities as XLarge  # noqa: E402
from exabgp.bgp.message.update.attribute.community.large.community import LargeCommunity as XLargeC  # noqa: E402
from exabgp.bgp.message.update.eor import EOR  # noqa: E402
from exabgp.bgp.message.update.nlri import INET, IPVPN  # noqa: E402
from exabgp.bgp.message.update.nlri.cidr import CIDR  # noqa: E402
from exabgp.bgp.message.update.nlri.qualifier import Labels  # noqa: E402
from exabgp.bgp.message.update.nlri.qualifier import RouteDistinguisher as XRD  # noqa: E402
from exabgp.bgp.neighbor import Neighbor  # noqa: E402
from exabgp.logger import log as exa_log  # noqa: E402
from exabgp.protocol.family import AFI, SAFI  # noqa: E402
from exabgp.protocol.ip import IP  # noqa: E402

from l3fab.speaker.wire import (  # noqa: E402
    IPV4_UNICAST,
    IPV6_UNICAST,
    VPNV4,
    VPNV6,
    AsPath,
    AsSegment,
    CodecContext,
    Communities,
    ExtCommunity,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    LocalPref,
    Med,
    MpNextHop,
    Origin,
    PathId,
    Prefix,
    RouteDistinguisher,
    Update,
    VpnPrefix,
    decode_message,
    end_of_rib,
    pack_announcements,
    pack_withdrawals,
    route_target,
)
from test_roundtrip_hypothesis import prefixes, route_distinguishers, unicast_v4  # noqa: E402

exa_log.disable()  # ExaBGP's logger is global state and unconfigured outside its reactor

FAMILIES = (IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6)
_XFAM = {IPV4_UNICAST: (AFI.ipv4, SAFI.unicast), IPV6_UNICAST: (AFI.ipv6, SAFI.unicast),
         VPNV4: (AFI.ipv4, SAFI.mpls_vpn), VPNV6: (AFI.ipv6, SAFI.mpls_vpn)}


def negotiated(asn4: bool = True, ibgp: bool = True, addpath: bool = False) -> Negotiated:
    """An ExaBGP session state as if both sides sent the same capabilities."""
    local_as, peer_as = 65001, (65001 if ibgp else 65002)
    neighbor = Neighbor()
    neighbor["local-as"], neighbor["peer-as"] = XASN(local_as), XASN(peer_as)
    neighbor["router-id"] = RouterID("10.0.0.1")
    for f in FAMILIES:
        neighbor.add_family(_XFAM[f])

    def caps(asn: int) -> Capabilities:
        c = Capabilities()
        mp = MultiProtocol()
        mp.extend(_XFAM[f] for f in FAMILIES)
        c[Capability.CODE.MULTIPROTOCOL] = mp
        if asn4:
            c[Capability.CODE.FOUR_BYTES_ASN] = ASN4(asn)
        c[Capability.CODE.NEXTHOP] = XNextHopCap([(AFI.ipv4, SAFI.unicast, AFI.ipv6),
                                                  (AFI.ipv4, SAFI.mpls_vpn, AFI.ipv6)])
        if addpath:
            c[Capability.CODE.ADD_PATH] = XAddPath([_XFAM[f] for f in FAMILIES], 3)
        return c

    neg = Negotiated(neighbor)
    neg.sent(XOpen(Version(4), XASN(local_as), HoldTime(180), RouterID("10.0.0.1"), caps(local_as)))
    neg.received(XOpen(Version(4), XASN(peer_as), HoldTime(180), RouterID("10.0.0.2"), caps(peer_as)))
    assert neg.asn4 is asn4
    return neg


NEG = negotiated()


# ------------------------------------------------------------------ ExaBGP's view, as plain data


def _rd(rd) -> tuple:
    """An RD as (text, octets): the text alone cannot tell type 0 "1:2" from type 2 "1:2"."""
    return (rd._str(), rd.rd) if rd else ("", b"")


def exa_view(wire: bytes, neg: Negotiated = NEG) -> dict:
    """Decode ``wire`` with ExaBGP: routes as tuples, attributes as plain values.

    Community lists are compared sorted: ExaBGP sorts them when it decodes.
    """
    assert wire[:16] == b"\xff" * 16
    x = XUpdate.unpack_message(wire[19:], Direction.IN, neg)
    if isinstance(x, EOR):
        return {"eor": (x.nlris[0].afi, x.nlris[0].safi)}
    routes = set()
    for n in x.nlris:
        fam = (n.afi, n.safi)
        labels = tuple(n.labels.labels) if n.safi == SAFI.mpls_vpn and n.action == Action.ANNOUNCE else ()
        # ExaBGP prints some IPv6 addresses in the IPv4-compatible form (::0.1.0.0)
        nh = str(ipaddress.ip_address(str(n.nexthop))) if n.action == Action.ANNOUNCE else None
        raw_path_id = getattr(n.path_info, "path_info", b"")
        path_id = int.from_bytes(raw_path_id, "big") if raw_path_id else None
        routes.add((n.action, fam, str(n.cidr.prefix()), _rd(getattr(n, "rd", None)), labels, nh, path_id))
    a = x.attributes
    attrs: dict = {}
    if Attribute.CODE.ORIGIN in a:
        attrs["origin"] = int(a[Attribute.CODE.ORIGIN].origin)
    if Attribute.CODE.AS_PATH in a and a[Attribute.CODE.AS_PATH].aspath:  # ExaBGP keeps no empty AS_PATH
        attrs["as_path"] = tuple((s.ID, tuple(int(n) for n in s)) for s in a[Attribute.CODE.AS_PATH].aspath)
    if Attribute.CODE.MED in a:
        attrs["med"] = int(a[Attribute.CODE.MED].med)
    if Attribute.CODE.LOCAL_PREF in a:
        attrs["local_pref"] = int(a[Attribute.CODE.LOCAL_PREF].localpref)
    if Attribute.CODE.COMMUNITY in a:
        attrs["communities"] = sorted(struct.unpack("!I", c.community)[0]
                                      for c in a[Attribute.CODE.COMMUNITY].communities)
    if Attribute.CODE.EXTENDED_COMMUNITY in a:
        attrs["ext_communities"] = sorted(bytes(c.community)
                                          for c in a[Attribute.CODE.EXTENDED_COMMUNITY].communities)
    if Attribute.CODE.LARGE_COMMUNITY in a:
        attrs["large_communities"] = sorted(struct.unpack("!III", c.large_community)
                                            for c in a[Attribute.CODE.LARGE_COMMUNITY].communities)
    return {"routes": routes, "attrs": attrs}


def l3fab_view(u: Update) -> dict:
    """The same plain data from an l3fab Update."""
    routes = set()

    def add(action, family, n, nh):
        path_id = None
        if isinstance(n, PathId):
            path_id, n = n.path_id, n.nlri
        if isinstance(n, VpnPrefix):
            rd, labels, p = (str(n.rd), n.rd.pack()), (n.labels if action == Action.ANNOUNCE else ()), n.prefix
        else:
            rd, labels, p = ("", b""), (), n
        hops = [nh.address] + ([nh.link_local] if nh.link_local else []) if nh else [None]
        for hop in hops:  # ExaBGP lists a global + link-local next hop as two routes
            routes.add((action, _XFAM[family], str(p), rd, tuple(labels), hop, path_id))

    for family, nh, group in u.reachable():
        for n in group:
            add(Action.ANNOUNCE, family, n, nh)
    for family, group in u.unreachable():
        for n in group:
            add(Action.WITHDRAW, family, n, None)
    attrs: dict = {}
    for a in u.path_attributes():
        if isinstance(a, Origin):
            attrs["origin"] = a.origin
        elif isinstance(a, AsPath) and a.segments:
            attrs["as_path"] = tuple((s.type, s.asns) for s in a.segments)
        elif isinstance(a, Med):
            attrs["med"] = a.med
        elif isinstance(a, LocalPref):
            attrs["local_pref"] = a.local_pref
        elif isinstance(a, Communities):
            attrs["communities"] = sorted(a.communities)
        elif isinstance(a, ExtendedCommunities):
            attrs["ext_communities"] = sorted(c.pack() for c in a.communities)
        elif isinstance(a, LargeCommunities):
            attrs["large_communities"] = sorted(tuple(c) for c in a.communities)
    return {"routes": routes, "attrs": attrs}


# ------------------------------------------------------------------ l3fab encodes, ExaBGP decodes

PATH = (
    Origin(1),
    AsPath((AsSegment(2, (65002, 4200000001)), AsSegment(1, (65010, 65011)))),
    Med(50),
    LocalPref(200),
    Communities((0xFDE80001, 0xFFFFFF01)),
    ExtendedCommunities((route_target("65000:100"), route_target("192.0.2.1:7"), route_target("4200000001:9"),
                         ExtCommunity.parse("origin:65000:5"))),
    LargeCommunities((LargeCommunity(4200000001, 1, 2), LargeCommunity(65000, 0, 4294967295))),
)
V4 = [Prefix.parse(p) for p in ("10.0.0.0/8", "192.0.2.0/24", "192.0.2.1/32", "0.0.0.0/0", "10.128.0.0/9")]
V6 = [Prefix.parse(p) for p in ("2001:db8::/32", "2001:db8:1::/48", "2001:db8::1/128", "::/0", "2001:db8:8000::/33")]
RDS = (RouteDistinguisher(0, 65000, 100), RouteDistinguisher(1, "192.0.2.9", 7), RouteDistinguisher(2, 4200000001, 300))


def _vpn(prefixes):
    return [VpnPrefix(RDS[i % 3], p, (16 + 1000 * i,)) for i, p in enumerate(prefixes)]


CASES = {
    "ipv4-unicast": (IPV4_UNICAST, MpNextHop("10.0.0.1"), V4),
    "ipv4-unicast-v6-next-hop": (IPV4_UNICAST, MpNextHop("2001:db8::1"), V4),
    "ipv6-unicast-16": (IPV6_UNICAST, MpNextHop("2001:db8::1"), V6),
    "ipv6-unicast-32": (IPV6_UNICAST, MpNextHop("2001:db8::1", "fe80::1"), V6),
    "vpnv4-12": (VPNV4, MpNextHop("10.0.0.1"), _vpn(V4)),
    "vpnv4-24": (VPNV4, MpNextHop("2001:db8::1"), _vpn(V4)),
    "vpnv6-24": (VPNV6, MpNextHop("2001:db8::1"), _vpn(V6)),
}


@pytest.mark.parametrize("case", CASES)
def test_exabgp_decodes_what_l3fab_announces(case):
    family, nh, nlri = CASES[case]
    (wire,) = pack_announcements(family, PATH, nh, nlri)
    got, want = exa_view(wire), l3fab_view(decode_message(wire))
    assert got == want
    # and the view itself is what was meant, not just the same mistake twice
    hops = {nh.address} | ({nh.link_local} if nh.link_local else set())
    assert {r[5] for r in got["routes"]} == hops
    assert {r[2] for r in got["routes"]} == {str(n.prefix if isinstance(n, VpnPrefix) else n) for n in nlri}
    assert got["attrs"]["as_path"] == ((2, (65002, 4200000001)), (1, (65010, 65011)))
    assert got["attrs"]["local_pref"] == 200 and got["attrs"]["med"] == 50


@pytest.mark.parametrize("family", FAMILIES)
def test_exabgp_decodes_what_l3fab_withdraws(family):
    nlri = _vpn(V4 if family.afi == 1 else V6) if family.is_vpn else (V4 if family.afi == 1 else V6)
    (wire,) = pack_withdrawals(family, nlri)
    got = exa_view(wire)
    assert got == l3fab_view(decode_message(wire))
    assert {r[0] for r in got["routes"]} == {Action.WITHDRAW} and len(got["routes"]) == len(nlri)


@pytest.mark.parametrize("family", FAMILIES)
def test_exabgp_sees_l3fab_end_of_rib(family):
    assert exa_view(end_of_rib(family).encode()) == {"eor": _XFAM[family]}


def test_exabgp_merges_as4_path_from_a_two_octet_session():
    ctx = CodecContext(four_octet_as=False)
    (wire,) = pack_announcements(IPV4_UNICAST, PATH, MpNextHop("10.0.0.1"), V4, ctx)
    assert exa_view(wire, negotiated(asn4=False))["attrs"]["as_path"] == ((2, (65002, 4200000001)), (1, (65010, 65011)))


def test_exabgp_reads_l3fab_addpath_identifiers():
    ctx = CodecContext(addpath_receive=frozenset(FAMILIES))
    nlri = [PathId(i + 1, p) for i, p in enumerate(V6)]
    (wire,) = pack_announcements(IPV6_UNICAST, PATH, MpNextHop("2001:db8::1"), nlri, ctx)
    got = exa_view(wire, negotiated(addpath=True))
    assert got == l3fab_view(decode_message(wire, ctx))
    assert {r[6] for r in got["routes"]} == {1, 2, 3, 4, 5}


# ------------------------------------------------------------------ property: any l3fab UPDATE


def _nlri_strategy(family):
    p = prefixes(family.afi)
    if family.is_vpn:
        return st.builds(VpnPrefix, route_distinguishers, p, st.integers(0, (1 << 20) - 1).map(lambda n: (n,)))
    return p


@st.composite
def announcements(draw):
    family = draw(st.sampled_from(FAMILIES))
    nlri = draw(st.lists(_nlri_strategy(family), min_size=1, max_size=20, unique_by=lambda n: getattr(n, "key", n)))
    if family.afi == 1 and draw(st.booleans()):
        nh = MpNextHop(draw(unicast_v4))
    else:
        nh = MpNextHop(str(ipaddress.IPv6Address(draw(st.integers(1, 2**128 - 1)))))
    asn = st.integers(1, 2**32 - 1)
    path = [Origin(draw(st.integers(0, 2))),
            AsPath(tuple(AsSegment(draw(st.sampled_from([1, 2])), tuple(draw(st.lists(asn, min_size=1, max_size=6))))
                         for _ in range(draw(st.integers(0, 3)))))]
    if draw(st.booleans()):
        path.append(Med(draw(st.integers(0, 2**32 - 1))))
    if draw(st.booleans()):
        path.append(LocalPref(draw(st.integers(0, 2**32 - 1))))
    if draw(st.booleans()):
        path.append(Communities(tuple(draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=5)))))
    if draw(st.booleans()):
        rts = st.builds(lambda a, n: route_target(f"{a}:{n}"), st.integers(0, 65535), st.integers(0, 2**32 - 1))
        path.append(ExtendedCommunities(tuple(draw(st.lists(rts, min_size=1, max_size=4)))))
    if draw(st.booleans()):
        lc = st.builds(LargeCommunity, asn, asn, asn)
        path.append(LargeCommunities(tuple(draw(st.lists(lc, min_size=1, max_size=4)))))
    return family, tuple(path), nh, nlri


@settings(max_examples=150, deadline=None)
@given(announcements())
def test_exabgp_agrees_on_random_announcements(case):
    family, path, nh, nlri = case
    for wire in pack_announcements(family, path, nh, nlri):
        assert exa_view(wire) == l3fab_view(decode_message(wire))


# ------------------------------------------------------------------ ExaBGP encodes, l3fab decodes


def _exa_nlri(family, n, nh: str):
    afi, safi = _XFAM[family]
    if isinstance(n, VpnPrefix):
        rd = XRD(n.rd.pack())
        assert rd._str() == str(n.rd)  # and both write it the same way
        return IPVPN.new(afi, safi, n.prefix.packed, n.prefix.length, Labels(list(n.labels)), rd, nh, Action.ANNOUNCE)
    x = INET(afi, safi, Action.ANNOUNCE)
    x.cidr = CIDR(n.packed, n.length)
    x.nexthop = IP.create(nh)
    return x


def _exa_attributes(path, nh: str | None) -> Attributes:
    a = Attributes()
    for attr in path:
        if isinstance(attr, Origin):
            a.add(XOrigin(attr.origin))
        elif isinstance(attr, AsPath):
            a.add(ASPath([(SEQUENCE if s.type == 2 else SET)([XASN(x) for x in s.asns]) for s in attr.segments]))
        elif isinstance(attr, Med):
            a.add(XMed(attr.med))
        elif isinstance(attr, LocalPref):
            a.add(XLocalPref(attr.local_pref))
        elif isinstance(attr, Communities):
            c = XComms()
            for v in attr.communities:
                c.add(XComm(struct.pack("!I", v)))
            a.add(c)
        elif isinstance(attr, ExtendedCommunities):
            e = XExt()
            for v in attr.communities:
                e.add(XExtC.unpack(v.pack()))
            a.add(e)
        elif isinstance(attr, LargeCommunities):
            lc = XLarge()
            for v in attr.communities:
                lc.add(XLargeC(struct.pack("!III", *v)))
            a.add(lc)
    if nh is not None:
        a.add(XNextHop(nh))
    return a


def _exa_encode(family, path, nh: MpNextHop, nlri) -> list[bytes]:
    native = family == IPV4_UNICAST and not nh.is_ipv6
    attrs = _exa_attributes(path, nh.address if native else None)
    return list(XUpdate([_exa_nlri(family, n, nh.address) for n in nlri], attrs).messages(NEG))


@pytest.mark.parametrize("case", [c for c in CASES if c != "ipv6-unicast-32"])
def test_l3fab_decodes_what_exabgp_announces(case):
    family, nh, nlri = CASES[case]
    messages = _exa_encode(family, PATH, nh, nlri)
    assert messages
    got = [decode_message(m, CodecContext(max_message=65535)) for m in messages]
    assert all(not u.faults and not u.treat_as_withdraw for u in got)
    routes = [(fam, hop, n) for u in got for fam, hop, group in u.reachable() for n in group]
    assert sorted(routes, key=repr) == sorted(((family, nh, n) for n in nlri), key=repr)
    for u in got:
        assert l3fab_view(u)["attrs"] == l3fab_view(Update(attributes=PATH))["attrs"]


@settings(max_examples=100, deadline=None)
@given(announcements())
def test_l3fab_decodes_random_exabgp_announcements(case):
    family, path, nh, nlri = case
    messages = _exa_encode(family, path, nh, nlri)
    got = [decode_message(m, CodecContext(max_message=65535)) for m in messages]
    routes = {(fam, hop, n) for u in got for fam, hop, group in u.reachable() for n in group}
    assert routes == {(family, nh, n) for n in nlri}
    want = l3fab_view(Update(attributes=path))["attrs"]
    want.setdefault("local_pref", 100)  # ExaBGP adds the default LOCAL_PREF on iBGP
    if "large_communities" in want:  # RFC 8092: duplicates are not sent
        want["large_communities"] = sorted(set(want["large_communities"]))
    for u in got:
        assert not u.faults
        assert l3fab_view(u)["attrs"] == want
