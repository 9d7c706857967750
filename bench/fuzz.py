"""Structure-aware mutation fuzzer over the BGP decoder, the session FSM and the table.

``python -m l3fab.bench.fuzz --messages N --seed S`` (``make fuzz`` runs a long one).

Seeds are what real peers sent (the FRR, GoBGP and ExaBGP captures in
``tests/unit/data``, the OPENs included) plus a few shapes the captures lack, built
with the codec (ADD-PATH, a 2-octet AS session, BIRD's ``::`` + link-local next hop,
AS4_PATH, RFC 9003 text).  Each message is a seed taken apart into its fields and
mutated 1-3 times: bit flips and octet edits, length fields set to edge values (the
header's, the withdrawn and attribute lengths, one attribute's, a prefix length, the
MP_REACH next-hop length, a capability's), attributes inserted (from every seed, or
made up), duplicated, truncated, extended, re-flagged, shuffled or multiplied, NLRI and
next hops edited, messages spliced at the octet level or by swapping their attributes,
grown to the 4096 and 65535 edges, and sometimes followed by a second message in the
same chunk.

The message is fed, as if the peer had sent it, to a :class:`Session` (the l3fab side,
configured as for the captures) joined to a peer :class:`Session` whose OPEN is a real
peer's or a synthetic one; what the l3fab side sends back is fed to the peer.  Usually
the pair is Established; sometimes the l3fab side is in OpenSent or OpenConfirm.  Every
UPDATE the l3fab side decodes also goes into a :class:`RibManager` (Adj-RIB-In, the
decision process) and out again, packed for two other peers (one without extended
messages and with 2-octet AS numbers, one with both), as the daemon would.

The expected outcomes are a NOTIFICATION and the session down, treat-as-withdraw,
attribute discard, or the message accepted.  Two kinds of findings are reported:

* **escapes**: an exception out of the session, the codec or the table;
* **violations**: a broken invariant: the session went down without exactly one
  NOTIFICATION (or sent one and stayed up), ``decode_message`` rejected the message but
  the session sent a different error (or none), the peer's session rejected what
  l3fab sent (a NOTIFICATION too long, say), or an UPDATE l3fab packed for another peer
  does not decode cleanly there or exceeds its maximum size.

Every finding is printed once per distinct place, with the input as hex and how to
replay it (``--replay HEX --profile NAME --state STATE``).
"""
from __future__ import annotations

import argparse
import logging
import pickle
import random
import struct
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from l3fab.lab.capture import read_capture
from l3fab.speaker.session import Session, SessionConfig
from l3fab.speaker.session.events import (
    Disconnect,
    NotificationReceived,
    NotificationSent,
    Send,
    State,
    UpdateReceived,
)
from l3fab.speaker.session.negotiated import Negotiated, negotiate
from l3fab.speaker.table.export import ExportContext
from l3fab.speaker.table.manager import PeerTableConfig, RibManager, RibSettings
from l3fab.speaker.table.path import Source
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    KEEPALIVE,
    VPNV4,
    VPNV6,
    Aggregator,
    AsPath,
    AsSegment,
    AtomicAggregate,
    ClusterList,
    CodecContext,
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
    Notification,
    Open,
    Origin,
    OriginatorId,
    PathId,
    Prefix,
    RemoteProtocolError,
    RouteDistinguisher,
    RouteRefresh,
    Update,
    VpnPrefix,
    decode_message,
    route_target,
)
from l3fab.speaker.wire.attributes import As4Aggregator, As4Path
from l3fab.speaker.wire.capabilities import (
    ADDPATH_RECEIVE,
    ADDPATH_SEND,
    AddPathCap,
    Capability,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHop,
    FourOctetAs,
    GracefulRestartCap,
    Multiprotocol,
    RouteRefreshCap,
    UnknownCapability,
)
from l3fab.speaker.wire.open import decode_open

DATA = Path(__file__).resolve().parents[1] / "tests" / "unit" / "data"
ALL = (IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6)
MARKER = b"\xff" * 16
US_AS, US_ID, PEER_AS, PEER_ID = 65001, "10.0.0.1", 65002, "10.0.0.2"
TABLE_RESET = 2000  # messages between fresh RibManagers: the table stays small


# ====================================================================== seeds


def capture_seeds(data: Path = DATA) -> dict[str, list[bytes]]:
    """file stem -> the messages a real peer sent (tests/unit/data, see its README)."""
    return {p.stem: read_capture(p) for p in sorted(data.glob("*.hex"))}


def synthetic_seeds() -> list[bytes]:
    """Shapes the captures lack, built with the codec (each one valid on some session)."""
    rd = RouteDistinguisher(0, 65002, 7)
    v4 = (Prefix.parse("10.9.0.0/16"), Prefix.parse("192.0.2.128/25"), Prefix.parse("0.0.0.0/0"))
    v6 = (Prefix.parse("2001:db8:9::/48"), Prefix.parse("2001:db8::1/128"))
    path = (Origin(2), AsPath((AsSegment(2, (65002, 4200000001)), AsSegment(1, (7, 8)))), Med(5), LocalPref(100),
            AtomicAggregate(), Aggregator(4200000001, "10.0.0.9"), Communities((0xFFFFFF01, 65002 << 16 | 1)),
            OriginatorId("10.0.0.2"), ClusterList(("10.0.0.3",)),
            ExtendedCommunities((route_target("65002:100"),)), LargeCommunities((LargeCommunity(65002, 1, 2),)))
    base = path[:2]
    ll = "fe80::18f3:44ff:fe43:8ac9"
    updates = [
        # BIRD 2 on a link-local-only link: :: + link-local
        Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop("2001:db8::2", ll), v6),) + base),
        Update(attributes=(MpReachNlri(VPNV6, MpNextHop("2001:db8::2", ll),
                                       (VpnPrefix(rd, v6[0], (16,)),)),) + path),
        Update(attributes=(MpReachNlri(VPNV4, MpNextHop("2001:db8::2"), (VpnPrefix(rd, v4[0], (1048575,)),)),)
               + base),
        Update(withdrawn=v4, attributes=path + (NextHop("10.0.0.2"),), nlri=v4[:2]),
        Update(attributes=(MpUnreachNlri(IPV6_UNICAST, v6), MpReachNlri(IPV4_UNICAST, MpNextHop("2001:db8::2"), v4))
               + base),
    ]
    out = [u.encode(CodecContext()) for u in updates]
    # the one that BIRD really sends: 32 octets, the first 16 of them zero
    out.append(bytes.fromhex(
        "ffffffffffffffffffffffffffffffff" "0051" "02" "0000" "003a"
        "900e0029" "0002" "01" "20" + "00" * 16 + "fe80000000000000" "18f344fffe438ac9" "00" "30" "20010db80009"
        "40010100" "400206" "020100" "00fdea"))
    # a 2-octet AS session: AS_TRANS, AS4_PATH and AS4_AGGREGATOR
    two = CodecContext(four_octet_as=False)
    out.append(Update(attributes=(Origin(0), AsPath.sequence(65002, 4200000001), NextHop("10.0.0.2"),
                                  Aggregator(4200000001, "10.0.0.9")), nlri=v4[:1]).encode(two))
    out.append(Update(attributes=(Origin(0), AsPath.sequence(23456), NextHop("10.0.0.2"),
                                  As4Path((AsSegment(2, (4200000001,)),)), As4Aggregator(4200000001, "10.0.0.9")),
                      nlri=v4[1:2]).encode(CodecContext()))
    # ADD-PATH (RFC 7911) NLRI
    out.append(Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop("2001:db8::2"),
                                              (PathId(1, v6[0]), PathId(2, v6[0]))),) + base).encode())
    out.append(Update(withdrawn=(PathId(7, v4[0]),), attributes=base + (NextHop("10.0.0.2"),),
                      nlri=(PathId(1, v4[1]),)).encode())
    out += [Notification.shutdown("planned maintenance \u00e9").encode(), Notification(6, 4, b"\x05\x1b[2Jx").encode(),
            Notification(3, 1).encode(), Notification(2, 7, bytes((0x45, 0x04, 0, 1, 1, 1))).encode(),
            RouteRefresh(IPV4_UNICAST).encode(), RouteRefresh(VPNV6, 1).encode(), RouteRefresh(VPNV4, 2).encode(),
            KEEPALIVE.encode()]
    return out


# ====================================================================== message shapes


@dataclass
class Attr:
    flags: int
    code: int
    value: bytes
    length: int | None = None  # a wrong length field to write, when set

    def pack(self) -> bytes:
        n = len(self.value) if self.length is None else self.length
        flags = self.flags
        if len(self.value) > 255 and self.length is None:
            flags |= 0x10
        if flags & 0x10:
            return struct.pack("!BBH", flags, self.code, n & 0xFFFF) + self.value
        return struct.pack("!BBB", flags, self.code, n & 0xFF) + self.value


@dataclass
class UpdateShape:
    withdrawn: bytes
    attrs: list[Attr]
    nlri: bytes
    wlen: int | None = None  # wrong length fields to write, when set
    alen: int | None = None

    def body(self) -> bytes:
        attrs = b"".join(a.pack() for a in self.attrs)
        wlen = len(self.withdrawn) if self.wlen is None else self.wlen
        alen = len(attrs) if self.alen is None else self.alen
        return struct.pack("!H", wlen & 0xFFFF) + self.withdrawn + struct.pack("!H", alen & 0xFFFF) + attrs + self.nlri


def parse_update(body: bytes) -> UpdateShape | None:
    """The fields of a well-framed UPDATE body, or None."""
    n = len(body)
    if n < 4:
        return None
    wlen = struct.unpack_from("!H", body)[0]
    if 2 + wlen + 2 > n:
        return None
    alen = struct.unpack_from("!H", body, 2 + wlen)[0]
    i, end = 4 + wlen, 4 + wlen + alen
    if end > n:
        return None
    attrs = []
    while i < end:
        if end - i < 3:
            return None
        flags, code = body[i], body[i + 1]
        if flags & 0x10:
            if end - i < 4:
                return None
            vlen, start = struct.unpack_from("!H", body, i + 2)[0], i + 4
        else:
            vlen, start = body[i + 2], i + 3
        if start + vlen > end:
            return None
        attrs.append(Attr(flags, code, bytes(body[start : start + vlen])))
        i = start + vlen
    return UpdateShape(bytes(body[2 : 2 + wlen]), attrs, bytes(body[end:]))


def frame(msg_type: int, body: bytes, length: int | None = None) -> bytes:
    total = 19 + len(body) if length is None else length
    if total > 0xFFFF and length is None:  # no length field can say it: cut to the largest message
        body = body[: 0xFFFF - 19]
        total = 0xFFFF
    return MARKER + struct.pack("!HB", total & 0xFFFF, msg_type) + body


def split(msg: bytes) -> tuple[int, bytes]:
    return (msg[18] if len(msg) > 18 else 0), bytes(msg[19:])


# ====================================================================== the mutator

INTERESTING8 = (0, 1, 2, 3, 4, 7, 8, 0x0F, 0x10, 0x1F, 0x20, 0x21, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xC0, 0xFE, 0xFF)
PREFIX_LENGTHS = (0, 1, 7, 8, 24, 25, 31, 32, 33, 48, 64, 65, 88, 89, 112, 120, 128, 129, 152, 176, 200, 255)
ATTR_CODES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 20, 22, 25, 26, 29, 32, 35, 40, 128, 255)
FAMILIES = ((1, 1), (2, 1), (1, 128), (2, 128), (1, 2), (1, 4), (2, 4), (25, 70), (16388, 71), (0, 0), (3, 1))
NEXT_HOP_LENGTHS = (0, 1, 4, 8, 12, 15, 16, 17, 20, 24, 28, 32, 33, 36, 40, 48, 64, 255)


class Mutator:
    def __init__(self, seeds: list[bytes]) -> None:
        self.seeds = seeds
        self.updates = [m for m in seeds if len(m) > 18 and m[18] == 2]
        self.opens = [m for m in seeds if len(m) > 18 and m[18] == 1]
        self.attr_pool: list[Attr] = []
        self.cap_pool: list[bytes] = []
        for m in self.updates:
            shape = parse_update(m[19:])
            if shape is not None:
                self.attr_pool += shape.attrs
        for m in self.opens:
            self.cap_pool += _capabilities(m[19:])
        self.ops: list[tuple[str, Callable[[random.Random, bytes], bytes | None]]] = [
            ("bit-flip", self.bit_flip), ("octet", self.octet), ("header-length", self.header_length),
            ("type", self.type_change), ("truncate", self.truncate), ("extend", self.extend),
            ("insert", self.insert), ("delete", self.delete), ("splice", self.splice), ("grow", self.grow),
            ("attr-insert", self.attr_insert), ("attr-insert", self.attr_insert),
            ("attr-duplicate", self.attr_duplicate), ("attr-delete", self.attr_delete),
            ("attr-truncate", self.attr_truncate), ("attr-extend", self.attr_extend),
            ("attr-length", self.attr_length), ("attr-length", self.attr_length), ("attr-flags", self.attr_flags),
            ("attr-flip", self.attr_flip), ("attr-shuffle", self.attr_shuffle), ("attr-many", self.attr_many),
            ("attr-swap", self.attr_swap), ("update-lengths", self.update_lengths), ("nlri", self.nlri_edit),
            ("nlri", self.nlri_edit), ("mp-next-hop", self.mp_next_hop), ("mp-family", self.mp_family),
            ("as-path", self.as_path), ("open", self.open_edit), ("open", self.open_edit),
            ("capability", self.capability_edit), ("notification", self.notification_edit),
            ("route-refresh", self.route_refresh_edit),
        ]

    def mutate(self, rng: random.Random, msg: bytes) -> tuple[bytes, list[str]]:
        names: list[str] = []
        for _ in range(1 if rng.random() < 0.6 else rng.randint(2, 3)):
            for _attempt in range(8):
                name, op = rng.choice(self.ops)
                out = op(rng, msg)
                if out is not None and out != msg:
                    msg = out
                    names.append(name)
                    break
        return msg, names

    # ------------------------------------------------------------ raw octets

    def bit_flip(self, rng: random.Random, m: bytes) -> bytes | None:
        b = bytearray(m)
        lo = 0 if rng.random() < 0.03 else min(19, len(b) - 1)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(lo, len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)

    def octet(self, rng: random.Random, m: bytes) -> bytes | None:
        if len(m) <= 19:
            return None
        b = bytearray(m)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(19, len(b))] = rng.choice(INTERESTING8)
        return bytes(b)

    def header_length(self, rng: random.Random, m: bytes) -> bytes | None:
        n = len(m)
        value = rng.choice((0, 1, 18, 19, 20, 22, 23, 28, 29, n - 1, n + 1, n + 19, 4095, 4096, 4097, 65535,
                            rng.randrange(65536)))
        return m[:16] + struct.pack("!H", max(0, min(value, 0xFFFF))) + m[18:]

    def type_change(self, rng: random.Random, m: bytes) -> bytes | None:
        return m[:18] + bytes((rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 255)),)) + m[19:]

    def truncate(self, rng: random.Random, m: bytes) -> bytes | None:
        if len(m) <= 19:
            return None
        t, body = split(m)
        body = body[: rng.randrange(len(body))]
        return frame(t, body) if rng.random() < 0.85 else m[:19] + body

    def extend(self, rng: random.Random, m: bytes) -> bytes | None:
        t, body = split(m)
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))) if rng.random() < 0.6 \
            else bytes(rng.randint(1, 12))
        return frame(t, body + junk)

    def insert(self, rng: random.Random, m: bytes) -> bytes | None:
        t, body = split(m)
        i = rng.randrange(len(body) + 1)
        return frame(t, body[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + body[i:])

    def delete(self, rng: random.Random, m: bytes) -> bytes | None:
        t, body = split(m)
        if not body:
            return None
        i = rng.randrange(len(body))
        return frame(t, body[:i] + body[i + rng.randint(1, 8) :])

    def splice(self, rng: random.Random, m: bytes) -> bytes | None:
        other = rng.choice(self.seeds)
        t, body = split(m)
        _, obody = split(other)
        return frame(t, body[: rng.randrange(len(body) + 1)] + obody[rng.randrange(len(obody) + 1) :])

    def grow(self, rng: random.Random, m: bytes) -> bytes | None:
        """To the edges of the two maximum sizes (RFC 4271 4096, RFC 8654 65535)."""
        t, body = split(m)
        target = rng.choice((4095, 4096, 4097, 4116, 4117, rng.randint(65500, 65535), 65535,
                             rng.randint(4097, 65535)))
        need = target - 19 - len(body)
        if need <= 0:
            return None
        shape = parse_update(body) if t == 2 else None
        if shape is not None and rng.random() < 0.7 and need > 4:
            code = rng.choice((99, 8, 16, 32, 2, 255, 14))
            flags = rng.choice((0xC0, 0xD0, 0x80, 0x40, 0xE0))
            shape.attrs.insert(rng.randrange(len(shape.attrs) + 1), Attr(flags | 0x10, code, _filler(rng, need - 4)))
            return frame(t, shape.body())
        return frame(t, body + _filler(rng, need))

    # ------------------------------------------------------------ UPDATE fields

    def _update(self, m: bytes) -> UpdateShape | None:
        t, body = split(m)
        return parse_update(body) if t == 2 else None

    def _pick(self, rng: random.Random, shape: UpdateShape) -> Attr | None:
        return rng.choice(shape.attrs) if shape.attrs else None

    def _new_attr(self, rng: random.Random) -> Attr:
        if self.attr_pool and rng.random() < 0.7:
            a = rng.choice(self.attr_pool)
            return Attr(a.flags, a.code, a.value)
        code = rng.choice(ATTR_CODES)
        flags = rng.choice((0x40, 0x80, 0xC0, 0xE0, 0x00, 0x50, 0xD0, 0x20, 0xFF))
        size = rng.choice((0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 24, rng.randint(0, 300)))
        return Attr(flags, code, bytes(rng.randrange(256) for _ in range(size)))

    def attr_insert(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        if shape is None:
            return None
        shape.attrs.insert(rng.randrange(len(shape.attrs) + 1), self._new_attr(rng))
        return frame(2, shape.body())

    def attr_duplicate(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        a = self._pick(rng, shape) if shape else None
        if shape is None or a is None:
            return None
        copy = Attr(a.flags, a.code, a.value if rng.random() < 0.5 else _flip(rng, a.value))
        shape.attrs.insert(rng.randrange(len(shape.attrs) + 1), copy)
        return frame(2, shape.body())

    def attr_delete(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        if shape is None or not shape.attrs:
            return None
        del shape.attrs[rng.randrange(len(shape.attrs))]
        return frame(2, shape.body())

    def attr_truncate(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        a = self._pick(rng, shape) if shape else None
        if shape is None or a is None or not a.value:
            return None
        a.value = a.value[: rng.randrange(len(a.value))]
        return frame(2, shape.body())

    def attr_extend(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        a = self._pick(rng, shape) if shape else None
        if shape is None or a is None:
            return None
        a.value += bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 3, 4, 8, rng.randint(1, 40)))))
        return frame(2, shape.body())

    def attr_length(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        a = self._pick(rng, shape) if shape else None
        if shape is None or a is None:
            return None
        n = len(a.value)
        a.length = rng.choice((0, 1, n - 1, n + 1, n + 2, n + 3, n + 4, 255, 256, 0xFFFF, rng.randrange(256)))
        if a.length < 0:
            a.length = 0
        return frame(2, shape.body())

    def attr_flags(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        a = self._pick(rng, shape) if shape else None
        if shape is None or a is None:
            return None
        a.flags ^= rng.choice((0x80, 0x40, 0x20, 0x10, 0x08, 0x01, 0xC0, 0x30))
        return frame(2, shape.body())

    def attr_flip(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        a = self._pick(rng, shape) if shape else None
        if shape is None or a is None or not a.value:
            return None
        a.value = _flip(rng, a.value)
        return frame(2, shape.body())

    def attr_shuffle(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        if shape is None or len(shape.attrs) < 2:
            return None
        rng.shuffle(shape.attrs)
        return frame(2, shape.body())

    def attr_many(self, rng: random.Random, m: bytes) -> bytes | None:
        """Hundreds or thousands of (mostly faulty) attributes in one UPDATE."""
        shape = self._update(m)
        if shape is None:
            return None
        # mostly tens or hundreds; now and then as many as one message holds (slow to build and decode)
        count = rng.choice((2, 5, 20, 50, 300)) if rng.random() < 0.9 else rng.choice((1000, 5000, 21000))
        kind = rng.randrange(3)
        if kind == 0:  # copies of one attribute (repeated: attribute discard)
            a = self._new_attr(rng)
            extra = [Attr(a.flags, a.code, a.value) for _ in range(count)]
        elif kind == 1:  # distinct unknown optional transitive ones (kept and passed on)
            extra = [Attr(0xC0, 100 + i % 150, b"") for i in range(count)]
        else:  # malformed AGGREGATORs (attribute discard, one fault each)
            extra = [Attr(0xC0, 7, b"\x00") for _ in range(count)]
        shape.attrs += extra
        return frame(2, shape.body())

    def attr_swap(self, rng: random.Random, m: bytes) -> bytes | None:
        """This UPDATE's NLRI with another's attributes (or the other way round)."""
        shape = self._update(m)
        other = parse_update(rng.choice(self.updates)[19:]) if self.updates else None
        if shape is None or other is None:
            return None
        if rng.random() < 0.5:
            shape.attrs = other.attrs
        else:
            shape.nlri, shape.withdrawn = other.nlri, other.withdrawn
        return frame(2, shape.body())

    def update_lengths(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        if shape is None:
            return None
        total = sum(len(a.pack()) for a in shape.attrs)
        if rng.random() < 0.5:
            n = len(shape.withdrawn)
            shape.wlen = max(0, rng.choice((0, 1, n - 1, n + 1, n + 3, total, 0xFFFF, rng.randrange(65536))))
        else:
            shape.alen = max(0, rng.choice((0, 1, 2, 3, total - 1, total + 1, total + 5, 0xFFFF,
                                            rng.randrange(65536))))
        return frame(2, shape.body())

    def nlri_edit(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        if shape is None:
            return None
        fields: list[tuple[str, Attr | None]] = [("nlri", None), ("withdrawn", None)]
        fields += [("mp", a) for a in shape.attrs if a.code in (14, 15)]
        where, a = rng.choice(fields)
        if where == "nlri":
            shape.nlri = _edit_prefixes(rng, shape.nlri)
        elif where == "withdrawn":
            shape.withdrawn = _edit_prefixes(rng, shape.withdrawn)
        elif a is not None:
            if a.code == 14 and len(a.value) >= 5:
                start = 5 + a.value[3]
                a.value = a.value[:start] + _edit_prefixes(rng, a.value[start:])
            elif a.code == 15 and len(a.value) >= 3:
                a.value = a.value[:3] + _edit_prefixes(rng, a.value[3:])
        return frame(2, shape.body())

    def mp_next_hop(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        mps = [a for a in shape.attrs if a.code == 14 and len(a.value) >= 5] if shape else []
        if shape is None or not mps:
            return None
        a = rng.choice(mps)
        nhlen = a.value[3]
        head, nh, rest = a.value[:3], a.value[4 : 4 + nhlen], a.value[4 + nhlen :]
        kind = rng.randrange(5)
        if kind == 0:  # only the length octet changes
            a.value = head + bytes((rng.choice(NEXT_HOP_LENGTHS),)) + nh + rest
            return frame(2, shape.body())
        if kind == 1:  # a next hop of another length, zeros or random
            size = rng.choice(NEXT_HOP_LENGTHS[:-1])
            nh = bytes(size) if rng.random() < 0.4 else bytes(rng.randrange(256) for _ in range(size))
        elif kind == 2:  # :: + link-local (BIRD), or link-local + link-local (FRR unnumbered)
            ll = bytes.fromhex("fe80000000000000") + bytes(rng.randrange(256) for _ in range(8))
            first = bytes(16) if rng.random() < 0.7 else ll
            nh = first + ll if head[2] != 128 else bytes(8) + first + bytes(8) + ll
        elif kind == 3:  # unspecified, loopback, multicast, all-ones
            size = 4 if head[:2] == b"\x00\x01" and rng.random() < 0.5 else 16
            nh = rng.choice((bytes(size), b"\xff" * size, b"\x7f" + bytes(size - 2) + b"\x01",
                             b"\xe0" + bytes(size - 1)))
        else:  # the reserved octet (RFC 4760: must be ignored)
            if rest:
                rest = bytes((rng.randrange(1, 256),)) + rest[1:]
        a.value = head + bytes((len(nh),)) + nh + rest
        return frame(2, shape.body())

    def mp_family(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        mps = [a for a in shape.attrs if a.code in (14, 15) and len(a.value) >= 3] if shape else []
        if shape is None or not mps:
            return None
        a = rng.choice(mps)
        afi, safi = rng.choice(FAMILIES)
        a.value = struct.pack("!HB", afi, safi) + a.value[3:]
        return frame(2, shape.body())

    def as_path(self, rng: random.Random, m: bytes) -> bytes | None:
        shape = self._update(m)
        paths = [a for a in shape.attrs if a.code in (2, 17)] if shape else []
        if shape is None or not paths:
            return None
        a = rng.choice(paths)
        v = bytearray(a.value)
        kind = rng.randrange(4)
        if kind == 0 and v:  # segment type
            v[0] = rng.choice((0, 1, 2, 3, 4, 5, 255))
        elif kind == 1 and len(v) > 1:  # segment count
            v[1] = rng.choice((0, 1, 2, v[1] - 1 if v[1] else 0, v[1] + 1 if v[1] < 255 else 255, 255))
        elif kind == 2:  # one more segment, maybe a confederation one
            count = rng.randint(0, 3)
            v += bytes((rng.choice((1, 2, 3, 4)), count)) + bytes(rng.randrange(256) for _ in range(count * 4))
        else:  # a long path: 255-ASN segments
            v += bytes((2, 255)) + bytes(rng.randrange(256) for _ in range(255 * rng.choice((2, 4))))
        a.value = bytes(v)
        return frame(2, shape.body())

    # ------------------------------------------------------------ other messages

    def open_edit(self, rng: random.Random, m: bytes) -> bytes | None:
        if len(m) < 29 or m[18] != 1:
            m = rng.choice(self.opens) if self.opens else m
            if len(m) < 29:
                return None
        body = bytearray(m[19:])
        kind = rng.randrange(6)
        if kind == 0:
            body[0] = rng.choice((0, 1, 3, 5, 255))  # version
        elif kind == 1:
            body[3:5] = struct.pack("!H", rng.choice((0, 1, 2, 3, 4, 90, 65535)))  # hold time
        elif kind == 2:
            body[1:3] = struct.pack("!H", rng.choice((0, 23456, 65001, 65002, 65535)))  # my AS
        elif kind == 3:
            body[5:9] = rng.choice((bytes(4), bytes((10, 0, 0, 1)), b"\xff" * 4, bytes((10, 0, 0, 2))))
        elif kind == 4:  # optional parameters length
            body[9] = rng.choice((0, 1, 2, 255, max(0, body[9] - 1), min(255, body[9] + 1)))
        else:  # RFC 9072 extended optional parameters
            caps = b"".join(rng.choice(self.cap_pool) for _ in range(rng.randint(0, 40))) if self.cap_pool else b""
            params = struct.pack("!BH", 2, len(caps)) + caps
            length = len(params) if rng.random() < 0.8 else rng.randrange(65536)
            body = bytearray(body[:9]) + struct.pack("!BBH", 255, 255, length) + params
        return frame(1, bytes(body))

    def capability_edit(self, rng: random.Random, m: bytes) -> bytes | None:
        if len(m) < 29 or m[18] != 1:
            return None
        body = m[19:]
        caps = _capabilities(body)
        kind = rng.randrange(5)
        if kind == 0 and self.cap_pool:
            caps.insert(rng.randrange(len(caps) + 1), rng.choice(self.cap_pool))
        elif kind == 1 and caps:
            caps.insert(rng.randrange(len(caps) + 1), rng.choice(caps))
        elif kind == 2 and caps:
            del caps[rng.randrange(len(caps))]
        elif kind == 3 and caps:  # a capability's length or value
            i = rng.randrange(len(caps))
            c = bytearray(caps[i])
            if rng.random() < 0.5:
                c[1] = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 255, max(0, c[1] - 1), min(255, c[1] + 1)))
            elif len(c) > 2:
                c[rng.randrange(2, len(c))] = rng.choice(INTERESTING8)
            caps[i] = bytes(c)
        else:  # a capability of a random code and size
            v = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 2, 4, 6, 8, 12, 255))))
            caps.insert(rng.randrange(len(caps) + 1), bytes((rng.choice((1, 2, 5, 6, 64, 65, 69, 70, 73, 128)),
                                                            len(v))) + v)
        blob = b"".join(caps)
        if len(blob) + 2 > 255:
            params = struct.pack("!BH", 2, len(blob)) + blob
            opt = struct.pack("!BBH", 255, 255, len(params)) + params
        else:
            params = bytes((2, len(blob))) + blob if blob else b""
            opt = bytes((len(params),)) + params
        return frame(1, body[:9] + opt)

    def notification_edit(self, rng: random.Random, m: bytes) -> bytes | None:
        code = rng.choice((1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 255))
        sub = rng.choice((0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 255))
        kind = rng.randrange(4)
        if kind == 0:  # RFC 9003 text: too long, invalid UTF-8, control characters, markup
            text = rng.choice((b"[/]", b"\x1b[31mred", b"line\nforged: x", b"\xff\xfe", "é".encode()[:1], b"a" * 255))
            data = bytes((min(255, rng.choice((len(text), len(text) + 1, 255, 0))),)) + text
            return frame(3, bytes((6, rng.choice((2, 4)))) + data)
        size = rng.choice((0, 1, 2, 255, 4096 - 21, 4096 - 20, 65535 - 21))
        return frame(3, bytes((code, sub)) + _filler(rng, size))

    def route_refresh_edit(self, rng: random.Random, m: bytes) -> bytes | None:
        afi, safi = rng.choice(FAMILIES)
        subtype = rng.choice((0, 1, 2, 3, 255))
        body = struct.pack("!HBB", afi, subtype, safi)
        if rng.random() < 0.4:
            body += _filler(rng, rng.choice((1, 2, 100, 4073, 4074, 65511, 65512, rng.randint(65400, 65512))))
        return frame(5, body)


def _filler(rng: random.Random, n: int) -> bytes:
    if n <= 0:
        return b""
    if rng.random() < 0.5:
        return bytes(n)
    return rng.randbytes(n)


def _flip(rng: random.Random, value: bytes) -> bytes:
    if not value:
        return value
    b = bytearray(value)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def _edit_prefixes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0 and b:  # a length octet (the first) to an edge value
        b[0] = rng.choice(PREFIX_LENGTHS)
    elif kind == 1:  # one more prefix, maybe malformed
        length = rng.choice(PREFIX_LENGTHS)
        b += bytes((length,)) + bytes(rng.randrange(256) for _ in range(min((length + 7) // 8, rng.randint(0, 40))))
    elif kind == 2 and b:  # cut
        del b[rng.randrange(len(b)) :]
    else:  # an ADD-PATH identifier in front (or where none is expected)
        b[0:0] = bytes(rng.randrange(256) for _ in range(4))
    return bytes(b)


def _capabilities(open_body: bytes) -> list[bytes]:
    """The capability TLVs of an OPEN body (both parameter forms), best effort."""
    out: list[bytes] = []
    if len(open_body) < 10:
        return out
    optlen, pos, ext = open_body[9], 10, False
    if optlen == 255 and len(open_body) >= 13 and open_body[10] == 255:
        optlen, pos, ext = struct.unpack_from("!H", open_body, 11)[0], 13, True
    end = min(len(open_body), pos + optlen)
    while pos < end:
        hdr = 3 if ext else 2
        if pos + hdr > end:
            break
        plen = struct.unpack_from("!H", open_body, pos + 1)[0] if ext else open_body[pos + 1]
        j, pend = pos + hdr, min(end, pos + hdr + plen)
        while j + 2 <= pend:
            clen = open_body[j + 1]
            out.append(bytes(open_body[j : j + 2 + clen]))
            j += 2 + clen
        pos = pos + hdr + plen
    return out


# ====================================================================== the session pair


@dataclass(frozen=True)
class Profile:
    """One negotiation: how the l3fab side is configured, and the peer's OPEN."""

    name: str
    peer_open: Open
    addpath: bool = False  # the l3fab side offers ADD-PATH receive
    extended_message: bool = True
    seeds: tuple[bytes, ...] = ()


def _caps(*, four: bool = True, ext: bool = True, addpath: bool = False) -> tuple[Capability, ...]:
    caps: list[Capability] = [Multiprotocol(f) for f in ALL]
    caps += [RouteRefreshCap(), EnhancedRouteRefreshCap()]
    if four:
        caps.append(FourOctetAs(PEER_AS))
    if ext:
        caps.append(ExtendedMessageCap())
    caps.append(ExtendedNextHop(((IPV4_UNICAST, 2), (VPNV4, 2))))
    caps.append(GracefulRestartCap(False, False, 120, tuple((f, True) for f in ALL)))
    if addpath:
        caps.append(AddPathCap(tuple((f, ADDPATH_SEND | ADDPATH_RECEIVE) for f in ALL)))
    caps.append(UnknownCapability(code=73, raw=b"\x04peer\x00"))
    return tuple(caps)


def profiles(captures: dict[str, list[bytes]]) -> list[Profile]:
    out = []
    for name, msgs in captures.items():
        if msgs and len(msgs[0]) > 18 and msgs[0][18] == 1:
            out.append(Profile(name, decode_open(msgs[0][19:]), seeds=tuple(msgs)))
    out.append(Profile("synthetic", Open(PEER_AS, 90, PEER_ID, _caps())))
    out.append(Profile("synthetic-no-extended-message", Open(PEER_AS, 90, PEER_ID, _caps(ext=False)),
                       extended_message=False))
    out.append(Profile("synthetic-two-octet-as", Open(PEER_AS, 90, PEER_ID, _caps(four=False))))
    out.append(Profile("synthetic-addpath", Open(PEER_AS, 90, PEER_ID, _caps(addpath=True)), addpath=True))
    return out


class Pair:
    """The l3fab side (``a``) and the peer (``b``), joined by an in-order pipe."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        cfg_a = SessionConfig(US_AS, US_ID, PEER_AS, families=ALL, passive=True, graceful_restart_time=120,
                              addpath_receive=ALL if profile.addpath else (),
                              extended_message=profile.extended_message)
        self.a = Session(cfg_a)
        self.b = Session(SessionConfig(PEER_AS, PEER_ID, US_AS, families=ALL))
        self.b.local_open = profile.peer_open  # the peer's OPEN is the recorded (or synthetic) one
        self.a_out: list = []
        self.b_out: list = []
        self.peer_rejected: list[Notification] = []  # NOTIFICATIONs the peer sent about our bytes

    def start(self, until: State = State.ESTABLISHED) -> None:
        """Bring the l3fab side to ``until``: OpenSent (its OPEN sent, the peer not
        connected), OpenConfirm (the peer's OPEN received, nothing else), or Established."""
        self.a_out += self.a.start()
        self.b_out += self.b.start()
        self.a_out += self.a.connection_made()
        if until is State.OPENSENT:
            self.a_out = []
            return
        self.b_out += self.b.connection_made()
        if until is State.OPENCONFIRM:
            b_open = b"".join(x.data for x in self.b_out if isinstance(x, Send))
            self.b_out = []
            self.a_out += self.a.data_received(b_open)  # the peer's OPEN only
            # The peer still waits for our OPEN: it gets it (and the rest) after the input.
            return
        self.pump()

    def pump(self) -> None:
        """Deliver what each side sent to the other until both are quiet."""
        for _ in range(50):
            a_data = b"".join(x.data for x in self.a_out if isinstance(x, Send))
            b_data = b"".join(x.data for x in self.b_out if isinstance(x, Send))
            a_closed = any(isinstance(x, Disconnect) for x in self.a_out)
            b_closed = any(isinstance(x, Disconnect) for x in self.b_out)
            self.a_out, self.b_out = [], []
            if not (a_data or b_data or a_closed or b_closed):
                return
            if a_data:
                out = self.b.data_received(a_data)
                self.peer_rejected += [x.notification for x in out if isinstance(x, NotificationSent)]
                self.b_out += out
            if b_data:
                self.a_out += self.a.data_received(b_data)
            if a_closed:
                self.b_out += self.b.connection_failed("peer closed the connection")
            if b_closed:
                self.a_out += self.a.connection_failed("peer closed the connection")


# ====================================================================== the table


def _sink(name: str, *, four: bool, ext: bool) -> tuple[Negotiated, ExportContext]:
    ours = Open(US_AS, 90, US_ID, tuple(Multiprotocol(f) for f in ALL) + (FourOctetAs(US_AS), ExtendedMessageCap(),
                                                                          ExtendedNextHop(((IPV4_UNICAST, 2),))))
    caps: list[Capability] = [Multiprotocol(f) for f in ALL]
    if four:
        caps.append(FourOctetAs(65100))
    if ext:
        caps.append(ExtendedMessageCap())
    neg = negotiate(ours, Open(65100, 90, "10.0.0.100", tuple(caps)), 90)
    ctx = ExportContext(name, 65100, US_AS, US_ID, neg.families, MpNextHop("172.16.100.1"))
    return neg, ctx


class Table:
    """A RibManager fed what the l3fab side decodes, exporting to two other peers."""

    SINKS = {"narrow": dict(four=False, ext=False), "wide": dict(four=True, ext=True)}

    def __init__(self) -> None:
        self.rib = RibManager(RibSettings(US_AS, US_ID),
                              [PeerTableConfig("fuzz-peer"), *(PeerTableConfig(n) for n in self.SINKS)])
        # Every next hop is reachable (a connected ::/0 and 0.0.0.0/0): what is accepted is
        # best, so it is exported, so the packing for the other peers sees every attribute.
        self.rib.set_connected({(4, 0, 0), (6, 0, 0)})
        self.codecs: dict[str, CodecContext] = {}
        for name, kw in self.SINKS.items():
            neg, ctx = _sink(name, **kw)
            self.codecs[name] = neg.codec
            self.rib.peer_up(name, neg, Source(name, "172.16.100.2", 65100, "10.0.0.100"), ctx)
        self.up = False
        self.exported = 0  # UPDATEs packed for the sinks
        self.refused = 0  # routes a sink's Adj-RIB-Out could not send (too large for it)

    def peer_up(self, neg: Negotiated) -> None:
        ctx = ExportContext("fuzz-peer", neg.peer_as, US_AS, US_ID, neg.families, MpNextHop("172.16.1.1"))
        self.rib.peer_up("fuzz-peer", neg, Source("fuzz-peer", "172.16.1.2", neg.peer_as, neg.peer_id), ctx)
        self.up = True

    def peer_down(self) -> None:
        if self.up:
            self.rib.peer_down("fuzz-peer")
            self.up = False
            self.rib.process()

    def update(self, u: Update) -> list[str]:
        """Feed one UPDATE; returns violations found in what went out to the sinks."""
        self.rib.update_received("fuzz-peer", u)
        self.rib.process()
        problems = []
        before = {n: self.rib.peers[n].rib_out.refused for n in self.SINKS}
        for name, chunks in self.rib.drain().items():
            codec = self.codecs.get(name)
            if codec is None:
                continue
            self.exported += len(chunks)
            for chunk in chunks:
                if len(chunk) > codec.max_message:
                    problems.append(f"an UPDATE of {len(chunk)} octets for {name} (maximum {codec.max_message})")
                    continue
                try:
                    m = decode_message(chunk, codec)
                except RemoteProtocolError as e:
                    problems.append(f"{name} would reject what we sent: {e.code}/{e.subcode} {e.reason}")
                    continue
                if isinstance(m, Update) and (m.faults or m.treat_as_withdraw):
                    problems.append(f"{name} finds faults in what we sent: {'; '.join(map(str, m.faults))}")
        for name in self.SINKS:
            out = self.rib.peers[name].rib_out
            # A route is refused for its size only: anything else is a route accepted from
            # one peer that the codec cannot send to another (decoding and encoding disagree).
            self.refused += out.refused - before[name]
            if out.refused != before[name] and "the session allows" not in out.last_refused:
                problems.append(f"accepted but cannot be sent to {name}: {out.last_refused}")
        return problems


# ====================================================================== the run


@dataclass
class Finding:
    kind: str  # "escape" or "violation"
    where: str
    detail: str
    profile: str
    state: str
    data: bytes
    mutations: list[str]
    count: int = 1


@dataclass
class Stats:
    messages: int = 0
    outcomes: Counter = field(default_factory=Counter)
    mutations: Counter = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)
    seconds: float = 0.0
    table: Counter = field(default_factory=Counter)  # "exported" UPDATEs, "refused" routes (too large)

    @property
    def escapes(self) -> int:
        return sum(f.count for f in self.findings.values() if f.kind == "escape")

    @property
    def violations(self) -> int:
        return sum(f.count for f in self.findings.values() if f.kind == "violation")

    @property
    def rejected(self) -> int:
        """Messages answered with a NOTIFICATION (the session went down)."""
        return self.outcomes["notification"]


TARGETS = ((State.ESTABLISHED, 0.86), (State.OPENSENT, 0.1), (State.OPENCONFIRM, 0.04))


class Fuzzer:
    def __init__(self, seed: int, table: bool = True, data: Path = DATA) -> None:
        self.rng = random.Random(seed)
        captures = capture_seeds(data)
        self.profiles = profiles(captures)
        seeds = [m for msgs in captures.values() for m in msgs] + synthetic_seeds()
        self.mutator = Mutator(seeds)
        self.seeds = seeds
        self.with_table = table
        self.table: Table | None = None
        self.pair: Pair | None = None
        self.state = State.ESTABLISHED
        self.stats = Stats()
        self._since_table = 0
        self._snapshots: dict[tuple[str, State], bytes] = {}

    # ------------------------------------------------------------ one message

    def _fresh(self, state: State) -> Pair:
        if self.table is not None:
            self.table.peer_down()
        profile = self.rng.choice(self.profiles)
        # Bringing a pair up costs several times what the message does: start from a copy
        # of one brought up before (pickled: nothing is shared with the copy).
        key = (profile.name, state)
        blob = self._snapshots.get(key)
        if blob is None:
            pair = Pair(profile)
            pair.start(state)
            pair.profile = None  # type: ignore[assignment]  # not copied: shared, and large (its seeds)
            try:
                blob = self._snapshots[key] = pickle.dumps(pair)
            except (pickle.PicklingError, TypeError, AttributeError):
                blob = self._snapshots[key] = b""
        if blob:
            pair = pickle.loads(blob)
            pair.profile = profile
        else:
            pair = Pair(profile)
            pair.start(state)
        self.state = state
        if state is State.ESTABLISHED:
            if pair.a.state is not State.ESTABLISHED:
                raise RuntimeError(f"profile {profile.name} does not reach Established: {pair.a.last_error}")
        return pair

    def _input(self, pair: Pair, state: State) -> tuple[bytes, list[str]]:
        rng = self.rng
        if state is State.OPENSENT:
            base = bytes(pair.profile.peer_open.encode()) if rng.random() < 0.7 else rng.choice(self.seeds)
        else:
            pool = pair.profile.seeds if pair.profile.seeds and rng.random() < 0.5 else self.seeds
            base = rng.choice(pool)
        data, names = self.mutator.mutate(rng, base)
        if rng.random() < 0.05:  # two messages in one chunk
            second, more = self.mutator.mutate(rng, rng.choice(self.seeds)) if rng.random() < 0.5 \
                else (rng.choice(self.seeds), [])
            data += second
            names = names + ["concat"] + more
        return data, names

    def run_one(self) -> None:
        rng = self.rng
        if self.with_table and (self.table is None or self._since_table >= TABLE_RESET):
            if self.table is not None:
                self.table.peer_down()
                self._count_table()
            self.table = Table()
            self._since_table = 0
            self.pair = None
        self._since_table += 1
        if self.pair is None or self.pair.a.state is not self.state or rng.random() < 0.02:
            r, acc = rng.random(), 0.0
            state = State.ESTABLISHED
            for s, w in TARGETS:
                acc += w
                if r < acc:
                    state = s
                    break
            self.pair = self._fresh(state)
        pair = self.pair
        data, names = self._input(pair, self.state)
        self.stats.messages += 1
        for n in names:
            self.stats.mutations[n] += 1
        self.check(pair, self.state, data, names)
        # A fresh pair after a state change, or when the l3fab side holds part of a message:
        # the next input must not be read as the rest of this one.
        if pair.a.state is not self.state or self.state is not State.ESTABLISHED or pair.a._reader.buffered:
            self.pair = None

    def check(self, pair: Pair, state: State, data: bytes, names: list[str]) -> str:
        """Feed ``data`` to the l3fab side of ``pair`` (in ``state``); record the outcome."""
        neg = pair.a.negotiated
        codec = neg.codec if neg is not None else CodecContext()
        where = "Session.data_received"
        try:
            if len(data) > 1 and self.rng.random() < 0.1:  # as TCP may deliver it: in two pieces
                cut = self.rng.randrange(1, len(data))
                actions = pair.a.data_received(data[:cut])
                actions += pair.a.data_received(data[cut:])
            else:
                actions = pair.a.data_received(data)
            outcome, problems = self._judge(pair, state, data, codec, actions)
            where = "the peer's Session"
            pair.a_out += actions
            pair.pump()
            if pair.peer_rejected:
                problems += [f"the peer rejected what l3fab sent: {n.describe()}" for n in pair.peer_rejected]
                pair.peer_rejected = []
            where = "the table"
            if self.table is not None and state is State.ESTABLISHED and neg is not None:
                for act in actions:
                    if isinstance(act, UpdateReceived):
                        if not self.table.up:  # told only when there is something for it
                            self.table.peer_up(neg)
                        problems += self.table.update(act.update)
                if pair.a.state is not State.ESTABLISHED:
                    self.table.peer_down()
        except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
            tb = traceback.extract_tb(e.__traceback__)
            frame_ = tb[-1] if tb else None
            place = type(e).__name__
            if frame_ is not None:
                place += f" at {Path(frame_.filename).name}:{frame_.lineno}"
            self._record("escape", place, f"{where}: {type(e).__name__}: {e}", pair, state, data, names)
            self.stats.outcomes["escape"] += 1
            self.pair = None
            return "escape"
        for p in problems:
            self._record("violation", p.split(":")[0], p, pair, state, data, names)
        self.stats.outcomes[outcome] += 1
        return outcome

    def _judge(self, pair: Pair, state: State, data: bytes, codec: CodecContext,
               actions: list) -> tuple[str, list[str]]:
        a = pair.a
        sent = [x.notification for x in actions if isinstance(x, NotificationSent)]
        received = [x for x in actions if isinstance(x, NotificationReceived)]
        updates = [x.update for x in actions if isinstance(x, UpdateReceived)]
        problems: list[str] = []
        down = a.state is State.IDLE
        if down:
            if len(sent) + len(received) != 1:
                problems.append(f"session down with {len(sent)} NOTIFICATION(s) sent and {len(received)} received")
            if not any(isinstance(x, Disconnect) for x in actions):
                problems.append("session down without Disconnect")
        elif sent:
            problems.append(f"NOTIFICATION {sent[0].describe()} sent but the session stayed {a.state.value}")
        for x in actions:
            if isinstance(x, Send) and len(x.data) > max(codec.max_message, 4096):
                problems.append(f"sent {len(x.data)} octets in one message, more than {codec.max_message}")
        # The decoder alone must agree with the session on one complete message.
        single = len(data) >= 19 and int.from_bytes(data[16:18], "big") == len(data) and state is State.ESTABLISHED
        if single:
            try:
                decode_message(data, codec)
                decoded_ok = True
            except RemoteProtocolError as e:
                decoded_ok = False
                fsm_first = data[18] in (1, 3) and e.code not in (1,)  # OPEN/NOTIFICATION: no body decoding
                if not fsm_first and (not sent or (sent[0].code, sent[0].subcode) != (e.code, e.subcode)):
                    got = sent[0].describe() if sent else "none"
                    problems.append(f"decode_message says {e.code}/{e.subcode} ({e.reason}), the session sent {got}")
            if not decoded_ok or data[18] not in (2, 4, 5):
                pass  # an OPEN or a NOTIFICATION in Established is the FSM's business
            elif sent:
                problems.append(f"the session sent {sent[0].describe()} for a message decode_message accepts")
        if received:
            return "peer-notification", problems
        if sent:
            return "notification", problems
        if down:
            return "closed", problems
        if updates:
            if any(u.treat_as_withdraw for u in updates):
                return "treat-as-withdraw", problems
            if any(u.faults for u in updates):
                return "attribute-discard", problems
            return "update", problems
        if state is State.ESTABLISHED and len(data) >= 19 and int.from_bytes(data[16:18], "big") > len(data):
            return "incomplete", problems
        if state is not State.ESTABLISHED and a.state is not state:
            return f"{state.value}->{a.state.value}", problems
        return "accepted", problems

    def _record(self, kind: str, place: str, detail: str, pair: Pair, state: State, data: bytes,
                names: list[str]) -> None:
        key = f"{kind}:{place}"
        f = self.stats.findings.get(key)
        if f is not None:
            f.count += 1
            if len(data) < len(f.data):  # keep the shortest input
                f.data, f.detail, f.mutations, f.profile, f.state = data, detail, names, pair.profile.name, state.value
            return
        self.stats.findings[key] = Finding(kind, place, detail, pair.profile.name, state.value, data, names)

    def _count_table(self) -> None:
        if self.table is not None:
            self.stats.table["exported"] += self.table.exported
            self.stats.table["refused"] += self.table.refused
            self.table.exported = self.table.refused = 0

    def run(self, messages: int, progress: Callable[[Stats], None] | None = None, every: int = 100_000) -> Stats:
        start = time.monotonic()
        for i in range(messages):
            self.run_one()
            if progress is not None and (i + 1) % every == 0:
                self.stats.seconds = time.monotonic() - start
                progress(self.stats)
        self._count_table()
        self.stats.seconds = time.monotonic() - start
        return self.stats


def replay(profile_name: str, state: str, data: bytes, table: bool = True) -> tuple[str, Stats]:
    """Feed one input to a fresh pair of ``profile_name`` in ``state``: (outcome, stats)."""
    fz = Fuzzer(0, table=table)
    profile = next(p for p in fz.profiles if p.name == profile_name)
    if table:
        fz.table = Table()
    fz.profiles = [profile]
    target = State(state)
    pair = fz._fresh(target)
    outcome = fz.check(pair, target, data, ["replay"])
    fz.stats.messages = 1
    return outcome, fz.stats


# ====================================================================== command line


def report(stats: Stats, out=sys.stdout) -> None:
    rate = stats.messages / stats.seconds if stats.seconds else 0.0
    print(f"messages run: {stats.messages}", file=out)
    print(f"escapes: {stats.escapes}", file=out)
    print(f"violations: {stats.violations}", file=out)
    print(f"messages/s: {rate:.0f}", file=out)
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in stats.outcomes.most_common()), file=out)
    if stats.table:
        print(f"table: {stats.table['exported']} UPDATEs exported, {stats.table['refused']} routes too large for "
              f"a peer and not sent", file=out)
    for f in stats.findings.values():
        print(f"\n{f.kind.upper()} x{f.count}: {f.detail}", file=out)
        print(f"  mutations: {', '.join(f.mutations) or '-'}", file=out)
        shown = f.data.hex() if len(f.data) <= 512 else f"{f.data[:512].hex()}... ({len(f.data)} octets)"
        print(f"  replay: python -m l3fab.bench.fuzz --profile {f.profile} --state {f.state} --replay {shown}",
              file=out)
    out.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m l3fab.bench.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000, help="mutated messages to run (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (the same seed runs the same messages)")
    ap.add_argument("--no-table", action="store_true", help="decoder and session only, no RibManager")
    ap.add_argument("--progress", type=int, default=100_000, help="print the counts every N messages (0: never)")
    ap.add_argument("--log", action="store_true", help="let l3fab log (it is silenced by default)")
    ap.add_argument("--save", metavar="DIR", type=Path,
                    help="write each finding's input to DIR (raw octets, replay with --replay @FILE)")
    ap.add_argument("--replay", metavar="HEX|@FILE",
                    help="feed this one input instead (a finding's replay line, or a file --save wrote)")
    ap.add_argument("--profile", default="synthetic", help="with --replay: the negotiation profile")
    ap.add_argument("--state", default="established", help="with --replay: the l3fab side's state")
    args = ap.parse_args(argv)
    if args.replay:
        data = Path(args.replay[1:]).read_bytes() if args.replay.startswith("@") else bytes.fromhex(args.replay)
        outcome, stats = replay(args.profile, args.state, data, table=not args.no_table)
        print(f"outcome: {outcome}")
        report(stats)
        return 1 if stats.findings else 0
    if not args.log:
        logging.disable(logging.CRITICAL)  # the table logs what it refuses; millions of lines otherwise
    fz = Fuzzer(args.seed, table=not args.no_table)

    def progress(s: Stats) -> None:
        rate = s.messages / s.seconds if s.seconds else 0.0
        print(f"... {s.messages} messages, {s.escapes} escapes, {s.violations} violations, {rate:.0f} messages/s",
              flush=True)

    stats = fz.run(args.messages, progress if args.progress else None, args.progress or 1)
    report(stats)
    if args.save is not None and stats.findings:
        args.save.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(stats.findings.values()):
            path = args.save / f"{i:03d}-{f.kind}-{f.profile}-{f.state}.bin"
            path.write_bytes(f.data)
            print(f"saved: {path}  (--profile {f.profile} --state {f.state} --replay @{path})")
    return 1 if stats.findings else 0


if __name__ == "__main__":
    sys.exit(main())
