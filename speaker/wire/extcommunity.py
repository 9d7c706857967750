"""Extended communities (RFC 4360): route targets and route origins, others kept raw."""
from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

TYPE_TWO_OCTET_AS = 0x00
TYPE_IPV4_ADDRESS = 0x01
TYPE_FOUR_OCTET_AS = 0x02
SUBTYPE_ROUTE_TARGET = 0x02
SUBTYPE_ROUTE_ORIGIN = 0x03

_KIND_NAMES = {SUBTYPE_ROUTE_TARGET: "target", SUBTYPE_ROUTE_ORIGIN: "origin"}
_KIND_CODES = {v: k for k, v in _KIND_NAMES.items()}
_RT_TYPES = (TYPE_TWO_OCTET_AS, TYPE_IPV4_ADDRESS, TYPE_FOUR_OCTET_AS)


class ExtCommunity(NamedTuple):
    """One 8-octet extended community: type, subtype and the 6-octet value."""

    type: int
    subtype: int
    value: bytes

    def pack(self) -> bytes:
        return bytes((self.type, self.subtype)) + self.value

    @classmethod
    def unpack(cls, data: bytes) -> "ExtCommunity":
        return cls(data[0], data[1], bytes(data[2:8]))

    @property
    def is_route_target(self) -> bool:
        return self.subtype == SUBTYPE_ROUTE_TARGET and self.type in _RT_TYPES

    @property
    def is_route_origin(self) -> bool:
        return self.subtype == SUBTYPE_ROUTE_ORIGIN and self.type in _RT_TYPES

    def admin_assigned(self) -> tuple[int | str, int] | None:
        if self.type == TYPE_TWO_OCTET_AS:
            return struct.unpack("!HI", self.value)
        if self.type == TYPE_IPV4_ADDRESS:
            return str(ipaddress.IPv4Address(self.value[:4])), struct.unpack("!H", self.value[4:])[0]
        if self.type == TYPE_FOUR_OCTET_AS:
            return struct.unpack("!IH", self.value)
        return None

    def __str__(self) -> str:
        kind = _KIND_NAMES.get(self.subtype)
        aa = self.admin_assigned()
        if kind and aa is not None:
            return f"{kind}:{aa[0]}:{aa[1]}"
        return f"0x{self.type:02x}{self.subtype:02x}:{self.value.hex()}"

    @classmethod
    def build(cls, kind: str, admin: int | str, assigned: int) -> "ExtCommunity":
        """Build a route target (``kind='target'``) or route origin (``'origin'``)."""
        subtype = _KIND_CODES[kind]
        if isinstance(admin, str) and "." in admin:
            if not 0 <= assigned <= 0xFFFF:
                raise ValueError(f"{kind}:{admin}:{assigned}: assigned number above 65535")
            return cls(TYPE_IPV4_ADDRESS, subtype, ipaddress.IPv4Address(admin).packed + struct.pack("!H", assigned))
        asn = int(admin)
        if asn <= 0xFFFF and 0 <= assigned <= 0xFFFFFFFF:
            return cls(TYPE_TWO_OCTET_AS, subtype, struct.pack("!HI", asn, assigned))
        if asn <= 0xFFFFFFFF and 0 <= assigned <= 0xFFFF:
            return cls(TYPE_FOUR_OCTET_AS, subtype, struct.pack("!IH", asn, assigned))
        raise ValueError(f"{kind}:{admin}:{assigned}: numbers out of range")

    @classmethod
    def parse(cls, text: str) -> "ExtCommunity":
        """Parse ``target:ASN:NN``, ``target:A.B.C.D:NN``, ``origin:...`` (also ``rt``/``soo``)."""
        parts = str(text).strip().split(":")
        aliases = {"rt": "target", "target": "target", "soo": "origin", "origin": "origin"}
        if len(parts) != 3 or parts[0].lower() not in aliases or not parts[2].isdigit():
            raise ValueError(f"extended community {text!r} is not target:ADMIN:NN or origin:ADMIN:NN")
        admin: int | str = parts[1]
        if "." in parts[1]:
            try:
                ipaddress.IPv4Address(parts[1])
            except ValueError:
                raise ValueError(f"extended community {text!r}: {parts[1]!r} is not an IPv4 address") from None
        elif parts[1].isdigit():
            admin = int(parts[1])
        else:
            raise ValueError(f"extended community {text!r}: {parts[1]!r} is not an ASN or IPv4 address")
        return cls.build(aliases[parts[0].lower()], admin, int(parts[2]))


def route_target(text: str) -> ExtCommunity:
    """``route_target('65000:100')`` or ``route_target('target:65000:100')``."""
    t = str(text)
    return ExtCommunity.parse(t if t.count(":") == 2 else f"target:{t}")
