"""Sans-IO BGP-4 wire codec: typed immutable messages in, bytes out, and back."""
from .attributes import (
    Aggregator, AsPath, AsSegment, AtomicAggregate, ClusterList, Communities, ExtendedCommunities,
    LargeCommunities, LargeCommunity, LocalPref, Med, MpNextHop, MpReachNlri, MpUnreachNlri, NextHop,
    Origin, OriginatorId, PathAttribute, UnknownAttribute,
)
from .constants import IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6, Afi, Family, Safi
from .context import CodecContext
from .errors import BgpError, LocalProtocolError, RemoteProtocolError
from .extcommunity import ExtCommunity, route_target
from .message import KEEPALIVE, Keepalive, MessageReader, decode_message
from .nlri import PathId, Prefix, VpnPrefix
from .notification import Notification
from .open import Open
from .rd import RouteDistinguisher
from .route_refresh import RouteRefresh
from .update import Fault, Packed, Update, end_of_rib, pack_announcements, pack_reachable, pack_withdrawals

__all__ = [
    "Aggregator", "AsPath", "AsSegment", "AtomicAggregate", "ClusterList", "Communities", "ExtendedCommunities",
    "LargeCommunities", "LargeCommunity", "LocalPref", "Med", "MpNextHop", "MpReachNlri", "MpUnreachNlri",
    "NextHop", "Origin", "OriginatorId", "PathAttribute", "UnknownAttribute", "IPV4_UNICAST", "IPV6_UNICAST",
    "VPNV4", "VPNV6", "Afi", "Family", "Safi", "CodecContext", "BgpError", "LocalProtocolError",
    "RemoteProtocolError", "ExtCommunity", "route_target", "KEEPALIVE", "Keepalive", "MessageReader",
    "decode_message", "PathId", "Prefix", "VpnPrefix", "Notification", "Open", "RouteDistinguisher", "RouteRefresh",
    "Fault", "Packed", "Update", "end_of_rib", "pack_announcements", "pack_reachable", "pack_withdrawals",
]
