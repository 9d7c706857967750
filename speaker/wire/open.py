"""OPEN messages (RFC 4271 section 4.2, RFC 5492 capabilities, RFC 9072 extended parameters)."""
from __future__ import annotations

import builtins
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import TypeVar

from .capabilities import Capability, CapabilityError, FourOctetAs, Multiprotocol, decode_capability
from .constants import AS_TRANS, BGP_VERSION, HEADER_LEN, MessageType, OpenSubcode, Family
from .context import CodecContext
from .errors import LocalProtocolError, OpenMessageError

C = TypeVar("C", bound=Capability)

PARAM_CAPABILITIES = 2
PARAM_EXTENDED = 255  # RFC 9072


@dataclass(frozen=True)
class Open:
    """An OPEN.  ``asn`` is the speaker's real AS (from the 4-octet AS capability if sent)."""

    asn: int
    hold_time: int
    router_id: str
    capabilities: tuple[Capability, ...] = ()
    version: int = BGP_VERSION
    my_as_field: int | None = None  # the 2-octet "My Autonomous System" as received

    type: int = field(default=MessageType.OPEN, init=False, repr=False, compare=False)

    def find(self, cls: builtins.type[C]) -> tuple[C, ...]:
        return tuple(c for c in self.capabilities if isinstance(c, cls))

    def first(self, cls: builtins.type[C]) -> C | None:
        for c in self.capabilities:
            if isinstance(c, cls):
                return c
        return None

    def families(self) -> frozenset[Family]:
        return frozenset(c.family for c in self.find(Multiprotocol))

    def encode(self, ctx: CodecContext | None = None) -> bytes:
        if not 0 <= self.hold_time <= 0xFFFF:
            raise LocalProtocolError(f"hold time {self.hold_time} out of range")
        my_as = self.asn if self.asn <= 0xFFFF else AS_TRANS
        caps = b"".join(c.pack() for c in self.capabilities)
        if len(caps) + 2 <= 255:
            params = bytes((PARAM_CAPABILITIES, len(caps))) + caps if caps else b""
            opt = bytes((len(params),)) + params
        else:  # RFC 9072 extended optional parameters length
            params = struct.pack("!BH", PARAM_CAPABILITIES, len(caps)) + caps
            opt = struct.pack("!BBH", 255, PARAM_EXTENDED, len(params)) + params
        body = struct.pack("!BHH4s", self.version, my_as, self.hold_time,
                           ipaddress.IPv4Address(self.router_id).packed) + opt
        return b"\xff" * 16 + struct.pack("!HB", HEADER_LEN + len(body), MessageType.OPEN) + body


def decode_open(body: bytes) -> Open:
    if len(body) < 10:
        raise OpenMessageError(0, b"", f"OPEN body of {len(body)} octets is too short")
    version, my_as, hold, rid, optlen = struct.unpack("!BHH4sB", body[:10])
    if version != BGP_VERSION:
        # RFC 4271 section 6.2: data is the largest version we support
        raise OpenMessageError(OpenSubcode.UNSUPPORTED_VERSION, struct.pack("!H", BGP_VERSION),
                               f"BGP version {version}")
    pos = 10
    extended = False
    if optlen == 255 and len(body) >= 11 and body[10] == PARAM_EXTENDED:
        if len(body) < 13:
            raise OpenMessageError(0, b"", "extended optional parameters length truncated")
        optlen = struct.unpack("!H", body[11:13])[0]
        pos = 13
        extended = True
    if pos + optlen != len(body):
        raise OpenMessageError(0, b"", f"optional parameters length {optlen} does not match the message")
    caps: list[Capability] = []
    end = pos + optlen
    while pos < end:
        hdr = 3 if extended else 2
        if pos + hdr > end:
            raise OpenMessageError(0, b"", "optional parameter header truncated")
        ptype = body[pos]
        plen = struct.unpack("!H", body[pos + 1 : pos + 3])[0] if extended else body[pos + 1]
        pstart = pos + hdr
        pend = pstart + plen
        if pend > end:
            raise OpenMessageError(0, b"", f"optional parameter {ptype} overruns the message")
        if ptype != PARAM_CAPABILITIES:
            raise OpenMessageError(OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, b"", f"optional parameter type {ptype}")
        j = pstart
        while j < pend:
            if j + 2 > pend:
                raise OpenMessageError(0, b"", "capability header truncated")
            code, clen = body[j], body[j + 1]
            if j + 2 + clen > pend:
                raise OpenMessageError(0, b"", f"capability {code} overruns its parameter")
            try:
                caps.append(decode_capability(code, body[j + 2 : j + 2 + clen]))
            except CapabilityError as e:
                raise OpenMessageError(0, b"", str(e)) from None
            j += 2 + clen
        pos = pend
    asn = my_as
    for c in caps:
        if isinstance(c, FourOctetAs):
            asn = c.asn
            break
    return Open(asn, hold, str(ipaddress.IPv4Address(rid)), tuple(caps), version, my_as)
