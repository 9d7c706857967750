"""UPDATE messages (RFC 4271 section 4.3) with RFC 7606 error handling.

Decoding never raises anything but :class:`UpdateMessageError` ("session reset").
The lighter RFC 7606 outcomes are recorded on the decoded :class:`Update`:
``treat_as_withdraw`` (every NLRI it announces must be handled as withdrawn) and
``faults`` (what was discarded or why the update is treated as a withdrawal).
"""
from __future__ import annotations

import builtins
import ipaddress
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar, overload

from .attributes import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
    OPT_NONTRANS,
    OPT_TRANS,
    WK,
    Aggregator,
    As4Aggregator,
    As4Path,
    AsPath,
    AsSegment,
    AtomicAggregate,
    ClusterList,
    Communities,
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
    PathAttribute,
    UnknownAttribute,
    attr_code,
    decode_mp_next_hop,
    pack_tlv,
)
from .constants import (
    AS_TRANS,
    HEADER_LEN,
    IPV4_UNICAST,
    SUPPORTED_FAMILIES,
    AttrFlag,
    AttrType,
    Family,
    MessageType,
    UpdateSubcode,
)
from .context import DEFAULT_CONTEXT, CodecContext
from .errors import LocalProtocolError, UpdateMessageError
from .extcommunity import ExtCommunity
from .nlri import Nlri, decode_nlri, decode_prefixes, encode_nlri

A = TypeVar("A", bound=PathAttribute)

TREAT_AS_WITHDRAW = "treat-as-withdraw"
ATTRIBUTE_DISCARD = "attribute-discard"


@dataclass(frozen=True)
class Fault:
    """One RFC 7606 decision taken while decoding an UPDATE."""

    action: str
    attr_type: int | None
    subcode: int
    reason: str

    def __str__(self) -> str:
        where = f"attribute {self.attr_type}: " if self.attr_type is not None else ""
        return f"{self.action}: {where}{self.reason}"


@dataclass(frozen=True, slots=True)
class Update:
    """An UPDATE.  ``attributes`` include MP_REACH_NLRI / MP_UNREACH_NLRI when present."""

    withdrawn: tuple[Nlri, ...] = ()
    attributes: tuple[PathAttribute, ...] = ()
    nlri: tuple[Nlri, ...] = ()
    treat_as_withdraw: bool = False
    faults: tuple[Fault, ...] = field(default=(), compare=False)

    type: int = field(default=MessageType.UPDATE, init=False, repr=False, compare=False)

    @overload
    def get(self, cls_or_code: builtins.type[A]) -> A | None: ...

    @overload
    def get(self, cls_or_code: int) -> PathAttribute | None: ...

    def get(self, cls_or_code: builtins.type[PathAttribute] | int) -> PathAttribute | None:
        """The first attribute of a class (or with a type code), or ``None``."""
        for a in self.attributes:
            if (isinstance(cls_or_code, int) and attr_code(a) == cls_or_code) or (
                isinstance(cls_or_code, type) and isinstance(a, cls_or_code)
            ):
                return a
        return None

    def path_attributes(self) -> tuple[PathAttribute, ...]:
        """The attributes describing the path: everything except MP_(UN)REACH_NLRI."""
        return tuple(a for a in self.attributes if not isinstance(a, (MpReachNlri, MpUnreachNlri)))

    def reachable(self) -> list[tuple[Family, MpNextHop | None, tuple[Nlri, ...]]]:
        """(family, next hop, NLRI) groups this UPDATE announces (empty if treat-as-withdraw)."""
        if self.treat_as_withdraw:
            return []
        out: list[tuple[Family, MpNextHop | None, tuple[Nlri, ...]]] = []
        if self.nlri:
            nh = self.get(NextHop)
            out.append((IPV4_UNICAST, MpNextHop(nh.address) if nh else None, self.nlri))
        mp = self.get(MpReachNlri)
        if mp is not None and mp.nlri:
            out.append((mp.family, mp.next_hop, mp.nlri))
        return out

    def unreachable(self) -> list[tuple[Family, tuple[Nlri, ...]]]:
        """(family, NLRI) groups to withdraw, including announcements treated as withdrawn."""
        out: list[tuple[Family, tuple[Nlri, ...]]] = []
        if self.withdrawn:
            out.append((IPV4_UNICAST, self.withdrawn))
        mpu = self.get(MpUnreachNlri)
        if mpu is not None and mpu.nlri:
            out.append((mpu.family, mpu.nlri))
        if self.treat_as_withdraw:
            if self.nlri:
                out.append((IPV4_UNICAST, self.nlri))
            mp = self.get(MpReachNlri)
            if mp is not None and mp.nlri:
                out.append((mp.family, mp.nlri))
        return out

    def end_of_rib(self) -> Family | None:
        """RFC 4724 section 2: the family this End-of-RIB marker is for, else ``None``."""
        if not self.withdrawn and not self.nlri:
            if not self.attributes:
                return IPV4_UNICAST
            if len(self.attributes) == 1 and isinstance(self.attributes[0], MpUnreachNlri):
                if not self.attributes[0].nlri:
                    return self.attributes[0].family
        return None

    def encode(self, ctx: CodecContext = DEFAULT_CONTEXT) -> bytes:
        withdrawn = b"".join(encode_nlri(n) for n in self.withdrawn)
        attrs = encode_attributes(self.attributes, ctx)
        nlri = b"".join(encode_nlri(n) for n in self.nlri)
        return build_update(withdrawn, attrs, nlri, ctx.max_message)


def end_of_rib(family: Family) -> Update:
    if family == IPV4_UNICAST:
        return Update()
    return Update(attributes=(MpUnreachNlri(family, ()),))


def build_update(withdrawn: bytes, attrs: bytes, nlri: bytes, max_message: int = 65535) -> bytes:
    body_len = 4 + len(withdrawn) + len(attrs) + len(nlri)
    total = HEADER_LEN + body_len
    if total > max_message:
        raise LocalProtocolError(f"UPDATE of {total} octets exceeds the negotiated maximum {max_message}")
    return b"".join((
        b"\xff" * 16,
        struct.pack("!HBH", total, MessageType.UPDATE, len(withdrawn)),
        withdrawn,
        struct.pack("!H", len(attrs)),
        attrs,
        nlri,
    ))


def encode_attributes(attributes: tuple[PathAttribute, ...], ctx: CodecContext) -> bytes:
    """Encode path attributes: MP_(UN)REACH first (RFC 7606 section 5.1), then by type code.

    On a session without 4-octet AS support, AS4_PATH / AS4_AGGREGATOR are added
    when the path holds ASNs above 65535 (RFC 6793 section 4.2.2).
    """
    attrs = list(attributes)
    if not ctx.four_octet_as:
        extra: list[PathAttribute] = []
        for a in attrs:
            if isinstance(a, AsPath) and a.needs_as4():
                extra.append(As4Path(tuple(s for s in a.segments if s.type in (AS_SET, AS_SEQUENCE))))
            elif isinstance(a, Aggregator) and a.asn > 0xFFFF:
                extra.append(As4Aggregator(a.asn, a.address))
        attrs += extra
    else:
        attrs = [a for a in attrs if not isinstance(a, (As4Path, As4Aggregator))]

    def order(a: PathAttribute) -> int:
        code = attr_code(a)
        return -1 if code in (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI) else code

    attrs.sort(key=order)
    return b"".join(a.pack(ctx) for a in attrs)


# --------------------------------------------------------------------------- decoding


class _Malformed(Exception):
    """Internal: an attribute is malformed; ``action`` is what RFC 7606 prescribes."""

    def __init__(self, action: str, subcode: int, reason: str) -> None:
        super().__init__(reason)
        self.action = action
        self.subcode = subcode
        self.reason = reason


_RESET = "session-reset"

# type code -> (expected optional+transitive flag bits, RFC 7606 action when malformed)
_KNOWN: dict[int, tuple[int, str]] = {
    AttrType.ORIGIN: (WK, TREAT_AS_WITHDRAW),
    AttrType.AS_PATH: (WK, TREAT_AS_WITHDRAW),
    AttrType.NEXT_HOP: (WK, TREAT_AS_WITHDRAW),
    AttrType.MULTI_EXIT_DISC: (OPT_NONTRANS, TREAT_AS_WITHDRAW),
    AttrType.LOCAL_PREF: (WK, TREAT_AS_WITHDRAW),
    AttrType.ATOMIC_AGGREGATE: (WK, ATTRIBUTE_DISCARD),
    AttrType.AGGREGATOR: (OPT_TRANS, ATTRIBUTE_DISCARD),
    AttrType.COMMUNITIES: (OPT_TRANS, TREAT_AS_WITHDRAW),
    AttrType.ORIGINATOR_ID: (OPT_NONTRANS, TREAT_AS_WITHDRAW),
    AttrType.CLUSTER_LIST: (OPT_NONTRANS, TREAT_AS_WITHDRAW),
    AttrType.MP_REACH_NLRI: (OPT_NONTRANS, _RESET),
    AttrType.MP_UNREACH_NLRI: (OPT_NONTRANS, _RESET),
    AttrType.EXTENDED_COMMUNITIES: (OPT_TRANS, TREAT_AS_WITHDRAW),
    AttrType.AS4_PATH: (OPT_TRANS, ATTRIBUTE_DISCARD),
    AttrType.AS4_AGGREGATOR: (OPT_TRANS, ATTRIBUTE_DISCARD),
    AttrType.LARGE_COMMUNITY: (OPT_TRANS, TREAT_AS_WITHDRAW),
}
_SEVERITY = {ATTRIBUTE_DISCARD: 1, TREAT_AS_WITHDRAW: 2, _RESET: 3}


def _fixed_len(value: bytes, n: int, name: str, action: str) -> None:
    if len(value) != n:
        raise _Malformed(action, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, f"{name} length {len(value)}, expected {n}")


def _multiple_len(value: bytes, n: int, name: str) -> None:
    if not value or len(value) % n:
        raise _Malformed(TREAT_AS_WITHDRAW, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
                         f"{name} length {len(value)} is not a non-zero multiple of {n}")


def _decode_as_segments(value: bytes, four_octet: bool, action: str) -> tuple[AsSegment, ...]:
    """RFC 7606 section 7.2: unknown segment type, overrun, underrun or empty segment."""
    width = 4 if four_octet else 2
    fmt = "!%dI" if four_octet else "!%dH"
    segs = []
    i, end = 0, len(value)
    while i < end:
        if i + 2 > end:
            raise _Malformed(action, UpdateSubcode.MALFORMED_AS_PATH, "AS_PATH segment header truncated")
        stype, count = value[i], value[i + 1]
        if stype not in (AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET):
            raise _Malformed(action, UpdateSubcode.MALFORMED_AS_PATH, f"AS_PATH segment type {stype}")
        if count == 0:
            raise _Malformed(action, UpdateSubcode.MALFORMED_AS_PATH, "AS_PATH segment of length 0")
        j = i + 2 + count * width
        if j > end:
            raise _Malformed(action, UpdateSubcode.MALFORMED_AS_PATH, "AS_PATH segment overruns the attribute")
        segs.append(AsSegment(stype, struct.unpack(fmt % count, value[i + 2 : j])))
        i = j
    return tuple(segs)


def _ipv4(value: bytes) -> str:
    return str(ipaddress.IPv4Address(value))


def _decode_attribute(flags: int, code: int, value: bytes, ctx: CodecContext) -> PathAttribute:
    """Decode one known attribute value or raise :class:`_Malformed`."""
    if code == AttrType.ORIGIN:
        _fixed_len(value, 1, "ORIGIN", TREAT_AS_WITHDRAW)
        if value[0] > 2:
            raise _Malformed(TREAT_AS_WITHDRAW, UpdateSubcode.INVALID_ORIGIN, f"ORIGIN value {value[0]}")
        return Origin(value[0])
    if code == AttrType.AS_PATH:
        return AsPath(_decode_as_segments(value, ctx.four_octet_as, TREAT_AS_WITHDRAW))
    if code == AttrType.NEXT_HOP:
        _fixed_len(value, 4, "NEXT_HOP", TREAT_AS_WITHDRAW)
        addr = ipaddress.IPv4Address(value)
        if addr.is_unspecified or addr.is_multicast or int(addr) == 0xFFFFFFFF:
            raise _Malformed(TREAT_AS_WITHDRAW, UpdateSubcode.INVALID_NEXT_HOP,
                             f"NEXT_HOP {addr} is not a unicast address")
        return NextHop(str(addr))
    if code == AttrType.MULTI_EXIT_DISC:
        _fixed_len(value, 4, "MULTI_EXIT_DISC", TREAT_AS_WITHDRAW)
        return Med(struct.unpack("!I", value)[0])
    if code == AttrType.LOCAL_PREF:
        _fixed_len(value, 4, "LOCAL_PREF", TREAT_AS_WITHDRAW)
        return LocalPref(struct.unpack("!I", value)[0])
    if code == AttrType.ATOMIC_AGGREGATE:
        _fixed_len(value, 0, "ATOMIC_AGGREGATE", ATTRIBUTE_DISCARD)
        return AtomicAggregate()
    if code == AttrType.AGGREGATOR:
        if ctx.four_octet_as:
            _fixed_len(value, 8, "AGGREGATOR", ATTRIBUTE_DISCARD)
            return Aggregator(struct.unpack("!I", value[:4])[0], _ipv4(value[4:]))
        _fixed_len(value, 6, "AGGREGATOR", ATTRIBUTE_DISCARD)
        return Aggregator(struct.unpack("!H", value[:2])[0], _ipv4(value[2:]))
    if code == AttrType.COMMUNITIES:
        _multiple_len(value, 4, "COMMUNITIES")
        return Communities(struct.unpack("!%dI" % (len(value) // 4), value))
    if code == AttrType.ORIGINATOR_ID:
        _fixed_len(value, 4, "ORIGINATOR_ID", TREAT_AS_WITHDRAW)
        return OriginatorId(_ipv4(value))
    if code == AttrType.CLUSTER_LIST:
        _multiple_len(value, 4, "CLUSTER_LIST")
        return ClusterList(tuple(_ipv4(value[i : i + 4]) for i in range(0, len(value), 4)))
    if code == AttrType.EXTENDED_COMMUNITIES:
        _multiple_len(value, 8, "EXTENDED_COMMUNITIES")
        return ExtendedCommunities(tuple(ExtCommunity.unpack(value[i : i + 8]) for i in range(0, len(value), 8)))
    if code == AttrType.LARGE_COMMUNITY:
        _multiple_len(value, 12, "LARGE_COMMUNITY")
        # RFC 8092 section 2: a receiver MUST silently remove duplicate values.
        return LargeCommunities(tuple(dict.fromkeys(
            LargeCommunity(*struct.unpack_from("!III", value, i)) for i in range(0, len(value), 12))))
    if code == AttrType.AS4_PATH:
        segs = _decode_as_segments(value, True, ATTRIBUTE_DISCARD)
        if any(s.type in (AS_CONFED_SEQUENCE, AS_CONFED_SET) for s in segs):
            raise _Malformed(ATTRIBUTE_DISCARD, UpdateSubcode.MALFORMED_AS_PATH, "AS4_PATH with confederation segment")
        return As4Path(segs)
    if code == AttrType.AS4_AGGREGATOR:
        _fixed_len(value, 8, "AS4_AGGREGATOR", ATTRIBUTE_DISCARD)
        return As4Aggregator(struct.unpack("!I", value[:4])[0], _ipv4(value[4:]))
    if code == AttrType.MP_REACH_NLRI:
        return _decode_mp_reach(value, ctx)
    if code == AttrType.MP_UNREACH_NLRI:
        return _decode_mp_unreach(value, ctx)
    raise AssertionError(code)


def _family(value: bytes, what: str) -> Family:
    afi, safi = struct.unpack("!HB", value[:3])
    return Family(afi, safi)


def _decode_mp_reach(value: bytes, ctx: CodecContext) -> MpReachNlri | UnknownAttribute:
    """RFC 4760 / RFC 7606 section 7.11: a bad next-hop length or NLRI means session reset."""
    if len(value) < 5:
        raise _Malformed(_RESET, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, f"MP_REACH_NLRI of {len(value)} octets")
    family = _family(value, "MP_REACH_NLRI")
    nhlen = value[3]
    if 4 + nhlen + 1 > len(value):
        raise _Malformed(_RESET, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
                         f"MP_REACH_NLRI next-hop length {nhlen} overruns")
    if family not in SUPPORTED_FAMILIES:
        return UnknownAttribute(OPT_NONTRANS, AttrType.MP_REACH_NLRI, bytes(value))
    nh = decode_mp_next_hop(family, value[4 : 4 + nhlen])
    if nh is None:
        raise _Malformed(_RESET, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
                         f"MP_REACH_NLRI next-hop length {nhlen} invalid for {family}")
    nlri = decode_nlri(family, value[5 + nhlen :], family in ctx.addpath_receive)
    return MpReachNlri(family, nh, tuple(nlri))


def _decode_mp_unreach(value: bytes, ctx: CodecContext) -> MpUnreachNlri | UnknownAttribute:
    if len(value) < 3:
        raise _Malformed(_RESET, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, f"MP_UNREACH_NLRI of {len(value)} octets")
    family = _family(value, "MP_UNREACH_NLRI")
    if family not in SUPPORTED_FAMILIES:
        return UnknownAttribute(OPT_NONTRANS, AttrType.MP_UNREACH_NLRI, bytes(value))
    nlri = decode_nlri(family, value[3:], family in ctx.addpath_receive, withdraw=True)
    return MpUnreachNlri(family, tuple(nlri))


def _merge_as4(attrs: dict[int, PathAttribute], faults: list[Fault], ctx: CodecContext) -> None:
    """RFC 6793 section 4.2.3: rebuild the 4-octet path on a 2-octet session."""
    as4_path = attrs.pop(AttrType.AS4_PATH, None)
    as4_agg = attrs.pop(AttrType.AS4_AGGREGATOR, None)
    if ctx.four_octet_as:
        if as4_path is not None or as4_agg is not None:
            faults.append(Fault(ATTRIBUTE_DISCARD, AttrType.AS4_PATH, 0,
                                "AS4_PATH/AS4_AGGREGATOR on a 4-octet session"))
        return
    agg = attrs.get(AttrType.AGGREGATOR)
    if isinstance(as4_agg, As4Aggregator):  # the only type decoded for AS4_AGGREGATOR
        if isinstance(agg, Aggregator) and agg.asn != AS_TRANS:
            return  # the AGGREGATOR is authoritative; AS4_PATH is ignored as well
        if isinstance(agg, Aggregator):
            attrs[AttrType.AGGREGATOR] = Aggregator(as4_agg.asn, as4_agg.address)
    path = attrs.get(AttrType.AS_PATH)
    if not isinstance(as4_path, As4Path) or not isinstance(path, AsPath):  # As4Path: decoded for AS4_PATH
        return
    want = path.path_length()
    have = As4Path_length(as4_path.segments)
    if want < have:
        return
    keep: list[AsSegment] = []
    budget = want - have
    for seg in path.segments:
        if budget <= 0 and seg.type in (AS_SET, AS_SEQUENCE):
            break
        if seg.type == AS_SEQUENCE:
            take = seg.asns[:budget]
            keep.append(AsSegment(AS_SEQUENCE, take))
            budget -= len(take)
        elif seg.type == AS_SET:
            keep.append(seg)
            budget -= 1
        else:
            keep.append(seg)
    merged = keep + list(as4_path.segments)
    # join adjacent sequences
    joined: list[AsSegment] = []
    for seg in merged:
        if (joined and seg.type == AS_SEQUENCE and joined[-1].type == AS_SEQUENCE
                and len(joined[-1].asns) + len(seg.asns) <= 255):
            joined[-1] = AsSegment(AS_SEQUENCE, joined[-1].asns + seg.asns)
        else:
            joined.append(seg)
    attrs[AttrType.AS_PATH] = AsPath(tuple(joined))


def As4Path_length(segments: tuple[AsSegment, ...]) -> int:
    return AsPath(segments).path_length()


def decode_update(body: bytes, ctx: CodecContext = DEFAULT_CONTEXT) -> Update:
    """Decode an UPDATE body (the message without its 19-octet header)."""
    n = len(body)
    if n < 4:
        raise UpdateMessageError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"", "UPDATE shorter than 4 octets")
    wlen = (body[0] << 8) | body[1]
    if 2 + wlen + 2 > n:
        raise UpdateMessageError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"",
                                 f"withdrawn routes length {wlen} overruns the message")
    alen = (body[2 + wlen] << 8) | body[3 + wlen]
    astart = 4 + wlen
    aend = astart + alen
    if aend > n:
        raise UpdateMessageError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"",
                                 f"total path attribute length {alen} overruns the message")
    ipv4_addpath = IPV4_UNICAST in ctx.addpath_receive
    withdrawn = decode_prefixes(1, body[2 : 2 + wlen], ipv4_addpath)
    nlri = decode_prefixes(1, body[aend:], ipv4_addpath)

    faults: list[Fault] = []
    attrs: dict[int, PathAttribute] = {}
    seen: set[int] = set()  # type codes met so far, kept or not (RFC 7606 section 3 (g))
    worst = 0
    mp_seen = False
    walk_stopped = False
    i = astart
    while i < aend:
        # RFC 7606 section 4: too few octets for an attribute header, or a length that
        # overruns: treat-as-withdraw, relying on the total length to find the NLRI.
        if aend - i < 3:
            faults.append(Fault(TREAT_AS_WITHDRAW, None, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
                                "trailing octets too short for an attribute"))
            worst = max(worst, 2)
            walk_stopped = True
            break
        flags, code = body[i], body[i + 1]
        if flags & AttrFlag.EXTENDED_LENGTH:
            if aend - i < 4:
                faults.append(Fault(TREAT_AS_WITHDRAW, code, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
                                    "extended-length header truncated"))
                worst = max(worst, 2)
                walk_stopped = True
                break
            vlen = (body[i + 2] << 8) | body[i + 3]
            vstart = i + 4
        else:
            vlen = body[i + 2]
            vstart = i + 3
        vend = vstart + vlen
        if vend > aend:
            if code in (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI):
                raise UpdateMessageError(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, bytes(body[i:aend]),
                                         f"attribute {code} length {vlen} overruns the attributes")
            faults.append(Fault(TREAT_AS_WITHDRAW, code, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
                                f"length {vlen} overruns the attributes"))
            worst = max(worst, 2)
            walk_stopped = True
            break
        value = body[vstart:vend]
        raw_attr = bytes(body[i:vend])
        i = vend

        known = _KNOWN.get(code)
        if known is None:
            if not flags & AttrFlag.OPTIONAL:
                raise UpdateMessageError(UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, raw_attr,
                                         f"unrecognized well-known attribute {code}")
            if code in seen:
                faults.append(Fault(ATTRIBUTE_DISCARD, code, 0, "repeated attribute"))
                continue
            seen.add(code)
            if flags & AttrFlag.TRANSITIVE:
                attrs[code] = UnknownAttribute(flags & ~AttrFlag.EXTENDED_LENGTH, code, bytes(value))
            # unknown optional non-transitive: quietly ignored (RFC 4271 section 5)
            continue
        expected_flags, action = known
        is_mp = code in (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI)
        if code in seen:
            # RFC 7606 section 3 (g): only the first copy counts, even when it was
            # itself malformed and dropped.
            if is_mp:
                raise UpdateMessageError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"", f"attribute {code} appears twice")
            faults.append(Fault(ATTRIBUTE_DISCARD, code, 0, "repeated attribute"))
            continue
        seen.add(code)
        try:
            if (flags & (AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE)) != expected_flags or (
                flags & AttrFlag.PARTIAL and not expected_flags & AttrFlag.OPTIONAL
            ):
                raise _Malformed(action, UpdateSubcode.ATTRIBUTE_FLAGS_ERROR,
                                 f"flags 0x{flags:02x} conflict with the attribute type")
            attr = _decode_attribute(flags, code, value, ctx)
        except _Malformed as m:
            if m.action == _RESET:
                raise UpdateMessageError(m.subcode, raw_attr, m.reason) from None
            action = m.action
            if code == AttrType.NEXT_HOP and not nlri:
                # RFC 4760 section 3: with no NLRI field the NEXT_HOP SHOULD be ignored, so
                # a malformed one must not withdraw what MP_REACH_NLRI announces.
                action = ATTRIBUTE_DISCARD
            faults.append(Fault(action, code, m.subcode, m.reason))
            worst = max(worst, _SEVERITY[action])
            continue
        except UpdateMessageError as e:  # NLRI inside MP_(UN)REACH could not be parsed
            raise UpdateMessageError(e.subcode, raw_attr, e.reason) from None
        if is_mp:
            mp_seen = True
        attrs[code] = attr

    _merge_as4(attrs, faults, ctx)

    mp_reach = attrs.get(AttrType.MP_REACH_NLRI)
    announces = bool(nlri) or (isinstance(mp_reach, MpReachNlri) and bool(mp_reach.nlri))
    if announces and worst < 2:
        missing = [t for t in (AttrType.ORIGIN, AttrType.AS_PATH) if t not in attrs]
        if nlri and AttrType.NEXT_HOP not in attrs:
            missing.append(AttrType.NEXT_HOP)
        if missing:
            faults.append(Fault(TREAT_AS_WITHDRAW, int(missing[0]), UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE,
                                f"missing well-known attribute(s) {', '.join(str(int(m)) for m in missing)}"))
            worst = 2
    if walk_stopped and not mp_seen and not nlri:
        # The attribute walk stopped early, so an MP_REACH/MP_UNREACH after the fault
        # cannot be located: treat-as-withdraw is impossible, session reset is the only
        # safe outcome (RFC 7606 sections 4 and 5.3).
        raise UpdateMessageError(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"",
                                 "malformed attribute list and no locatable NLRI")
    ordered = tuple(attrs[k] for k in sorted(attrs, key=lambda c: -1 if c in (14, 15) else c))
    return Update(tuple(withdrawn), ordered, tuple(nlri), worst >= 2, tuple(faults))


# --------------------------------------------------------------------------- packing


class Packed(NamedTuple):
    """What :func:`pack_reachable` made: the UPDATEs, and the NLRI no UPDATE can carry."""

    messages: list[bytes]
    refused: list[int]  # indexes into the NLRI given, in order
    reason: str  # why (the first reason met); "" when nothing was refused


def pack_reachable(family: Family, attributes: tuple[PathAttribute, ...], next_hop: MpNextHop | None,
                   nlri: Sequence[Nlri], ctx: CodecContext = DEFAULT_CONTEXT) -> Packed:
    """Encode as few UPDATEs as fit ``ctx.max_message`` announcing ``nlri`` with shared attributes.

    IPv4 unicast with an IPv4 next hop uses the NLRI field; every other case uses
    MP_REACH_NLRI (RFC 4760, and RFC 8950 for IPv4 with an IPv6 next hop).

    What cannot be encoded is refused, never raised: NLRI that do not fit in one
    message with these attributes (attributes received over an extended-message
    session and sent to a peer without it), or the whole group when the attributes
    or the next hop themselves cannot be expressed.  The caller decides what a refused
    route means (the Adj-RIB-Out does not advertise it); everything else is packed.
    """
    base = tuple(a for a in attributes if not isinstance(a, (MpReachNlri, MpUnreachNlri, NextHop)))
    limit = ctx.max_message
    fixed: bytes
    mp_head = b""
    try:
        if family == IPV4_UNICAST and next_hop is not None and not next_hop.is_ipv6:
            fixed = encode_attributes(base + (NextHop(next_hop.address),), ctx)
            overhead = HEADER_LEN + 4 + len(fixed)
        else:
            if next_hop is None:
                raise LocalProtocolError(f"{family} announcement needs a next hop")
            fixed = encode_attributes(base, ctx)
            mp_head = MpReachNlri(family, next_hop, ()).value(ctx)
            # MP_REACH_NLRI header (4 octets: extended length, the NLRI may need it)
            overhead = HEADER_LEN + 4 + len(fixed) + 4 + len(mp_head)
    except LocalProtocolError as err:
        return Packed([], list(range(len(nlri))), str(err))
    room = limit - overhead
    encoded: list[bytes] = []
    refused: list[int] = []
    reason = ""
    for i, n in enumerate(nlri):
        try:
            e = encode_nlri(n)
        except LocalProtocolError as err:
            refused.append(i)
            reason = reason or str(err)
            continue
        if len(e) > room:
            refused.append(i)
            reason = reason or (f"an UPDATE with these path attributes and next hop needs {overhead + len(e)} "
                                f"octets, more than the {limit} the session allows")
            continue
        encoded.append(e)
    out: list[bytes] = []
    if encoded:
        for chunk in _chunks(encoded, room):
            if mp_head:
                mp = pack_tlv(OPT_NONTRANS, AttrType.MP_REACH_NLRI, mp_head + chunk)
                out.append(build_update(b"", mp + fixed, b"", limit))
            else:
                out.append(build_update(b"", fixed, chunk, limit))
    return Packed(out, refused, reason)


def pack_announcements(family: Family, attributes: tuple[PathAttribute, ...], next_hop: MpNextHop | None,
                       nlri: Sequence[Nlri], ctx: CodecContext = DEFAULT_CONTEXT) -> list[bytes]:
    """:func:`pack_reachable` for callers that cannot skip a route: raises
    :class:`LocalProtocolError` when any of ``nlri`` cannot be sent."""
    packed = pack_reachable(family, attributes, next_hop, nlri, ctx)
    if packed.refused:
        raise LocalProtocolError(packed.reason)
    return packed.messages


def pack_withdrawals(family: Family, nlri: Sequence[Nlri], ctx: CodecContext = DEFAULT_CONTEXT) -> list[bytes]:
    encoded = [encode_nlri(n, withdraw=True) for n in nlri]
    out: list[bytes] = []
    if family == IPV4_UNICAST:
        room = ctx.max_message - HEADER_LEN - 4
        for chunk in _chunks(encoded, room):
            out.append(build_update(chunk, b"", b"", ctx.max_message))
        return out
    head = struct.pack("!HB", family.afi, family.safi)
    room = ctx.max_message - HEADER_LEN - 4 - 4 - len(head)
    for chunk in _chunks(encoded, room):
        out.append(build_update(b"", pack_tlv(OPT_NONTRANS, AttrType.MP_UNREACH_NLRI, head + chunk), b"",
                                ctx.max_message))
    return out


def _chunks(encoded: list[bytes], room: int) -> Iterator[bytes]:
    if room <= 0:
        raise LocalProtocolError("path attributes leave no room for NLRI in one UPDATE")
    buf: list[bytes] = []
    size = 0
    for e in encoded:
        if size + len(e) > room and buf:
            yield b"".join(buf)
            buf, size = [], 0
        buf.append(e)
        size += len(e)
    if buf:
        yield b"".join(buf)
