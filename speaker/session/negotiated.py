"""The outcome of an OPEN exchange: what both sides agreed on."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..wire.capabilities import (
    ADDPATH_RECEIVE,
    ADDPATH_SEND,
    AddPathCap,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHop,
    FourOctetAs,
    GracefulRestartCap,
    RouteRefreshCap,
)
from ..wire.constants import IPV4_UNICAST, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Family
from ..wire.context import CodecContext
from ..wire.open import Open


@dataclass(frozen=True)
class Negotiated:
    local_as: int
    peer_as: int
    local_id: str
    peer_id: str
    hold_time: int
    keepalive: float
    families: frozenset[Family]
    four_octet_as: bool
    route_refresh: bool
    enhanced_route_refresh: bool
    extended_message: bool
    extended_next_hop: frozenset[Family]
    addpath_receive: frozenset[Family]
    addpath_send: frozenset[Family]
    peer_graceful_restart: GracefulRestartCap | None
    peer_open: Open = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    @property
    def ibgp(self) -> bool:
        return self.local_as == self.peer_as

    @property
    def codec(self) -> CodecContext:
        return CodecContext(
            four_octet_as=self.four_octet_as,
            addpath_receive=self.addpath_receive,
            addpath_send=self.addpath_send,
            max_message=MAX_EXTENDED_MESSAGE_LEN if self.extended_message else MAX_MESSAGE_LEN,
        )


def _families(o: Open) -> frozenset[Family]:
    fams = o.families()
    # RFC 4760 section 8: no multiprotocol capability means IPv4 unicast only.
    return fams if fams else frozenset({IPV4_UNICAST})


def negotiate(local: Open, peer: Open, hold_time: int) -> Negotiated:
    """Combine our OPEN and the peer's (hold time already validated)."""
    fams = _families(local) & _families(peer)
    four = bool(local.first(FourOctetAs) and peer.first(FourOctetAs))

    def entries(o: Open, cls: type[AddPathCap | ExtendedNextHop]) -> set[tuple[Family, int]]:
        return {e for c in o.find(cls) for e in c.entries}

    ours_ap = {f: m for f, m in entries(local, AddPathCap)}
    theirs_ap = {f: m for f, m in entries(peer, AddPathCap)}
    ap_rx = frozenset(f for f in fams if ours_ap.get(f, 0) & ADDPATH_RECEIVE and theirs_ap.get(f, 0) & ADDPATH_SEND)
    ap_tx = frozenset(f for f in fams if ours_ap.get(f, 0) & ADDPATH_SEND and theirs_ap.get(f, 0) & ADDPATH_RECEIVE)
    enh = frozenset(f for f, nh_afi in entries(local, ExtendedNextHop) & entries(peer, ExtendedNextHop) if nh_afi == 2)
    keepalive = hold_time / 3 if hold_time else 0
    return Negotiated(
        local_as=local.asn,
        peer_as=peer.asn,
        local_id=local.router_id,
        peer_id=peer.router_id,
        hold_time=hold_time,
        keepalive=keepalive,
        families=fams,
        four_octet_as=four,
        route_refresh=bool(peer.first(RouteRefreshCap) or peer.first(EnhancedRouteRefreshCap)),
        enhanced_route_refresh=bool(local.first(EnhancedRouteRefreshCap) and peer.first(EnhancedRouteRefreshCap)),
        extended_message=bool(local.first(ExtendedMessageCap) and peer.first(ExtendedMessageCap)),
        extended_next_hop=enh,
        addpath_receive=ap_rx,
        addpath_send=ap_tx,
        peer_graceful_restart=peer.first(GracefulRestartCap),
        peer_open=peer,
    )
