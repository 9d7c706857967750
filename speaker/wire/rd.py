"""Route distinguishers (RFC 4364 section 4.2): types 0, 1 and 2; others kept as type + value."""
from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from .errors import LocalProtocolError


class RouteDistinguisher(NamedTuple):
    """An 8-octet RD.  ``admin`` is an ASN (types 0 and 2) or an IPv4 address string (type 1)."""

    type: int
    admin: int | str
    assigned: int

    def pack(self) -> bytes:
        if self.type == 0:
            return struct.pack("!HHI", 0, self.admin, self.assigned)
        if self.type == 1:
            return struct.pack("!H4sH", 1, ipaddress.IPv4Address(self.admin).packed, self.assigned)
        if self.type == 2:
            return struct.pack("!HIH", 2, self.admin, self.assigned)
        # Another type, as unpack() keeps it: the type and the 6-octet value, sent on as
        # received (an RD is an opaque number to everyone but its originator).  Before,
        # such a route was accepted but could not be sent to anyone.
        if 0 <= self.type <= 0xFFFF and self.admin == 0 and isinstance(self.assigned, int) \
                and 0 <= self.assigned < 1 << 48:
            return struct.pack("!H", self.type) + self.assigned.to_bytes(6, "big")
        raise LocalProtocolError(f"route distinguisher type {self.type} cannot be encoded")

    @classmethod
    def unpack(cls, data: bytes) -> "RouteDistinguisher":
        """Decode 8 octets.  Unknown types are kept as type + raw 6-octet value."""
        rd_type = (data[0] << 8) | data[1]
        if rd_type == 0:
            _, asn, num = struct.unpack("!HHI", data)
            return cls(0, asn, num)
        if rd_type == 1:
            return cls(1, str(ipaddress.IPv4Address(data[2:6])), (data[6] << 8) | data[7])
        if rd_type == 2:
            _, asn, num = struct.unpack("!HIH", data)
            return cls(2, asn, num)
        return cls(rd_type, 0, int.from_bytes(data[2:8], "big"))

    @classmethod
    def parse(cls, text: str) -> "RouteDistinguisher":
        """Parse ``ASN:nn`` (type 0 if the ASN fits 16 bits, else type 2), ``A.B.C.D:nn`` (type 1)."""
        admin, sep, assigned = str(text).strip().rpartition(":")
        if not sep or not admin or not assigned.isdigit():
            raise ValueError(f"route distinguisher {text!r} is not ASN:NN or A.B.C.D:NN")
        num = int(assigned)
        if "." in admin:
            try:
                ipaddress.IPv4Address(admin)
            except ValueError:
                raise ValueError(f"route distinguisher {text!r}: {admin!r} is not an IPv4 address") from None
            if num > 0xFFFF:
                raise ValueError(f"route distinguisher {text!r}: assigned number above 65535")
            return cls(1, admin, num)
        if not admin.isdigit():
            raise ValueError(f"route distinguisher {text!r} is not ASN:NN or A.B.C.D:NN")
        asn = int(admin)
        if asn <= 0xFFFF and num <= 0xFFFFFFFF:
            return cls(0, asn, num)
        if asn <= 0xFFFFFFFF and num <= 0xFFFF:
            return cls(2, asn, num)
        raise ValueError(f"route distinguisher {text!r}: numbers out of range")

    def __str__(self) -> str:
        if self.type in (0, 1, 2):
            return f"{self.admin}:{self.assigned}"
        return f"type{self.type}:{self.assigned:#x}"


ZERO_RD = b"\x00" * 8
