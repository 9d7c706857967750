"""Numbers from the BGP RFCs: message types, attribute codes, AFI/SAFI, error codes."""
from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096  # RFC 4271 section 4.1
MAX_EXTENDED_MESSAGE_LEN = 65535  # RFC 8654
BGP_VERSION = 4
AS_TRANS = 23456  # RFC 6793


class MessageType(IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class AttrType(IntEnum):
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITY = 32


class AttrFlag:
    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class Afi(IntEnum):
    IPV4 = 1
    IPV6 = 2


class Safi(IntEnum):
    UNICAST = 1
    MPLS_VPN = 128


class Family(NamedTuple):
    """An address family: (AFI, SAFI)."""

    afi: int
    safi: int

    @property
    def name(self) -> str:
        return FAMILY_NAMES.get(self, f"afi{self.afi}-safi{self.safi}")

    @property
    def is_vpn(self) -> bool:
        return self.safi == Safi.MPLS_VPN

    @property
    def addr_len(self) -> int:
        return 4 if self.afi == Afi.IPV4 else 16

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> "Family":
        try:
            return FAMILY_BY_NAME[text.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown address family {text!r} (known: {', '.join(sorted(SHORT_NAMES))})") from None


IPV4_UNICAST = Family(Afi.IPV4, Safi.UNICAST)
IPV6_UNICAST = Family(Afi.IPV6, Safi.UNICAST)
VPNV4 = Family(Afi.IPV4, Safi.MPLS_VPN)
VPNV6 = Family(Afi.IPV6, Safi.MPLS_VPN)
SUPPORTED_FAMILIES = (IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6)

FAMILY_NAMES = {
    IPV4_UNICAST: "ipv4-unicast",
    IPV6_UNICAST: "ipv6-unicast",
    VPNV4: "vpnv4",
    VPNV6: "vpnv6",
}
SHORT_NAMES = {"ipv4": IPV4_UNICAST, "ipv6": IPV6_UNICAST, "vpnv4": VPNV4, "vpnv6": VPNV6}
FAMILY_BY_NAME = {
    **SHORT_NAMES,
    **{v: k for k, v in FAMILY_NAMES.items()},
    "ipv4-vpn": VPNV4,
    "ipv6-vpn": VPNV6,
    "l3vpn-ipv4-unicast": VPNV4,
    "l3vpn-ipv6-unicast": VPNV6,
}


class ErrorCode(IntEnum):
    """NOTIFICATION error codes (RFC 4271 section 4.5)."""

    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7  # RFC 7313
    SEND_HOLD_TIMER_EXPIRED = 8  # RFC 9687


class HeaderSubcode(IntEnum):
    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(IntEnum):
    UNSUPPORTED_VERSION = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7  # RFC 5492


class UpdateSubcode(IntEnum):
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN = 6
    INVALID_NEXT_HOP = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class CeaseSubcode(IntEnum):
    """RFC 4486."""

    MAX_PREFIXES = 1
    ADMIN_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMIN_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9  # RFC 8538


class FsmSubcode(IntEnum):
    """RFC 6608."""

    UNSPECIFIED = 0
    UNEXPECTED_IN_OPENSENT = 1
    UNEXPECTED_IN_OPENCONFIRM = 2
    UNEXPECTED_IN_ESTABLISHED = 3
