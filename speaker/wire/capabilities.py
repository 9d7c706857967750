"""OPEN capabilities (RFC 5492) and the ones l3fab understands.

Unknown capabilities are kept verbatim (FRR sends hostname, software version and
others) and are never fatal.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .constants import Family
from .errors import LocalProtocolError

CAP_MULTIPROTOCOL = 1  # RFC 4760
CAP_ROUTE_REFRESH = 2  # RFC 2918
CAP_EXTENDED_NEXT_HOP = 5  # RFC 8950
CAP_EXTENDED_MESSAGE = 6  # RFC 8654
CAP_GRACEFUL_RESTART = 64  # RFC 4724
CAP_FOUR_OCTET_AS = 65  # RFC 6793
CAP_ADD_PATH = 69  # RFC 7911
CAP_ENHANCED_ROUTE_REFRESH = 70  # RFC 7313
CAP_FQDN = 73  # draft-walton-bgp-hostname-capability (FRR)


class CapabilityError(ValueError):
    """A known capability whose value does not have the length its RFC defines."""


@dataclass(frozen=True)
class Capability:
    """Base class; ``code`` is the capability code."""

    code: ClassVar[int] = 0

    def value(self) -> bytes:
        raise NotImplementedError

    def pack(self) -> bytes:
        v = self.value()
        if len(v) > 255:
            raise LocalProtocolError(f"capability {self.code} value of {len(v)} octets exceeds 255")
        return bytes((self.code, len(v))) + v


@dataclass(frozen=True)
class Multiprotocol(Capability):
    family: Family = None  # type: ignore[assignment]
    code: ClassVar[int] = CAP_MULTIPROTOCOL

    def value(self) -> bytes:
        return struct.pack("!HBB", self.family.afi, 0, self.family.safi)


@dataclass(frozen=True)
class RouteRefreshCap(Capability):
    code: ClassVar[int] = CAP_ROUTE_REFRESH

    def value(self) -> bytes:
        return b""


@dataclass(frozen=True)
class EnhancedRouteRefreshCap(Capability):
    code: ClassVar[int] = CAP_ENHANCED_ROUTE_REFRESH

    def value(self) -> bytes:
        return b""


@dataclass(frozen=True)
class ExtendedMessageCap(Capability):
    code: ClassVar[int] = CAP_EXTENDED_MESSAGE

    def value(self) -> bytes:
        return b""


@dataclass(frozen=True)
class FourOctetAs(Capability):
    asn: int = 0
    code: ClassVar[int] = CAP_FOUR_OCTET_AS

    def value(self) -> bytes:
        return struct.pack("!I", self.asn)


@dataclass(frozen=True)
class ExtendedNextHop(Capability):
    """RFC 8950: tuples of (NLRI family, next-hop AFI)."""

    entries: tuple[tuple[Family, int], ...] = ()
    code: ClassVar[int] = CAP_EXTENDED_NEXT_HOP

    def value(self) -> bytes:
        return b"".join(struct.pack("!HHH", f.afi, f.safi, nh_afi) for f, nh_afi in self.entries)


@dataclass(frozen=True)
class GracefulRestartCap(Capability):
    """RFC 4724: restart flags, restart time, per-family forwarding-state flags."""

    restart_state: bool = False
    notification: bool = False  # RFC 8538 N bit
    restart_time: int = 120
    families: tuple[tuple[Family, bool], ...] = ()
    code: ClassVar[int] = CAP_GRACEFUL_RESTART

    def value(self) -> bytes:
        flags = (0x8 if self.restart_state else 0) | (0x4 if self.notification else 0)
        head = struct.pack("!H", (flags << 12) | (self.restart_time & 0xFFF))
        return head + b"".join(
            struct.pack("!HBB", f.afi, f.safi, 0x80 if fwd else 0) for f, fwd in self.families
        )


ADDPATH_RECEIVE = 1
ADDPATH_SEND = 2


@dataclass(frozen=True)
class AddPathCap(Capability):
    """RFC 7911: (family, send/receive mode) tuples; mode 1 receive, 2 send, 3 both."""

    entries: tuple[tuple[Family, int], ...] = ()
    code: ClassVar[int] = CAP_ADD_PATH

    def value(self) -> bytes:
        return b"".join(struct.pack("!HBB", f.afi, f.safi, mode) for f, mode in self.entries)


@dataclass(frozen=True)
class FqdnCap(Capability):
    hostname: str = ""
    domain: str = ""
    code: ClassVar[int] = CAP_FQDN

    def value(self) -> bytes:
        h = self.hostname.encode()[:255]
        d = self.domain.encode()[:255]
        return bytes((len(h),)) + h + bytes((len(d),)) + d


@dataclass(frozen=True)
class UnknownCapability(Capability):
    """Any capability l3fab does not interpret; kept so it can be shown and ignored."""

    code: int = 0  # type: ignore[misc]
    raw: bytes = b""

    def value(self) -> bytes:
        return self.raw


def _need(length: int, ok: bool, name: str) -> None:
    if not ok:
        raise CapabilityError(f"{name} capability with invalid length {length}")


def decode_capability(code: int, value: bytes) -> Capability:
    """Decode one capability TLV value.  Raises :class:`CapabilityError` on a bad length."""
    n = len(value)
    if code == CAP_MULTIPROTOCOL:
        _need(n, n == 4, "multiprotocol")
        afi, _, safi = struct.unpack("!HBB", value)
        return Multiprotocol(Family(afi, safi))
    if code == CAP_ROUTE_REFRESH:
        return RouteRefreshCap()
    if code == CAP_ENHANCED_ROUTE_REFRESH:
        return EnhancedRouteRefreshCap()
    if code == CAP_EXTENDED_MESSAGE:
        return ExtendedMessageCap()
    if code == CAP_FOUR_OCTET_AS:
        _need(n, n == 4, "4-octet AS")
        return FourOctetAs(struct.unpack("!I", value)[0])
    if code == CAP_EXTENDED_NEXT_HOP:
        _need(n, n % 6 == 0, "extended next hop")
        entries = tuple(
            (Family(*struct.unpack_from("!HH", value, i)), struct.unpack_from("!H", value, i + 4)[0])
            for i in range(0, n, 6)
        )
        return ExtendedNextHop(entries)
    if code == CAP_GRACEFUL_RESTART:
        _need(n, n >= 2 and (n - 2) % 4 == 0, "graceful restart")
        head = struct.unpack("!H", value[:2])[0]
        fams = tuple(
            (Family(struct.unpack_from("!H", value, i)[0], value[i + 2]), bool(value[i + 3] & 0x80))
            for i in range(2, n, 4)
        )
        return GracefulRestartCap(bool(head & 0x8000), bool(head & 0x4000), head & 0xFFF, fams)
    if code == CAP_ADD_PATH:
        _need(n, n % 4 == 0, "ADD-PATH")
        entries = tuple(
            (Family(struct.unpack_from("!H", value, i)[0], value[i + 2]), value[i + 3]) for i in range(0, n, 4)
        )
        return AddPathCap(entries)
    if code == CAP_FQDN and n >= 1:
        hl = value[0]
        if 1 + hl <= n:
            host = value[1 : 1 + hl].decode(errors="replace")
            rest = value[1 + hl :]
            dom = rest[1 : 1 + rest[0]].decode(errors="replace") if rest else ""
            return FqdnCap(host, dom)
    return UnknownCapability(code=code, raw=bytes(value))
