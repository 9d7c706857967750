"""Hand-assembled BGP byte strings for the unit tests.

Everything here builds bytes from the RFC field layouts directly, without the
codec under test, so a test comparing ``codec output == bgpbytes output``
checks the codec against an independent reading of the RFC.
"""
from __future__ import annotations

import ipaddress
import struct

MARKER = b"\xff" * 16

OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5

# Attribute flag octets (RFC 4271 section 4.3).
WELL_KNOWN = 0x40  # optional=0, transitive=1
OPT_TRANS = 0xC0
OPT_NONTRANS = 0x80
PARTIAL = 0x20
EXT_LEN = 0x10


def hx(text: str) -> bytes:
    """``bytes.fromhex`` that ignores spaces, newlines and ``|`` separators."""
    return bytes.fromhex("".join(text.replace("|", " ").split()))


def message(msg_type: int, body: bytes = b"", length: int | None = None) -> bytes:
    """A framed message; ``length`` overrides the header's length field."""
    total = 19 + len(body) if length is None else length
    return MARKER + struct.pack("!HB", total, msg_type) + body


def attr(flags: int, code: int, value: bytes) -> bytes:
    """One path attribute TLV; the extended-length form when the flag asks for it."""
    if flags & EXT_LEN:
        return struct.pack("!BBH", flags, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def update_body(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri


def update(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return message(UPDATE, update_body(withdrawn, attrs, nlri))


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def prefix(text: str) -> bytes:
    """Length octet + the minimum number of address octets (RFC 4271 section 4.3)."""
    net = ipaddress.ip_network(text)
    return bytes((net.prefixlen,)) + net.network_address.packed[: (net.prefixlen + 7) // 8]


def label(value: int, bottom: bool = True) -> bytes:
    """One 3-octet MPLS label stack entry (RFC 8277 section 2)."""
    return ((value << 4) | (1 if bottom else 0)).to_bytes(3, "big")


def rd0(asn: int, num: int) -> bytes:
    return struct.pack("!HHI", 0, asn, num)


def rd1(addr: str, num: int) -> bytes:
    return struct.pack("!H", 1) + ip(addr) + struct.pack("!H", num)


def rd2(asn: int, num: int) -> bytes:
    return struct.pack("!HIH", 2, asn, num)


def vpn_prefix(rd: bytes, text: str, labels: tuple[int, ...] = (), withdraw_label: bool = False) -> bytes:
    """Labeled VPN NLRI (RFC 4364 section 4.3.4): bit length, label stack, RD, prefix."""
    net = ipaddress.ip_network(text)
    if withdraw_label:
        stack = b"\x80\x00\x00"
    else:
        stack = b"".join(label(v, i == len(labels) - 1) for i, v in enumerate(labels))
    bits = len(stack) * 8 + 64 + net.prefixlen
    return bytes((bits,)) + stack + rd + net.network_address.packed[: (net.prefixlen + 7) // 8]


def mp_reach(afi: int, safi: int, next_hop: bytes, nlri: bytes, flags: int = OPT_NONTRANS) -> bytes:
    value = struct.pack("!HBB", afi, safi, len(next_hop)) + next_hop + b"\x00" + nlri
    return attr(flags | (EXT_LEN if len(value) > 255 else 0), 14, value)


def mp_unreach(afi: int, safi: int, nlri: bytes, flags: int = OPT_NONTRANS) -> bytes:
    value = struct.pack("!HB", afi, safi) + nlri
    return attr(flags | (EXT_LEN if len(value) > 255 else 0), 15, value)


def as_path_value(*segments: tuple[int, tuple[int, ...]], four: bool = True) -> bytes:
    fmt = "!%dI" if four else "!%dH"
    return b"".join(bytes((t, len(a))) + struct.pack(fmt % len(a), *a) for t, a in segments)


# The usual mandatory attributes of an IPv4 announcement.
ORIGIN_IGP = attr(WELL_KNOWN, 1, b"\x00")
AS_PATH_65001 = attr(WELL_KNOWN, 2, as_path_value((2, (65001,))))
EMPTY_AS_PATH = attr(WELL_KNOWN, 2, b"")


def next_hop(addr: str) -> bytes:
    return attr(WELL_KNOWN, 3, ip(addr))


def open_body(asn: int, hold: int, router_id: str, caps: bytes = b"", version: int = 4) -> bytes:
    params = bytes((2, len(caps))) + caps if caps else b""
    return struct.pack("!BHH4sB", version, asn, hold, ip(router_id), len(params)) + params


def cap(code: int, value: bytes = b"") -> bytes:
    return bytes((code, len(value))) + value
