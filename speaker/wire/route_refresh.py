"""ROUTE-REFRESH (RFC 2918) and its enhanced subtypes BoRR/EoRR (RFC 7313)."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .constants import HEADER_LEN, Family, MessageType
from .context import CodecContext
from .errors import RouteRefreshError

SUBTYPE_REQUEST = 0
SUBTYPE_BORR = 1
SUBTYPE_EORR = 2


@dataclass(frozen=True)
class RouteRefresh:
    family: Family
    subtype: int = SUBTYPE_REQUEST

    type: int = field(default=MessageType.ROUTE_REFRESH, init=False, repr=False, compare=False)

    def encode(self, ctx: CodecContext | None = None) -> bytes:
        body = struct.pack("!HBB", self.family.afi, self.subtype, self.family.safi)
        return b"\xff" * 16 + struct.pack("!HB", HEADER_LEN + len(body), MessageType.ROUTE_REFRESH) + body


def decode_route_refresh(body: bytes) -> RouteRefresh:
    if len(body) != 4:
        # RFC 7313 section 5: ROUTE-REFRESH Message Error / Invalid Message Length; the data
        # field carries the complete ROUTE-REFRESH message, header included.
        whole = b"\xff" * 16 + struct.pack("!HB", HEADER_LEN + len(body), MessageType.ROUTE_REFRESH) + bytes(body)
        raise RouteRefreshError(1, whole, f"ROUTE-REFRESH body of {len(body)} octets")
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(Family(afi, safi), subtype)
