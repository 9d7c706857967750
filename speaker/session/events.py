"""What a :class:`~speaker.session.fsm.Session` asks its transport to do, and tells its owner."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..wire.notification import Notification
from ..wire.route_refresh import RouteRefresh
from ..wire.update import Update
from .negotiated import Negotiated


class State(str, Enum):
    """RFC 4271 section 8.2.2."""

    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPENSENT = "OpenSent"
    OPENCONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


class Timer(str, Enum):
    CONNECT_RETRY = "connect-retry"
    HOLD = "hold"
    KEEPALIVE = "keepalive"
    IDLE_HOLD = "idle-hold"  # automatic restart after an error (RFC 4271 8.1.1 attribute)
    SEND_HOLD = "send-hold"  # RFC 9687: nothing could be sent to the peer for this long


# ----- actions for the transport


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Connect:
    """Open an outgoing TCP connection to the peer."""


@dataclass(frozen=True)
class Disconnect:
    """Close the TCP connection after writing what was queued; ``abort``: at once,
    dropping what was queued (the peer reads nothing, so it would never drain)."""

    abort: bool = False


@dataclass(frozen=True)
class StartTimer:
    timer: Timer
    seconds: float


@dataclass(frozen=True)
class StopTimer:
    timer: Timer


# ----- events for the owner


@dataclass(frozen=True)
class StateChanged:
    old: State
    new: State
    reason: str = ""


@dataclass(frozen=True)
class Established:
    negotiated: Negotiated


@dataclass(frozen=True)
class UpdateReceived:
    update: Update


@dataclass(frozen=True)
class RouteRefreshReceived:
    refresh: RouteRefresh


@dataclass(frozen=True)
class NotificationReceived:
    notification: Notification


@dataclass(frozen=True)
class NotificationSent:
    notification: Notification


@dataclass(frozen=True)
class SessionDown:
    """The session left Established.  ``notification``: a NOTIFICATION was sent or
    received (RFC 4724: graceful restart keeps routes only when none was)."""

    reason: str
    notification: bool = False


# Everything a Session method returns: actions for the transport, events for the owner.
SessionOutput = (
    Send
    | Connect
    | Disconnect
    | StartTimer
    | StopTimer
    | StateChanged
    | Established
    | UpdateReceived
    | RouteRefreshReceived
    | NotificationReceived
    | NotificationSent
    | SessionDown
)
