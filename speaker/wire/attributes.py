"""Path attributes (RFC 4271 section 5, RFC 1997, 4360, 4456, 4760, 6793, 8092).

Each attribute is a small frozen object with ``type_code``, its canonical ``flags``
and ``value(ctx)`` returning the encoded value.  Decoding is in
:mod:`speaker.wire.update`, which applies RFC 7606 to whatever goes wrong here.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from .constants import AS_TRANS, AttrFlag, AttrType, Family
from .context import CodecContext
from .extcommunity import ExtCommunity
from .errors import LocalProtocolError
from .nlri import Nlri, encode_nlri

WK = AttrFlag.TRANSITIVE  # well-known: optional=0, transitive=1
OPT_TRANS = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE
OPT_NONTRANS = AttrFlag.OPTIONAL

ORIGIN_IGP, ORIGIN_EGP, ORIGIN_INCOMPLETE = 0, 1, 2
ORIGIN_NAMES = {ORIGIN_IGP: "i", ORIGIN_EGP: "e", ORIGIN_INCOMPLETE: "?"}
ORIGIN_WORDS = {"igp": ORIGIN_IGP, "i": ORIGIN_IGP, "egp": ORIGIN_EGP, "e": ORIGIN_EGP,
                "incomplete": ORIGIN_INCOMPLETE, "?": ORIGIN_INCOMPLETE}

AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET = 1, 2, 3, 4


@dataclass(frozen=True)
class PathAttribute:
    type_code: ClassVar[int] = 0
    flags: ClassVar[int] = 0

    def value(self, ctx: CodecContext) -> bytes:
        raise NotImplementedError

    def pack(self, ctx: CodecContext) -> bytes:
        """Type-length-value, using the extended length form only when needed."""
        v = self.value(ctx)
        return pack_tlv(self.flags, self.type_code, v)


def pack_tlv(flags: int, code: int, value: bytes) -> bytes:
    n = len(value)
    if n > 255:
        if n > 0xFFFF:
            raise LocalProtocolError(f"attribute {code} value of {n} octets is too long")
        return struct.pack("!BBH", flags | AttrFlag.EXTENDED_LENGTH, code, n) + value
    return struct.pack("!BBB", flags & ~AttrFlag.EXTENDED_LENGTH, code, n) + value


@dataclass(frozen=True)
class Origin(PathAttribute):
    origin: int = ORIGIN_IGP
    type_code: ClassVar[int] = AttrType.ORIGIN
    flags: ClassVar[int] = WK

    def value(self, ctx: CodecContext) -> bytes:
        return bytes((self.origin,))

    def __str__(self) -> str:
        return ORIGIN_NAMES.get(self.origin, str(self.origin))


class AsSegment(NamedTuple):
    type: int
    asns: tuple[int, ...]


@dataclass(frozen=True)
class AsPath(PathAttribute):
    segments: tuple[AsSegment, ...] = ()
    type_code: ClassVar[int] = AttrType.AS_PATH
    flags: ClassVar[int] = WK

    @classmethod
    def sequence(cls, *asns: int) -> "AsPath":
        return cls((AsSegment(AS_SEQUENCE, tuple(asns)),) if asns else ())

    def value(self, ctx: CodecContext) -> bytes:
        return encode_as_segments(self.segments, ctx.four_octet_as)

    def path_length(self) -> int:
        """Length for best-path selection: a set counts one, confederation segments none."""
        n = 0
        for seg in self.segments:
            if seg.type == AS_SEQUENCE:
                n += len(seg.asns)
            elif seg.type == AS_SET:
                n += 1
        return n

    def asns(self) -> list[int]:
        return [a for seg in self.segments for a in seg.asns]

    def first_asn(self) -> int | None:
        for seg in self.segments:
            if seg.type == AS_SEQUENCE and seg.asns:
                return seg.asns[0]
            return None
        return None

    def needs_as4(self) -> bool:
        return any(a > 0xFFFF for seg in self.segments for a in seg.asns)

    def prepend(self, asn: int) -> "AsPath":
        segs = list(self.segments)
        if segs and segs[0].type == AS_SEQUENCE and len(segs[0].asns) < 255:
            segs[0] = AsSegment(AS_SEQUENCE, (asn,) + segs[0].asns)
        else:
            segs.insert(0, AsSegment(AS_SEQUENCE, (asn,)))
        return AsPath(tuple(segs))

    def __str__(self) -> str:
        parts = []
        for seg in self.segments:
            inner = " ".join(str(a) for a in seg.asns)
            if seg.type == AS_SEQUENCE:
                parts.append(inner)
            elif seg.type == AS_SET:
                parts.append("{" + inner + "}")
            elif seg.type == AS_CONFED_SEQUENCE:
                parts.append("(" + inner + ")")
            else:
                parts.append("[" + inner + "]")
        return " ".join(p for p in parts if p)


def encode_as_segments(segments: tuple[AsSegment, ...], four_octet: bool) -> bytes:
    out = bytearray()
    fmt = "!%dI" if four_octet else "!%dH"
    for seg in segments:
        asns = seg.asns if four_octet else tuple(a if a <= 0xFFFF else AS_TRANS for a in seg.asns)
        # A segment holds at most 255 ASNs; split longer ones.
        for i in range(0, max(len(asns), 1), 255):
            chunk = asns[i : i + 255]
            out += bytes((seg.type, len(chunk))) + struct.pack(fmt % len(chunk), *chunk)
    return bytes(out)


@dataclass(frozen=True)
class As4Path(PathAttribute):
    """RFC 6793 AS4_PATH: only on sessions without the 4-octet AS capability."""

    segments: tuple[AsSegment, ...] = ()
    type_code: ClassVar[int] = AttrType.AS4_PATH
    flags: ClassVar[int] = OPT_TRANS

    def value(self, ctx: CodecContext) -> bytes:
        return encode_as_segments(self.segments, True)


@dataclass(frozen=True)
class NextHop(PathAttribute):
    address: str = "0.0.0.0"
    type_code: ClassVar[int] = AttrType.NEXT_HOP
    flags: ClassVar[int] = WK

    def value(self, ctx: CodecContext) -> bytes:
        return ipaddress.IPv4Address(self.address).packed


@dataclass(frozen=True)
class Med(PathAttribute):
    med: int = 0
    type_code: ClassVar[int] = AttrType.MULTI_EXIT_DISC
    flags: ClassVar[int] = OPT_NONTRANS

    def value(self, ctx: CodecContext) -> bytes:
        return struct.pack("!I", self.med)


@dataclass(frozen=True)
class LocalPref(PathAttribute):
    local_pref: int = 100
    type_code: ClassVar[int] = AttrType.LOCAL_PREF
    flags: ClassVar[int] = WK

    def value(self, ctx: CodecContext) -> bytes:
        return struct.pack("!I", self.local_pref)


@dataclass(frozen=True)
class AtomicAggregate(PathAttribute):
    type_code: ClassVar[int] = AttrType.ATOMIC_AGGREGATE
    flags: ClassVar[int] = WK

    def value(self, ctx: CodecContext) -> bytes:
        return b""


@dataclass(frozen=True)
class Aggregator(PathAttribute):
    asn: int = 0
    address: str = "0.0.0.0"
    type_code: ClassVar[int] = AttrType.AGGREGATOR
    flags: ClassVar[int] = OPT_TRANS

    def value(self, ctx: CodecContext) -> bytes:
        ip = ipaddress.IPv4Address(self.address).packed
        if ctx.four_octet_as:
            return struct.pack("!I", self.asn) + ip
        return struct.pack("!H", self.asn if self.asn <= 0xFFFF else AS_TRANS) + ip


@dataclass(frozen=True)
class As4Aggregator(PathAttribute):
    asn: int = 0
    address: str = "0.0.0.0"
    type_code: ClassVar[int] = AttrType.AS4_AGGREGATOR
    flags: ClassVar[int] = OPT_TRANS

    def value(self, ctx: CodecContext) -> bytes:
        return struct.pack("!I", self.asn) + ipaddress.IPv4Address(self.address).packed


WELL_KNOWN_COMMUNITIES = {
    0xFFFFFF01: "no-export",
    0xFFFFFF02: "no-advertise",
    0xFFFFFF03: "no-export-subconfed",
    0xFFFF0000: "graceful-shutdown",
    0xFFFF029A: "blackhole",
}


def community_str(c: int) -> str:
    return WELL_KNOWN_COMMUNITIES.get(c) or f"{c >> 16}:{c & 0xFFFF}"


def parse_community(text: str) -> int:
    t = str(text).strip().lower()
    for value, name in WELL_KNOWN_COMMUNITIES.items():
        if t == name:
            return value
    hi, sep, lo = t.partition(":")
    if sep and hi.isdigit() and lo.isdigit() and int(hi) <= 0xFFFF and int(lo) <= 0xFFFF:
        return (int(hi) << 16) | int(lo)
    raise ValueError(f"community {text!r} is not AA:NN (0-65535 each) or a well-known name")


@dataclass(frozen=True)
class Communities(PathAttribute):
    communities: tuple[int, ...] = ()
    type_code: ClassVar[int] = AttrType.COMMUNITIES
    flags: ClassVar[int] = OPT_TRANS

    def value(self, ctx: CodecContext) -> bytes:
        return struct.pack("!%dI" % len(self.communities), *self.communities)

    def __str__(self) -> str:
        return " ".join(community_str(c) for c in self.communities)


@dataclass(frozen=True)
class OriginatorId(PathAttribute):
    originator: str = "0.0.0.0"
    type_code: ClassVar[int] = AttrType.ORIGINATOR_ID
    flags: ClassVar[int] = OPT_NONTRANS

    def value(self, ctx: CodecContext) -> bytes:
        return ipaddress.IPv4Address(self.originator).packed


@dataclass(frozen=True)
class ClusterList(PathAttribute):
    cluster_ids: tuple[str, ...] = ()
    type_code: ClassVar[int] = AttrType.CLUSTER_LIST
    flags: ClassVar[int] = OPT_NONTRANS

    def value(self, ctx: CodecContext) -> bytes:
        return b"".join(ipaddress.IPv4Address(c).packed for c in self.cluster_ids)


@dataclass(frozen=True)
class ExtendedCommunities(PathAttribute):
    communities: tuple[ExtCommunity, ...] = ()
    type_code: ClassVar[int] = AttrType.EXTENDED_COMMUNITIES
    flags: ClassVar[int] = OPT_TRANS

    def value(self, ctx: CodecContext) -> bytes:
        return b"".join(c.pack() for c in self.communities)

    def route_targets(self) -> tuple[ExtCommunity, ...]:
        return tuple(c for c in self.communities if c.is_route_target)

    def __str__(self) -> str:
        return " ".join(str(c) for c in self.communities)


class LargeCommunity(NamedTuple):
    global_admin: int
    local1: int
    local2: int

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local1}:{self.local2}"

    @classmethod
    def parse(cls, text: str) -> "LargeCommunity":
        parts = str(text).strip().split(":")
        if len(parts) != 3 or not all(p.isdigit() and int(p) <= 0xFFFFFFFF for p in parts):
            raise ValueError(f"large community {text!r} is not A:B:C (0-4294967295 each)")
        return cls(*(int(p) for p in parts))


@dataclass(frozen=True)
class LargeCommunities(PathAttribute):
    communities: tuple[LargeCommunity, ...] = ()
    type_code: ClassVar[int] = AttrType.LARGE_COMMUNITY
    flags: ClassVar[int] = OPT_TRANS

    def value(self, ctx: CodecContext) -> bytes:
        # RFC 8092 section 2: duplicate values MUST NOT be transmitted.
        return b"".join(struct.pack("!III", *c) for c in dict.fromkeys(self.communities))

    def __str__(self) -> str:
        return " ".join(str(c) for c in self.communities)


class _NextHopFields(NamedTuple):
    address: str
    link_local: str | None = None


class MpNextHop(_NextHopFields):
    """Next hop of MP_REACH_NLRI: one address, optionally with an IPv6 link-local one.

    The unspecified global address with a link-local one (``::`` + ``fe80::...``) is the
    link-local address alone: a speaker on a link with link-local addresses only has no
    global one to send (RFC 2545 section 3; BIRD 2 sends this form).  Normalised here,
    where every next hop is made (decoded or built), nothing downstream ever sees ``::``
    for a next hop that has a usable address.
    """

    __slots__ = ()

    def __new__(cls, address: str, link_local: str | None = None) -> "MpNextHop":
        if link_local is not None and address == "::":
            address, link_local = link_local, None
        return super().__new__(cls, address, link_local)

    def __str__(self) -> str:
        return self.address if not self.link_local else f"{self.address} ({self.link_local})"

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.address


@dataclass(frozen=True)
class MpReachNlri(PathAttribute):
    """RFC 4760.  ``nlri`` holds Prefix / VpnPrefix / PathId objects."""

    family: Family = None  # type: ignore[assignment]
    next_hop: MpNextHop = None  # type: ignore[assignment]
    nlri: tuple[Nlri, ...] = ()
    type_code: ClassVar[int] = AttrType.MP_REACH_NLRI
    flags: ClassVar[int] = OPT_NONTRANS

    def value(self, ctx: CodecContext) -> bytes:
        nh = encode_mp_next_hop(self.family, self.next_hop)
        head = struct.pack("!HBB", self.family.afi, self.family.safi, len(nh)) + nh + b"\x00"
        return head + b"".join(encode_nlri(n) for n in self.nlri)


@dataclass(frozen=True)
class MpUnreachNlri(PathAttribute):
    family: Family = None  # type: ignore[assignment]
    nlri: tuple[Nlri, ...] = ()
    type_code: ClassVar[int] = AttrType.MP_UNREACH_NLRI
    flags: ClassVar[int] = OPT_NONTRANS

    def value(self, ctx: CodecContext) -> bytes:
        return struct.pack("!HB", self.family.afi, self.family.safi) + b"".join(
            encode_nlri(n, withdraw=True) for n in self.nlri
        )


@dataclass(frozen=True)
class UnknownAttribute(PathAttribute):
    """An attribute l3fab does not interpret.  Optional transitive ones are passed on
    with the Partial bit set (RFC 4271 section 5); others are dropped before sending."""

    attr_flags: int = 0
    code: int = 0
    raw: bytes = b""

    @property
    def transitive(self) -> bool:
        return bool(self.attr_flags & AttrFlag.OPTIONAL and self.attr_flags & AttrFlag.TRANSITIVE)

    def value(self, ctx: CodecContext) -> bytes:
        return self.raw

    def pack(self, ctx: CodecContext) -> bytes:
        return pack_tlv(self.attr_flags, self.code, self.raw)

    def passed_on(self) -> "UnknownAttribute":
        """The form to re-advertise: Partial bit set (RFC 4271 section 9.1.3)."""
        return UnknownAttribute(self.attr_flags | AttrFlag.PARTIAL, self.code, self.raw)


def attr_code(attr: PathAttribute) -> int:
    return attr.code if isinstance(attr, UnknownAttribute) else attr.type_code


def encode_mp_next_hop(family: Family, nh: MpNextHop) -> bytes:
    """Encode the next-hop field for ``family`` (RFC 4760, 4659, 8950)."""
    addr = ipaddress.ip_address(nh.address).packed
    ll = ipaddress.IPv6Address(nh.link_local).packed if nh.link_local else b""
    if ll and len(addr) != 16:
        raise LocalProtocolError(f"a link-local next hop needs an IPv6 global next hop, not {nh.address}")
    if family.is_vpn:
        zero_rd = b"\x00" * 8
        return zero_rd + addr + (zero_rd + ll if ll else b"")
    return addr + ll


def decode_mp_next_hop(family: Family, data: bytes) -> MpNextHop | None:
    """Decode the next-hop field; ``None`` if its length is not one RFC 4760/4659/8950 allow."""
    n = len(data)
    if family.is_vpn:
        if n == 12 and family.afi == 1:
            return MpNextHop(str(ipaddress.IPv4Address(data[8:12])))
        if n == 24:
            return MpNextHop(str(ipaddress.IPv6Address(data[8:24])))
        if n == 48:
            return MpNextHop(str(ipaddress.IPv6Address(data[8:24])), str(ipaddress.IPv6Address(data[32:48])))
        return None
    if n == 4 and family.afi == 1:
        return MpNextHop(str(ipaddress.IPv4Address(data)))
    if n == 16:
        return MpNextHop(str(ipaddress.IPv6Address(data)))
    if n == 32:
        return MpNextHop(str(ipaddress.IPv6Address(data[:16])), str(ipaddress.IPv6Address(data[16:])))
    return None
