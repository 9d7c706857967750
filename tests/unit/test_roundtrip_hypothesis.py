"""Property tests: whatever l3fab encodes, it decodes back to the same content.

Decoded attributes come back in canonical order (MP_REACH/MP_UNREACH first, then by
type code), so the expectation is the input put in that order.  On a session
without 4-octet AS support, 4-octet ASNs travel as AS_TRANS plus AS4_PATH /
AS4_AGGREGATOR (RFC 6793) and must come back merged.
"""
from __future__ import annotations

import ipaddress
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    PathId,
    Prefix,
    RouteDistinguisher,
    UnknownAttribute,
    Update,
    VpnPrefix,
    decode_message,
    pack_announcements,
    pack_withdrawals,
)
from l3fab.speaker.wire.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET, attr_code
from l3fab.speaker.wire.constants import MAX_EXTENDED_MESSAGE_LEN
from l3fab.speaker.wire.nlri import encode_nlri

FAMILIES = (IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies


@st.composite
def prefixes(draw, afi: int) -> Prefix:
    width = 32 if afi == 1 else 128
    length = draw(st.integers(0, width))
    bits = draw(st.integers(0, (1 << width) - 1))
    masked = bits & (((1 << length) - 1) << (width - length)) if length else 0
    return Prefix(afi, length, masked.to_bytes(width // 8, "big"))


ipv4_text = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6_text = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
link_local = st.integers(0, 2**64 - 1).map(lambda n: str(ipaddress.IPv6Address((0xFE80 << 112) | n)))
# A NEXT_HOP attribute must be a unicast address or the route is withdrawn (RFC 4271 6.3).
unicast_v4 = st.integers(0x01000000, 0xDFFFFFFF).map(lambda n: str(ipaddress.IPv4Address(n)))

route_distinguishers = st.one_of(
    st.builds(RouteDistinguisher, st.just(0), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)),
    st.builds(RouteDistinguisher, st.just(1), ipv4_text, st.integers(0, 0xFFFF)),
    st.builds(RouteDistinguisher, st.just(2), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF)),
)


# One label per route: more need the Multiple Labels Capability (RFC 8277 2.1).
label_stacks = st.integers(0, (1 << 20) - 1).map(lambda n: (n,))


@st.composite
def nlri_for(draw, family, addpath: bool):
    if family.is_vpn:
        n = VpnPrefix(draw(route_distinguishers), draw(prefixes(family.afi)), draw(label_stacks))
    else:
        n = draw(prefixes(family.afi))
    return PathId(draw(st.integers(0, 0xFFFFFFFF)), n) if addpath else n


@st.composite
def next_hops(draw, family) -> MpNextHop:
    v6 = MpNextHop(draw(ipv6_text), draw(st.none() | link_local))
    if family.afi == 2:
        return v6
    return draw(st.sampled_from([MpNextHop(draw(unicast_v4)), v6]))  # RFC 8950 for IPv4 families


asn4 = st.integers(0, 0xFFFFFFFF)
asn2 = st.integers(0, 0xFFFF)


@st.composite
def as_paths(draw, confed_asn=asn4) -> AsPath:
    segs = []
    # Confederation segments only ever lead a path (RFC 5065 section 6).
    for _ in range(draw(st.integers(0, 1))):
        segs.append(AsSegment(draw(st.sampled_from([AS_CONFED_SEQUENCE, AS_CONFED_SET])),
                              tuple(draw(st.lists(confed_asn, min_size=1, max_size=4)))))
    for _ in range(draw(st.integers(0, 3))):
        segs.append(AsSegment(draw(st.sampled_from([AS_SEQUENCE, AS_SET])),
                              tuple(draw(st.lists(asn4, min_size=1, max_size=8)))))
    if draw(st.integers(0, 20)) == 0:  # now and then a path longer than one segment holds
        segs.append(AsSegment(AS_SEQUENCE, tuple(range(1, 300))))
    return AsPath(tuple(segs))


ext_communities = st.builds(ExtCommunity, st.integers(0, 255), st.integers(0, 255), st.binary(min_size=6, max_size=6))
UNKNOWN_CODES = [c for c in range(11, 256) if c not in (14, 15, 16, 17, 18, 32)]


@st.composite
def optional_attributes(draw) -> list:
    out = []
    if draw(st.booleans()):
        out.append(Med(draw(st.integers(0, 0xFFFFFFFF))))
    if draw(st.booleans()):
        out.append(LocalPref(draw(st.integers(0, 0xFFFFFFFF))))
    if draw(st.booleans()):
        out.append(AtomicAggregate())
    if draw(st.booleans()):
        out.append(Aggregator(draw(asn4), draw(ipv4_text)))
    if draw(st.booleans()):
        out.append(Communities(tuple(draw(st.lists(asn4, min_size=1, max_size=10)))))
    if draw(st.booleans()):
        out.append(OriginatorId(draw(ipv4_text)))
    if draw(st.booleans()):
        out.append(ClusterList(tuple(draw(st.lists(ipv4_text, min_size=1, max_size=5)))))
    if draw(st.booleans()):
        out.append(ExtendedCommunities(tuple(draw(st.lists(ext_communities, min_size=1, max_size=6)))))
    if draw(st.booleans()):
        out.append(LargeCommunities(tuple(draw(st.lists(st.builds(LargeCommunity, asn4, asn4, asn4), min_size=1,
                                                        max_size=4)))))
    for code in draw(st.lists(st.sampled_from(UNKNOWN_CODES), max_size=2, unique=True)):
        flags = draw(st.sampled_from([0xC0, 0xE0]))
        out.append(UnknownAttribute(flags, code, draw(st.binary(max_size=300))))
    return out


@st.composite
def updates(draw, as_path_strategy=None):
    """(Update, CodecContext) with any mix of IPv4 NLRI/withdrawals, one MP_REACH and one MP_UNREACH."""
    addpath = frozenset(f for f in FAMILIES if draw(st.booleans()))
    ctx = CodecContext(addpath_receive=addpath, max_message=MAX_EXTENDED_MESSAGE_LEN)
    withdrawn = tuple(draw(st.lists(nlri_for(IPV4_UNICAST, IPV4_UNICAST in addpath), max_size=5)))
    nlri = tuple(draw(st.lists(nlri_for(IPV4_UNICAST, IPV4_UNICAST in addpath), max_size=5)))
    attrs: list = []
    reach_family = draw(st.none() | st.sampled_from(FAMILIES))
    if reach_family is not None:
        attrs.append(MpReachNlri(reach_family, draw(next_hops(reach_family)),
                                 tuple(draw(st.lists(nlri_for(reach_family, reach_family in addpath), min_size=1,
                                                     max_size=5)))))
    unreach_family = draw(st.none() | st.sampled_from(FAMILIES))
    if unreach_family is not None:
        wd = tuple(draw(st.lists(nlri_for(unreach_family, unreach_family in addpath), max_size=5)))
        if unreach_family.is_vpn:  # labels are not carried by withdrawals (RFC 8277 2.4)
            wd = tuple(_without_labels(n) for n in wd)
        attrs.append(MpUnreachNlri(unreach_family, wd))
    if nlri or reach_family is not None or draw(st.booleans()):
        attrs.append(Origin(draw(st.integers(0, 2))))
        attrs.append(draw(as_path_strategy if as_path_strategy is not None else as_paths()))
        attrs += draw(optional_attributes())
    if nlri:
        attrs.append(NextHop(draw(unicast_v4)))
    attrs = draw(st.permutations(attrs))
    return Update(withdrawn, tuple(attrs), nlri), ctx


def _without_labels(n):
    if isinstance(n, PathId):
        return PathId(n.path_id, n.nlri._replace(labels=()))
    return n._replace(labels=())


def _canonical(u: Update) -> Update:
    """Attributes in the order the decoder returns them."""
    mp = [a for a in u.attributes if attr_code(a) in (14, 15)]
    rest = sorted((a for a in u.attributes if attr_code(a) not in (14, 15)), key=attr_code)
    return Update(u.withdrawn, tuple(mp + rest), u.nlri)


def _split_long_segments(path: AsPath) -> AsPath:
    """A segment holds at most 255 ASNs: longer ones are sent as several."""
    out = []
    for s in path.segments:
        out += [AsSegment(s.type, s.asns[i : i + 255]) for i in range(0, len(s.asns), 255)]
    return AsPath(tuple(out))


def _join_sequences(path: AsPath) -> tuple:
    """Adjacent AS_SEQUENCE segments mean one sequence; compare them that way."""
    out: list = []
    for s in path.segments:
        if out and s.type == AS_SEQUENCE and out[-1][0] == AS_SEQUENCE:
            out[-1] = (AS_SEQUENCE, out[-1][1] + s.asns)
        else:
            out.append((s.type, s.asns))
    return tuple(out)


def _expected(u: Update) -> Update:
    def canonical(a):
        if isinstance(a, AsPath):
            return _split_long_segments(a)
        if isinstance(a, LargeCommunities):  # RFC 8092: duplicates are not sent
            return LargeCommunities(tuple(dict.fromkeys(a.communities)))
        return a

    return _canonical(Update(u.withdrawn, tuple(canonical(a) for a in u.attributes), u.nlri))


# ------------------------------------------------------------------ round trips


@PROPERTY
@given(updates())
def test_update_round_trip_four_octet_session(case):
    u, ctx = case
    wire = u.encode(ctx)
    back = decode_message(wire, ctx)
    assert back.faults == ()
    assert back == _expected(u)
    # and encoding what was decoded gives the same bytes
    assert back.encode(ctx) == wire


@PROPERTY
@given(updates(as_path_strategy=as_paths(confed_asn=asn2)))
def test_update_round_trip_two_octet_session(case):
    u, ctx = case
    ctx = CodecContext(four_octet_as=False, addpath_receive=ctx.addpath_receive, max_message=ctx.max_message)
    wire = u.encode(ctx)
    back = decode_message(wire, ctx)
    assert back.faults == ()
    want = _expected(u)
    got_path, want_path = back.get(AsPath), want.get(AsPath)
    assert (got_path is None) == (want_path is None)
    if want_path is not None:
        assert _join_sequences(got_path) == _join_sequences(want_path)
    strip = lambda x: tuple(a for a in x.attributes if not isinstance(a, AsPath))  # noqa: E731
    assert strip(back) == strip(want)
    assert (back.withdrawn, back.nlri) == (want.withdrawn, want.nlri)


# ------------------------------------------------------------------ packing


def _many_nlri(family, count: int, seed: int, addpath: bool) -> list:
    rng = random.Random(seed)
    seen, out = set(), []
    width = 32 if family.afi == 1 else 128
    while len(out) < count:
        length = rng.randint(0, width)
        bits = rng.getrandbits(width) & ((((1 << length) - 1) << (width - length)) if length else 0)
        p = Prefix(family.afi, length, bits.to_bytes(width // 8, "big"))
        n = VpnPrefix(RouteDistinguisher(0, rng.randint(0, 9), rng.randint(0, 9)), p,
                      (rng.randint(16, 99999),)) if family.is_vpn else p
        if addpath:
            n = PathId(rng.randint(0, 3), n)
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out


def _decode_all(messages: list[bytes], ctx: CodecContext) -> list[Update]:
    out = []
    for m in messages:
        assert len(m) <= ctx.max_message
        u = decode_message(m, ctx)
        assert u.faults == () and not u.treat_as_withdraw
        out.append(u)
    return out


@settings(max_examples=60, deadline=None)
@given(
    family=st.sampled_from(FAMILIES),
    count=st.integers(0, 2500),
    seed=st.integers(0, 2**32),
    max_message=st.sampled_from([4096, 65535]),
    addpath=st.booleans(),
    data=st.data(),
)
def test_pack_announcements_fits_and_covers_every_nlri(family, count, seed, max_message, addpath, data):
    ctx = CodecContext(max_message=max_message, addpath_receive=frozenset({family}) if addpath else frozenset())
    nlri = _many_nlri(family, count, seed, addpath)
    nh = data.draw(next_hops(family))
    attrs = (Origin(0), data.draw(as_paths())) + tuple(data.draw(optional_attributes()))
    messages = pack_announcements(family, attrs, nh, nlri, ctx)
    got = []
    for u in _decode_all(messages, ctx):
        for fam, hop, group in u.reachable():
            assert fam == family and hop == nh
            got += group
        assert u.withdrawn == () and u.unreachable() == []
    assert got == nlri
    # Packing is greedy: the first NLRI of each message did not fit in the one before.
    for before, after in zip(messages, messages[1:]):
        (_, _, group), = decode_message(after, ctx).reachable()
        assert len(before) + len(encode_nlri(group[0])) > max_message


@settings(max_examples=60, deadline=None)
@given(
    family=st.sampled_from(FAMILIES),
    count=st.integers(0, 4000),
    seed=st.integers(0, 2**32),
    max_message=st.sampled_from([4096, 65535]),
    addpath=st.booleans(),
)
def test_pack_withdrawals_fits_and_covers_every_nlri(family, count, seed, max_message, addpath):
    ctx = CodecContext(max_message=max_message, addpath_receive=frozenset({family}) if addpath else frozenset())
    nlri = _many_nlri(family, count, seed, addpath)
    messages = pack_withdrawals(family, nlri, ctx)
    got = []
    for u in _decode_all(messages, ctx):
        assert u.reachable() == []
        for fam, group in u.unreachable():
            assert fam == family
            got += group
    assert got == [_without_labels(n) if family.is_vpn else n for n in nlri]


def test_pack_announcements_ipv4_fills_4096_octet_messages():
    nlri = [Prefix(1, 32, i.to_bytes(4, "big")) for i in range(3000)]
    messages = pack_announcements(IPV4_UNICAST, (Origin(0), AsPath()), MpNextHop("10.0.0.1"), nlri)
    # 4096 - header 19 - two length fields 4 - attributes 14 = 4059 octets: 811 /32s.
    assert [len(m) for m in messages] == [19 + 4 + 14 + 811 * 5] * 3 + [19 + 4 + 14 + (3000 - 3 * 811) * 5]
    assert sum(len(decode_message(m).nlri) for m in messages) == 3000
