"""Sans-IO BGP-4 wire codec: typed immutable messages in, bytes out, and back."""
from .attributes import (  # noqa: F401
    Aggregator, AsPath, AsSegment, AtomicAggregate, ClusterList, Communities, ExtendedCommunities,
    LargeCommunities, LargeCommunity, LocalPref, Med, MpNextHop, MpReachNlri, MpUnreachNlri, NextHop,
    Origin, OriginatorId, PathAttribute, UnknownAttribute,
)
from .constants import IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6, Afi, Family, Safi  # noqa: F401
from .context import CodecContext  # noqa: F401
from .errors import BgpError, LocalProtocolError, RemoteProtocolError  # noqa: F401
from .extcommunity import ExtCommunity, route_target  # noqa: F401
from .message import KEEPALIVE, Keepalive, MessageReader, decode_message  # noqa: F401
from .nlri import PathId, Prefix, VpnPrefix  # noqa: F401
from .notification import Notification  # noqa: F401
from .open import Open  # noqa: F401
from .rd import RouteDistinguisher  # noqa: F401
from .route_refresh import RouteRefresh  # noqa: F401
from .update import Fault, Update, end_of_rib, pack_announcements, pack_withdrawals  # noqa: F401
