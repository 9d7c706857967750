"""The BGP finite state machine of RFC 4271 section 8, sans-IO.

A :class:`Session` owns one TCP connection's worth of protocol state.  It is fed
connection events, received bytes and timer expiries, and returns a list of
actions (bytes to send, timers to start/stop, connect/disconnect) and events
(state changes, updates, notifications).  It never touches a socket or a clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..wire.capabilities import (
    ADDPATH_RECEIVE,
    AddPathCap,
    Capability,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHop,
    FourOctetAs,
    GracefulRestartCap,
    Multiprotocol,
    RouteRefreshCap,
)
from ..wire.constants import (
    IPV4_UNICAST,
    CeaseSubcode,
    ErrorCode,
    Family,
    FsmSubcode,
    MessageType,
    OpenSubcode,
)
from ..wire.errors import OpenMessageError, RemoteProtocolError
from ..wire.message import KEEPALIVE_BYTES, Message, MessageReader
from ..wire.notification import Notification, decode_notification
from ..wire.open import Open, decode_open
from ..wire.route_refresh import RouteRefresh, decode_route_refresh
from ..text import escape_text
from ..wire.update import Update, decode_update
from .events import (
    Connect,
    Disconnect,
    Established,
    NotificationReceived,
    NotificationSent,
    RouteRefreshReceived,
    Send,
    SessionDown,
    SessionOutput,
    StartTimer,
    State,
    StateChanged,
    StopTimer,
    Timer,
    UpdateReceived,
)
from .negotiated import Negotiated, negotiate

LARGE_HOLD_TIME = 240  # RFC 4271 section 8.2.2: hold timer in OpenSent

DEFAULT_MIN_HOLD_TIME = 3
"""The smallest hold time a peer's OPEN may bring us to, unless we configured 0 ourselves.

A peer's hold time 0 would switch off KEEPALIVEs and the hold timer (RFC 4271 4.2):
a peer that then stops talking, or never reads, keeps the session, and its routes,
forever.  So when our own hold time is not 0, an OPEN with a hold time below this
minimum (0 included) is refused with 2/6 (unacceptable hold time).  3 s is the least
RFC 4271 allows; a neighbour may ask for more (``SessionConfig.min_hold_time``)."""

DEFAULT_SEND_HOLD_TIME = 480.0
"""RFC 9687 SendHoldTime: the session is closed (error code 8) when nothing could be
sent to the peer for the greater of this and twice the negotiated hold time, the
RFC's suggested default.  Not used when the negotiated hold time is 0 (RFC 9687 3.3)."""

DEFAULT_MAX_SEND_BUFFER = 32 * 1024 * 1024
"""Octets queued for a peer, beyond what the kernel's socket buffer holds, before the
session is closed as if its send hold timer had expired: a peer that reads slower
than we produce UPDATEs cannot make us buffer without bound (a full table is a few
MiB of UPDATEs; the send hold timer handles a peer that reads nothing at all)."""

SEND_HOLD_TIMER_EXPIRED = 8  # RFC 9687 section 5: the NOTIFICATION error code


@dataclass(frozen=True)
class SessionConfig:
    """What one side of a session is configured with.

    ``peer_as``: an ASN, ``"external"`` (any ASN but ours), ``"internal"`` (ours) or
    ``None`` (any).
    """

    local_as: int
    router_id: str
    peer_as: int | str | None = None
    families: tuple[Family, ...] = (IPV4_UNICAST,)
    hold_time: int = 90
    connect_retry: float = 5.0
    idle_hold: float = 1.0
    passive: bool = False
    addpath_receive: tuple[Family, ...] = ()
    graceful_restart_time: int | None = None  # announce RFC 4724 capability when set
    restarting: bool = False  # R bit: we restarted and kept forwarding state
    graceful_restart_families: tuple[Family, ...] = ()  # F bit set for these when restarting
    extended_message: bool = True
    extra_capabilities: tuple[Capability, ...] = field(default=())
    # None: the module defaults, read when used (DEFAULT_MIN_HOLD_TIME, DEFAULT_SEND_HOLD_TIME,
    # DEFAULT_MAX_SEND_BUFFER).
    min_hold_time: int | None = None
    send_hold_time: float | None = None
    max_send_buffer: int | None = None

    @property
    def effective_min_hold_time(self) -> int:
        return DEFAULT_MIN_HOLD_TIME if self.min_hold_time is None else self.min_hold_time

    @property
    def effective_max_send_buffer(self) -> int:
        return DEFAULT_MAX_SEND_BUFFER if self.max_send_buffer is None else self.max_send_buffer

    def send_hold_for(self, hold_time: int) -> float:
        """The RFC 9687 SendHoldTime for a negotiated ``hold_time`` (0: none)."""
        if not hold_time:
            return 0.0
        if self.send_hold_time is not None:
            return self.send_hold_time
        return max(DEFAULT_SEND_HOLD_TIME, 2.0 * hold_time)

    def open_message(self) -> Open:
        caps: list[Capability] = [Multiprotocol(f) for f in self.families]
        caps += [RouteRefreshCap(), EnhancedRouteRefreshCap(), FourOctetAs(self.local_as)]
        if self.extended_message:
            caps.append(ExtendedMessageCap())
        # RFC 8950: IPv4 (unicast and VPN) NLRI with IPv6 next hops.
        enh = tuple((f, 2) for f in self.families if f.afi == 1)
        if enh:
            caps.append(ExtendedNextHop(enh))
        if self.addpath_receive:
            caps.append(AddPathCap(tuple((f, ADDPATH_RECEIVE) for f in self.addpath_receive)))
        if self.graceful_restart_time is not None:
            caps.append(GracefulRestartCap(self.restarting, False, self.graceful_restart_time,
                                           tuple((fam, self.restarting) for fam in self.graceful_restart_families)))
        caps += list(self.extra_capabilities)
        return Open(self.local_as, self.hold_time, self.router_id, tuple(caps))


class Session:
    """One BGP session's state machine (RFC 4271 section 8)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.state = State.IDLE
        self.negotiated: Negotiated | None = None
        self.peer_open: Open | None = None
        self.local_open: Open = config.open_message()
        self.connect_retry_counter = 0
        self.last_error: str = ""
        self._reader = MessageReader()
        self._out: list[SessionOutput] = []
        self._connected = False
        self._notified = False
        self.messages_in = 0
        self.messages_out = 0
        self.updates_in = 0
        self.updates_out = 0

    @property
    def connected(self) -> bool:
        """A TCP connection is bound to this session."""
        return self._connected

    def reconfigure(self, config: SessionConfig) -> bool:
        """Use ``config`` from the next connection on (the OPEN we send is built from it).
        Only between connections: False (and nothing changes) while connected."""
        if self._connected:
            return False
        self.config = config
        self.local_open = config.open_message()
        return True

    # ------------------------------------------------------------------ helpers

    def _emit(self, item: SessionOutput) -> None:
        self._out.append(item)

    def _take(self) -> list[SessionOutput]:
        out, self._out = self._out, []
        return out

    def _goto(self, new: State, reason: str = "") -> None:
        if new is not self.state:
            old, self.state = self.state, new
            self._emit(StateChanged(old, new, reason))
            if old is State.ESTABLISHED:
                self._emit(SessionDown(reason, self._notified))

    def _send(self, data: bytes) -> None:
        self.messages_out += 1
        self._emit(Send(data))

    def _send_notification(self, n: Notification) -> None:
        self._notified = True
        self._send(n.encode())
        self._emit(NotificationSent(n))

    def _stop_all_timers(self) -> None:
        for t in (Timer.CONNECT_RETRY, Timer.HOLD, Timer.KEEPALIVE, Timer.SEND_HOLD):
            self._emit(StopTimer(t))

    def _fail(self, reason: str, notification: Notification | None = None, restart: bool = True,
              abort: bool = False) -> None:
        """Drop to Idle: optionally notify, close the connection, schedule a restart.
        ``abort``: drop the connection at once instead of flushing what is queued."""
        self.last_error = reason
        if notification is not None and self._connected:
            self._send_notification(notification)
        self._stop_all_timers()
        if self._connected:
            self._emit(Disconnect(abort))
            self._connected = False
        self._reader = MessageReader()
        self.negotiated = None
        self.connect_retry_counter += 1
        self._goto(State.IDLE, reason)
        if restart:
            self._emit(StartTimer(Timer.IDLE_HOLD, self.config.idle_hold))

    # ------------------------------------------------------------------ inputs

    def start(self, passive: bool | None = None) -> list[SessionOutput]:
        """ManualStart (or ManualStart_with_PassiveTcpEstablishment).

        ``passive`` overrides the configuration for this start only: a session made for
        one inbound connection waits for it instead of connecting, yet restarts (after
        an error) as configured."""
        if self.state is State.IDLE:
            self._emit(StopTimer(Timer.IDLE_HOLD))
            if self.config.passive if passive is None else passive:
                self._goto(State.ACTIVE, "passive start")
            else:
                self._goto(State.CONNECT, "start")
                self._emit(StartTimer(Timer.CONNECT_RETRY, self.config.connect_retry))
                self._emit(Connect())
        return self._take()

    def stop(self, notification: Notification | None = None, restart: bool = False) -> list[SessionOutput]:
        """ManualStop: send a Cease (administrative shutdown unless given) and go Idle."""
        n = notification or Notification.shutdown()
        notify = n if self.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED) else None
        self._fail(f"stopped: {n.describe()}", notify, restart)
        if not restart:
            self._emit(StopTimer(Timer.IDLE_HOLD))
        return self._take()

    def connection_made(self) -> list[SessionOutput]:
        """TcpConnectionConfirmed / Tcp_CR_Acked: send our OPEN."""
        if self.state in (State.IDLE, State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
            # A connection we can't use now; the owner must drop it.
            self._emit(Disconnect())
            return self._take()
        self._connected = True
        self._notified = False
        self._emit(StopTimer(Timer.CONNECT_RETRY))
        self._send(self.local_open.encode())
        self._emit(StartTimer(Timer.HOLD, LARGE_HOLD_TIME))
        self._goto(State.OPENSENT, "connected")
        return self._take()

    def connection_failed(self, reason: str = "connection failed") -> list[SessionOutput]:
        """TcpConnectionFails: in Connect/Active keep trying; otherwise drop to Idle."""
        if self.state is State.CONNECT:
            self._goto(State.ACTIVE, reason)
            self.last_error = reason
        elif self.state is State.ACTIVE:
            self.last_error = reason
        elif self.state is State.OPENSENT:
            # RFC 4271 section 8.2.2: close, restart ConnectRetryTimer, listen, go Active.
            self._connected = False
            self.last_error = reason
            self._reader = MessageReader()
            self._emit(StopTimer(Timer.HOLD))
            self._emit(StartTimer(Timer.CONNECT_RETRY, self.config.connect_retry))
            self._goto(State.ACTIVE, reason)
        elif self.state is not State.IDLE:
            self._connected = False
            self._fail(reason)
        return self._take()

    def timer_expired(self, timer: Timer) -> list[SessionOutput]:
        if timer is Timer.CONNECT_RETRY:
            if self.state in (State.CONNECT, State.ACTIVE) and not self.config.passive:
                self._goto(State.CONNECT, "connect retry")
                self._emit(StartTimer(Timer.CONNECT_RETRY, self.config.connect_retry))
                self._emit(Connect())
        elif timer is Timer.HOLD:
            if self.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
                self._fail("hold timer expired", Notification(ErrorCode.HOLD_TIMER_EXPIRED, 0))
        elif timer is Timer.KEEPALIVE:
            if self.state in (State.OPENCONFIRM, State.ESTABLISHED) and self.negotiated and self.negotiated.hold_time:
                self._send(KEEPALIVE_BYTES)
                self._emit(StartTimer(Timer.KEEPALIVE, self.negotiated.keepalive))
        elif timer is Timer.SEND_HOLD:
            if self.state is State.ESTABLISHED and self._connected and self._send_hold():
                self._send_hold_expired(f"send hold timer expired: nothing could be sent to the peer for "
                                        f"{self._send_hold():g}s")
        elif timer is Timer.IDLE_HOLD:
            if self.state is State.IDLE:
                return self.start()
        return self._take()

    # ------------------------------------------------------------------ RFC 9687 send hold

    def _send_hold(self) -> float:
        return self.config.send_hold_for(self.negotiated.hold_time if self.negotiated else 0)

    def _send_hold_expired(self, reason: str) -> None:
        # RFC 9687 section 6: the NOTIFICATION is still sent (it will hardly arrive) and
        # the connection dropped at once: what is queued would never drain.
        self._fail(reason, Notification(SEND_HOLD_TIMER_EXPIRED, 0), abort=True)

    def send_progress(self) -> list[SessionOutput]:
        """The transport saw our data leave: the peer acknowledged some of it, or nothing
        is waiting.  Restarts the SendHoldTimer (RFC 9687 section 3.3: "each time the
        local system sends a message"; sent means taken by the peer, not queued here)."""
        if self.state is State.ESTABLISHED and self._connected:
            hold = self._send_hold()
            if hold:
                self._emit(StartTimer(Timer.SEND_HOLD, hold))
        return self._take()

    def send_stalled(self, reason: str) -> list[SessionOutput]:
        """The transport cannot hold what we send (its write buffer passed
        ``config.effective_max_send_buffer``): close as when the SendHoldTimer expires."""
        if self._connected and self.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
            self._send_hold_expired(f"send buffer overflow: {reason}")
        return self._take()

    def data_received(self, data: bytes) -> list[SessionOutput]:
        if not self._connected:
            return self._take()
        self._reader.feed(data)
        try:
            for msg_type, body in self._reader.frames():
                self.messages_in += 1
                self._handle(msg_type, body)
                if not self._connected:
                    break
        except RemoteProtocolError as e:
            self._fail(f"protocol error from peer: {escape_text(e.reason)}", Notification(e.code, e.subcode, e.data))
        return self._take()

    # ------------------------------------------------------------------ sending

    def send(self, message: Message) -> list[SessionOutput]:
        """Encode and send an UPDATE / ROUTE-REFRESH / NOTIFICATION in Established."""
        if self.state is not State.ESTABLISHED or self.negotiated is None:
            return []
        if isinstance(message, Update):
            self.updates_out += 1
        if isinstance(message, Notification):
            self._fail(f"sent {message.describe()}", message)
            return self._take()
        self._send(message.encode(self.negotiated.codec))
        return self._take()

    def send_raw_updates(self, chunks: list[bytes]) -> list[SessionOutput]:
        """Send pre-encoded UPDATE messages (see :func:`speaker.wire.update.pack_announcements`)."""
        if self.state is not State.ESTABLISHED:
            return []
        self.updates_out += len(chunks)
        self.messages_out += len(chunks)
        return [Send(b"".join(chunks))]

    # ------------------------------------------------------------------ receiving

    def _handle(self, msg_type: int, body: bytes) -> None:
        st = self.state
        if msg_type == MessageType.NOTIFICATION:
            n = decode_notification(body)
            self._notified = True
            self._emit(NotificationReceived(n))
            # The peer's text (an RFC 9003 shutdown communication) ends up in logs and
            # in the CLI: escaped here, where it enters.
            self._fail(f"notification from peer: {escape_text(n.describe())}", None)
            return
        if st is State.OPENSENT:
            if msg_type != MessageType.OPEN:
                self._fail("unexpected message in OpenSent",
                           Notification(ErrorCode.FSM, FsmSubcode.UNEXPECTED_IN_OPENSENT))
                return
            self._receive_open(decode_open(body))
            return
        if st is State.OPENCONFIRM:
            if msg_type == MessageType.KEEPALIVE:
                neg = self.negotiated
                assert neg is not None  # set by the OPEN that led to OpenConfirm
                self._emit(StartTimer(Timer.HOLD, neg.hold_time) if neg.hold_time else StopTimer(Timer.HOLD))
                if neg.hold_time:  # RFC 9687 section 3.3
                    self._emit(StartTimer(Timer.SEND_HOLD, self._send_hold()))
                self._goto(State.ESTABLISHED, "keepalive received")
                self._emit(Established(neg))
                return
            self._fail("unexpected message in OpenConfirm",
                       Notification(ErrorCode.FSM, FsmSubcode.UNEXPECTED_IN_OPENCONFIRM))
            return
        if st is State.ESTABLISHED:
            neg = self.negotiated
            assert neg is not None  # kept from OpenConfirm while Established
            if neg.hold_time:
                self._emit(StartTimer(Timer.HOLD, neg.hold_time))
            if msg_type == MessageType.UPDATE:
                self.updates_in += 1
                self._emit(UpdateReceived(decode_update(body, self._reader.ctx)))
            elif msg_type == MessageType.KEEPALIVE:
                pass
            elif msg_type == MessageType.ROUTE_REFRESH:
                rr = decode_route_refresh(body)
                if _refresh_acceptable(rr, neg):
                    self._emit(RouteRefreshReceived(rr))
            else:
                self._fail("unexpected message in Established",
                           Notification(ErrorCode.FSM, FsmSubcode.UNEXPECTED_IN_ESTABLISHED))
            return
        self._fail(f"message type {msg_type} in state {st.value}", Notification(ErrorCode.FSM, 0))

    def _receive_open(self, peer: Open) -> None:
        cfg = self.config
        if peer.hold_time in (1, 2):
            raise OpenMessageError(OpenSubcode.UNACCEPTABLE_HOLD_TIME, b"", f"hold time {peer.hold_time}")
        if cfg.hold_time and peer.hold_time < cfg.effective_min_hold_time:
            # Hold time 0 included: no keepalives, no liveness (see DEFAULT_MIN_HOLD_TIME).
            raise OpenMessageError(OpenSubcode.UNACCEPTABLE_HOLD_TIME, b"",
                                   f"hold time {peer.hold_time} below the minimum {cfg.effective_min_hold_time}")
        want = cfg.peer_as
        ok = (
            want is None
            or (want == "external" and peer.asn != cfg.local_as)
            or (want == "internal" and peer.asn == cfg.local_as)
            or (isinstance(want, int) and peer.asn == want)
        )
        if not ok:
            raise OpenMessageError(OpenSubcode.BAD_PEER_AS, (peer.my_as_field or 0).to_bytes(2, "big"),
                                   f"peer AS {peer.asn}, expected {want}")
        if peer.router_id == "0.0.0.0" or (peer.asn == cfg.local_as and peer.router_id == cfg.router_id):
            raise OpenMessageError(OpenSubcode.BAD_BGP_IDENTIFIER, b"", f"BGP identifier {peer.router_id}")
        hold = min(cfg.hold_time, peer.hold_time)
        self.peer_open = peer
        self.negotiated = negotiate(self.local_open, peer, hold)
        self._reader.ctx = self.negotiated.codec
        self._emit(StopTimer(Timer.CONNECT_RETRY))
        self._send(KEEPALIVE_BYTES)
        if hold:
            self._emit(StartTimer(Timer.KEEPALIVE, self.negotiated.keepalive))
            self._emit(StartTimer(Timer.HOLD, hold))
        else:
            self._emit(StopTimer(Timer.HOLD))
        self._goto(State.OPENCONFIRM, "open received")

    # ------------------------------------------------------------------ collision

    def collision_loser(self, other_remote_id: str, local_initiated: bool, remote_as: int | None = None) -> bool:
        """RFC 4271 section 6.8: should *this* connection be closed in a collision?

        The connection initiated by the speaker with the higher BGP identifier
        survives.  ``local_initiated`` says whether this session's connection was
        opened by us.  When both identifiers are equal (possible between different
        ASes), the connection initiated by the speaker with the larger AS number
        survives (RFC 6286 section 2.3); ``remote_as`` defaults to the peer's AS from
        its OPEN or the configuration.
        """
        local_id = tuple(int(x) for x in self.config.router_id.split("."))
        remote_id = tuple(int(x) for x in other_remote_id.split("."))
        if local_id == remote_id:
            other_as: int | str | None = remote_as
            if other_as is None:
                other_as = self.peer_open.asn if self.peer_open is not None else self.config.peer_as
            if isinstance(other_as, int) and other_as != self.config.local_as:
                return local_initiated if self.config.local_as < other_as else not local_initiated
        if local_id > remote_id:
            return not local_initiated
        return local_initiated

    def collision_close(self) -> list[SessionOutput]:
        """Close this connection with Cease / Connection Collision Resolution."""
        self._fail("connection collision", Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION),
                   restart=False)
        return self._take()


def _refresh_acceptable(rr: RouteRefresh, neg: Negotiated) -> bool:
    """Whether a received ROUTE-REFRESH is to be acted on.

    RFC 2918 section 4: one for an AFI/SAFI that was not negotiated is ignored.
    RFC 7313 section 5: BoRR/EoRR (subtypes 1, 2) need enhanced route refresh, and an
    unknown subtype is ignored.
    """
    if rr.family not in neg.families:
        return False
    if rr.subtype == 0:
        return neg.route_refresh or neg.enhanced_route_refresh
    if rr.subtype in (1, 2):
        return neg.enhanced_route_refresh
    return False
