"""The asyncio side of one neighbour: TCP connections, timers, collision handling.

This is the thin adapter of the sans-IO :class:`~speaker.session.fsm.Session`: it
executes the actions a session returns and hands its events to whoever implements
:class:`PeerEvents` (the speaker).  It keeps no table state: that is the RIB manager's.

Connections (RFC 4271 section 6.8).  ``primary`` is the neighbour's session: the one
shown, the one that connects out, the one whose events reach the speaker.  Every
inbound connection gets a session of its own, a *candidate*; only connections that
have received an OPEN take part in collision resolution, and a candidate replaces
the primary when it wins or reaches Established first.  A connection that sends
nothing therefore never shuts the real one out: it neither stops our outbound
attempts nor blocks a later inbound connection (at most :data:`MAX_CANDIDATES`
wait for an OPEN; the oldest silent one makes room for a newcomer), and it is
closed once another connection is Established.

Sending (RFC 9687).  The transport tells the session when the peer took some of our
data (it acknowledged octets, or nothing is waiting), checked at every write and
when the SendHoldTimer expires; a write buffer beyond the session's
``max_send_buffer`` closes the session as well.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Protocol, cast

from .config import NeighborConfig, NodeConfig
from .netutil import (
    GTSM_MIN_TTL,
    discover_link_local_peer,
    ifindex,
    send_router_advertisement,
    set_gtsm,
    set_md5,
    set_tcp_keepalive,
    syn_hop_limit,
    unacknowledged_octets,
)
from .session.events import (
    Connect,
    Disconnect,
    Established,
    NotificationReceived,
    NotificationSent,
    RouteRefreshReceived,
    Send,
    SessionDown,
    StartTimer,
    State,
    StateChanged,
    StopTimer,
    Timer,
    UpdateReceived,
)
from .session.fsm import Session, SessionConfig
from .session.negotiated import Negotiated
from .table.path import Source
from .text import LogBudget, escape_text
from .wire.capabilities import FqdnCap, GracefulRestartCap
from .wire.constants import CeaseSubcode, ErrorCode
from .wire.notification import Notification
from .wire.route_refresh import RouteRefresh
from .wire.update import Fault, Update

log = logging.getLogger("l3fab.peer")


class PeerEvents(Protocol):
    """What a :class:`Peer` reports to, and asks of, the daemon it belongs to."""

    @property
    def restarting(self) -> bool:
        """We are restarting (RFC 4724 Restart State bit in our OPEN)."""
        ...

    def on_update(self, peer: "Peer", update: Update) -> None: ...

    def on_established(self, peer: "Peer", neg: Negotiated) -> None: ...

    def on_session_down(self, peer: "Peer", reason: str, notification: bool) -> None: ...

    def on_route_refresh(self, peer: "Peer", rr: RouteRefresh) -> None: ...


SLICE = 32 * 1024
"""Bytes handed to the session per turn of the event loop.  A read can bring 256 KiB
(tens of thousands of routes); the rest waits, with reading paused, while other peers'
keepalives, the decision run and API requests get their turn."""

MAX_CANDIDATES = 4
"""Inbound connections of one neighbour that may wait for the peer's OPEN at a time."""

CLOSE_LINGER = 10.0
"""Seconds a closed connection may take to flush what is queued before it is aborted
(a peer that reads nothing would otherwise keep it, and its buffer, forever)."""

FAULT_KINDS_SHOWN = 5  # RFC 7606 fault kinds named in the one line logged per UPDATE
FAULT_LOG_LINES = 10  # RFC 7606 lines logged per neighbour per minute (the rest is counted)
MAX_FAULT_COUNTERS = 1024  # distinct RFC 7606 fault kinds counted per neighbour


class _Protocol(asyncio.Protocol):
    """Feeds one TCP connection into one :class:`Conn`, at most :data:`SLICE` bytes per
    turn of the event loop."""

    def __init__(self, peer: "Peer", conn: "Conn | None" = None) -> None:
        self.peer = peer
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self._backlog = bytearray()
        self._pumping = False
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream protocol's transport

    def data_received(self, data: bytes) -> None:
        if self.conn is None:
            return
        if not self._pumping and len(data) <= SLICE:
            self.peer._data(self.conn, data)
            return
        self._backlog += data
        if not self._pumping:
            self._pumping = True
            self._pump()

    def _pump(self) -> None:
        if self.conn is not None and self._backlog:
            chunk = bytes(self._backlog[:SLICE])
            del self._backlog[:SLICE]
            self.peer._data(self.conn, chunk)
        if self.conn is not None and self._backlog:
            if not self._paused and self.transport is not None and not self.transport.is_closing():
                self.transport.pause_reading()
                self._paused = True
            asyncio.get_running_loop().call_soon(self._pump)
            return
        self._backlog.clear()
        self._pumping = False
        if self._paused:
            self._paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None and self._backlog:
            data = bytes(self._backlog)  # what arrived before the close still counts (a NOTIFICATION)
            self._backlog.clear()
            self.peer._data(self.conn, data)
        if self.conn is not None:
            self.peer._lost(self.conn, exc)


@dataclass(eq=False)
class Conn:
    """A session object and (when connected) its TCP transport.

    ``written``: octets handed to the transport; ``acked``: how many of them the peer
    had acknowledged at the last look (RFC 9687 progress).  ``retired``: the connection
    lost a collision or was dropped; its timers and requests are ignored from then on.
    """

    session: Session
    locally_initiated: bool = False
    protocol: _Protocol | None = None
    timers: dict = field(default_factory=dict)
    local_address: str | None = None
    remote_address: str | None = None
    written: int = 0
    acked: int = 0
    retired: bool = False

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.protocol.transport if self.protocol else None


class Peer:
    def __init__(self, events: PeerEvents, node: NodeConfig, cfg: NeighborConfig) -> None:
        self.events = events
        self.node = node
        self.cfg = cfg
        self.source = Source(cfg.name, cfg.address)
        self.last_gr: GracefulRestartCap | None = None  # the peer's capability on the last session
        self.link_down = False  # our link to the peer lost carrier
        self._link_task: asyncio.Task | None = None
        self._restart_handle: asyncio.TimerHandle | None = None
        self.primary = Conn(Session(self._session_config(passive=cfg.passive)))
        self.candidates: list[Conn] = []  # inbound connections besides the primary
        self.enabled = False
        self.discovered_address: str | None = None
        self.state_since = time.time()
        self.established_count = 0
        self.last_error = ""
        self.last_notification_in: str = ""
        self.last_notification_out: str = ""
        self.faults: list[str] = []  # the last RFC 7606 summaries, one per faulty UPDATE (escaped)
        self.fault_counts: dict[str, int] = {}  # RFC 7606 faults by kind since start
        self.refused: dict[str, int] = {}  # inbound connections refused, by reason
        self._fault_log = LogBudget(per_key=FAULT_LOG_LINES, interval=60.0)
        self._refusal_log = LogBudget(per_key=1, interval=60.0)
        self._connect_task: asyncio.Task | None = None
        self._ra_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ identity

    def _session_config(self, passive: bool) -> SessionConfig:
        extra = (FqdnCap(self.node.hostname or socket.gethostname()),)
        # min-hold-time / send-hold-time / max-send-buffer, once the neighbour config
        # has them; until then (None) the session module's defaults apply.
        return SessionConfig(
            local_as=self.node.asn, router_id=self.node.router_id, peer_as=self.cfg.remote_as,
            families=self.cfg.families, hold_time=self.cfg.hold_time, connect_retry=self.cfg.connect_retry,
            passive=passive, addpath_receive=self.cfg.addpath_receive, extra_capabilities=extra,
            # RFC 4724 capability without families: we send End-of-RIB markers and want
            # them from the peer (FRR ignores ROUTE-REFRESH until it has sent its EoR).
            graceful_restart_time=self.node.restart_time if self.cfg.graceful_restart else None,
            restarting=self.events.restarting,
            graceful_restart_families=self.cfg.families if self.cfg.graceful_restart else (),
            min_hold_time=getattr(self.cfg, "min_hold_time", None),
            send_hold_time=getattr(self.cfg, "send_hold_time", None),
            max_send_buffer=getattr(self.cfg, "max_send_buffer", None),
        )

    @property
    def session(self) -> Session:
        return self.primary.session

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def remote_address(self) -> str | None:
        return self.cfg.address or self.discovered_address

    def matches(self, address: str, scope_ifindex: int) -> bool:
        """Does an incoming connection from ``address`` belong to this neighbour?"""
        addr = ipaddress.ip_address(address)
        if addr.version == 6 and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        if self.cfg.interface and addr.version == 6 and addr.is_link_local:
            if scope_ifindex != ifindex(self.cfg.interface):
                return False
            if self.cfg.address is None:
                return True  # unnumbered: any link-local peer on our interface
        return self.cfg.address is not None and addr == ipaddress.ip_address(self.cfg.address)

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        self.enabled = True
        self._apply(self.primary, self.session.start())
        loop = asyncio.get_running_loop()
        if self.cfg.unnumbered and self._ra_task is None:
            self._ra_task = loop.create_task(self._advertise_loop())
        if self.cfg.interface and self._link_task is None:
            self._link_task = loop.create_task(self._watch_link())

    async def _watch_link(self) -> None:
        """Fast external failover: a session over a link that lost carrier is dropped at
        once instead of waiting for the hold timer (as FRR does for directly connected peers)."""
        path = f"/sys/class/net/{self.cfg.interface}/carrier"
        while self.enabled:
            await asyncio.sleep(0.2)
            try:
                with open(path) as f:
                    up = f.read().strip() == "1"
            except OSError:
                up = False  # the interface is gone
            self.link_down = not up
            if not up:
                for c in list(self.candidates):
                    self._drop(c, abort=True)
            if not up and self.session.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
                tr = self.primary.transport
                self._apply(self.primary, self.session.connection_failed(f"interface {self.cfg.interface} down"))
                if tr is not None:
                    tr.abort()

    def shutdown_for(self, notification: Notification, restart_after: float) -> None:
        """Close with ``notification`` and stay down for ``restart_after`` seconds (0: until reset)."""
        for c in list(self.candidates):
            self._drop(c, notification)
        self._apply(self.primary, self.session.stop(notification, restart=False))
        if restart_after > 0:
            self._restart_handle = asyncio.get_running_loop().call_later(restart_after, self._restart)
        else:
            self.enabled = False

    def _restart(self) -> None:
        self._restart_handle = None
        if self.enabled and self.session.state is State.IDLE:
            self._apply(self.primary, self.session.start())

    def refresh_session_config(self) -> None:
        """Node-wide facts changed (we are restarting, or the restart is over): the OPEN of
        the next connection says so.  A connected session keeps its own until it ends."""
        self.primary.session.reconfigure(self._session_config(passive=self.cfg.passive))

    def _renew_if_stale(self) -> None:
        """Before the primary connects again: the OPEN it would send must be up to date
        (RFC 4724: the Restart State bit only while we are restarting)."""
        s = self.primary.session
        if s.config.restarting != self.events.restarting:
            s.reconfigure(self._session_config(passive=self.cfg.passive))

    async def stop(self, reason: str = "", graceful: bool = False) -> None:
        """Stop the sessions.  ``graceful``: drop TCP without a NOTIFICATION, so a peer
        doing graceful restart (RFC 4724) keeps our routes while we come back."""
        self.enabled = False
        for conn in (*self.candidates, self.primary):
            if graceful:
                tr = conn.transport
                self._apply(conn, conn.session.connection_failed("graceful restart"))
                if tr is not None:
                    tr.abort()
            else:
                self._apply(conn, conn.session.stop(Notification.shutdown(reason) if reason else None))
        for conn in self.candidates:
            self._retire(conn)
        self.candidates.clear()
        for t in (self._connect_task, self._ra_task, self._link_task):
            if t is not None:
                t.cancel()
        self._connect_task = self._ra_task = self._link_task = None
        if self._restart_handle is not None:
            self._restart_handle.cancel()
        for conn in (self.primary,):
            for h in conn.timers.values():
                h.cancel()
            conn.timers.clear()

    def reset(self, message: str = "") -> None:
        """Administrative reset: Cease 6/4, then restart."""
        n = Notification.shutdown(message, CeaseSubcode.ADMIN_RESET)
        self._apply(self.primary, self.session.stop(n, restart=True))

    # ------------------------------------------------------------------ action executor

    def _apply(self, conn: Conn, actions: list) -> None:
        for a in actions:
            t = type(a)
            if t is Send:
                tr = conn.transport
                if tr is not None and not tr.is_closing():
                    tr.write(a.data)
                    conn.written += len(a.data)
                    self._after_write(conn, tr)
            elif t is StartTimer:
                old = conn.timers.pop(a.timer, None)
                if old is not None:
                    old.cancel()
                if not conn.retired:
                    conn.timers[a.timer] = asyncio.get_running_loop().call_later(a.seconds, self._expire, conn,
                                                                                 a.timer)
            elif t is StopTimer:
                old = conn.timers.pop(a.timer, None)
                if old is not None:
                    old.cancel()
            elif t is Connect:
                if not conn.retired:
                    self._start_connect(conn)
            elif t is Disconnect:
                tr = conn.transport
                if conn.protocol is not None:
                    conn.protocol.conn = None
                conn.protocol = None
                if tr is not None:
                    if a.abort:
                        tr.abort()
                    else:
                        tr.close()
                        # a peer that reads nothing must not keep what is queued for ever
                        asyncio.get_running_loop().call_later(CLOSE_LINGER, _abort_unflushed, tr)
            else:
                self._event(conn, a)

    def _after_write(self, conn: Conn, tr: asyncio.Transport) -> None:
        """RFC 9687 bookkeeping after a write: a bounded write buffer, and progress."""
        limit = conn.session.config.effective_max_send_buffer
        queued = tr.get_write_buffer_size()
        if queued > limit:
            log.warning("%s: %d octets queued for the peer, over the limit of %d: closing", self.cfg.name,
                        queued, limit)
            self._apply(conn, conn.session.send_stalled(f"{queued} octets queued, limit {limit}"))
        elif conn.session.state is State.ESTABLISHED and self._send_progressed(conn, tr):
            self._apply(conn, conn.session.send_progress())

    @staticmethod
    def _send_progressed(conn: Conn, tr: asyncio.Transport) -> bool:
        """Did the peer take some of our data since the last look, or is nothing waiting?

        Taken means acknowledged by the peer's TCP (octets written, minus what still
        waits in the transport, minus what the kernel holds unacknowledged): a peer that
        reads nothing closes its window, and then nothing is acknowledged any more
        however much the kernel and the transport still accept."""
        queued = tr.get_write_buffer_size()
        sock = tr.get_extra_info("socket")
        unacked = unacknowledged_octets(sock) if sock is not None else None
        acked = conn.written - queued - (unacked or 0)
        progressed = acked > conn.acked or (queued == 0 and not unacked)
        conn.acked = max(conn.acked, acked)
        return progressed

    def _expire(self, conn: Conn, timer: Timer) -> None:
        conn.timers.pop(timer, None)
        if conn.retired:
            return
        if timer is Timer.IDLE_HOLD and not self.enabled:
            return
        if timer is Timer.SEND_HOLD:
            tr = conn.transport
            if tr is not None and self._send_progressed(conn, tr):
                self._apply(conn, conn.session.send_progress())
                return
        self._apply(conn, conn.session.timer_expired(timer))

    def _event(self, conn: Conn, ev) -> None:
        t = type(ev)
        if conn.retired:
            return  # a connection we closed ourselves (lost a collision, or made room)
        if t is StateChanged:
            if ev.new is State.OPENCONFIRM:
                self._collide(conn)
            elif ev.new is State.ESTABLISHED and conn in self.candidates:
                self._promote(conn)
            elif ev.new is State.IDLE and conn in self.candidates:
                # an inbound connection that failed on its own: why, is worth showing
                self.candidates.remove(conn)
                self._retire(conn)
                self.last_error = ev.reason
                log.info("%s: inbound connection from %s closed (%s)", self.cfg.name, conn.remote_address,
                         ev.reason)
        elif t is NotificationReceived or t is NotificationSent:
            self._notification_event(ev, received=t is NotificationReceived)
        if conn is not self.primary:
            return
        if t is UpdateReceived:
            upd = ev.update
            if upd.faults:
                self._note_faults(upd.faults)
            self.events.on_update(self, upd)
        elif t is StateChanged:
            self.state_since = time.time()
            if ev.reason:
                self.last_error = ev.reason if ev.new is State.IDLE else self.last_error
            log.info("%s: %s -> %s (%s)", self.cfg.name, ev.old.value, ev.new.value, ev.reason)
        elif t is Established:
            self.established_count += 1
            neg = ev.negotiated
            if self.cfg.unnumbered and conn.remote_address:
                self.discovered_address = conn.remote_address  # the peer that got this far, not the last to connect
            self.source = Source(self.cfg.name, conn.remote_address or self.remote_address, neg.peer_as,
                                 neg.peer_id, neg.ibgp, self.cfg.route_reflector_client, neg.local_as)
            self.last_gr = neg.peer_graceful_restart
            self.events.on_established(self, neg)
        elif t is SessionDown:
            self.events.on_session_down(self, ev.reason, ev.notification)
        elif t is RouteRefreshReceived:
            self.events.on_route_refresh(self, ev.refresh)

    def _notification_event(self, ev: NotificationReceived | NotificationSent, received: bool) -> None:
        # the peer's text (RFC 9003 shutdown communication): escaped before it is shown or logged
        text = escape_text(ev.notification.describe())
        if received:
            self.last_notification_in = text
        else:
            self.last_notification_out = text
        log.warning("%s: NOTIFICATION %s %s", self.cfg.name, "received" if received else "sent", text)

    def _note_faults(self, faults: tuple[Fault, ...]) -> None:
        """RFC 7606 faults of one UPDATE: counted by kind, summarised in one line (one
        UPDATE can carry 21,000 of them), and logged at most FAULT_LOG_LINES times a
        minute per neighbour."""
        kinds: dict[tuple[str, int | None, int], list] = {}
        for f in faults:
            entry = kinds.setdefault((f.action, f.attr_type, f.subcode), [0, f])
            entry[0] += 1
        for (action, attr_type, _subcode), (n, _f) in kinds.items():
            key = f"{action} attribute {attr_type}" if attr_type is not None else action
            if key in self.fault_counts or len(self.fault_counts) < MAX_FAULT_COUNTERS:
                self.fault_counts[key] = self.fault_counts.get(key, 0) + n
        parts = [escape_text(str(f), 200) + (f" (x{n})" if n > 1 else "")
                 for n, f in list(kinds.values())[:FAULT_KINDS_SHOWN]]
        if len(kinds) > FAULT_KINDS_SHOWN:
            parts.append(f"and {len(kinds) - FAULT_KINDS_SHOWN} more kinds")
        if len(faults) == 1:
            summary = f"RFC 7606 {parts[0]}"
        else:
            summary = f"RFC 7606: {len(faults)} faults in one UPDATE: {'; '.join(parts)}"
        self.faults.append(summary)
        del self.faults[:-50]
        left_out = self._fault_log.take(self.cfg.name)
        if left_out is not None:
            more = f" ({left_out} more faulty UPDATEs not logged)" if left_out else ""
            log.warning("%s: %s%s", self.cfg.name, summary, more)

    # ------------------------------------------------------------------ connections

    def _data(self, conn: Conn, data: bytes) -> None:
        self._apply(conn, conn.session.data_received(data))

    def _lost(self, conn: Conn, exc: Exception | None) -> None:
        conn.protocol = None
        if conn in self.candidates:  # a candidate has nothing to retry: it just goes
            self.candidates.remove(conn)
            self._retire(conn)
            return
        reason = f"connection lost ({exc})" if exc else "connection closed by peer"
        self._apply(conn, conn.session.connection_failed(reason))

    def _bind(self, conn: Conn, proto: _Protocol, locally: bool) -> None:
        proto.conn = conn
        conn.protocol = proto
        conn.locally_initiated = locally
        transport = proto.transport
        assert transport is not None  # bound once connected
        sock = transport.get_extra_info("socket")
        try:
            conn.local_address = sock.getsockname()[0].split("%")[0]
            conn.remote_address = sock.getpeername()[0].split("%")[0]
        except OSError:
            pass
        try:
            set_tcp_keepalive(sock)
        except OSError as e:
            log.debug("%s: no TCP keepalives: %s", self.cfg.name, e)
        self._apply(conn, conn.session.connection_made())

    def accept(self, proto: _Protocol) -> None:
        """An inbound TCP connection that :meth:`matches` this neighbour."""
        transport = proto.transport
        assert transport is not None  # an accepted connection
        if not self.enabled or self._restart_handle is not None:
            self._refuse(transport, "neighbour shut down", None)
            return
        sock = transport.get_extra_info("socket")
        if self.cfg.ttl_security:
            # RFC 5082 per neighbour: the listener may not be able to enforce it for
            # everyone (neighbours without GTSM share it), so the SYN's TTL is checked
            # here, before anything (our OPEN: AS, identifier, hostname) is sent.
            hops = syn_hop_limit(sock)
            if hops is not None and hops < GTSM_MIN_TTL:
                self._refuse(transport, f"ttl-security: SYN arrived with TTL {hops}", None, abort=True)
                return
            try:
                set_gtsm(sock)
            except OSError:
                pass
        if self.session.state is State.ESTABLISHED:
            # RFC 4271 section 6.8: a collision with an Established connection closes the newcomer.
            self._refuse(transport, "session already established",
                         Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION))
            return
        if self.session.state is State.IDLE:
            self._apply(self.primary, self.session.start())
        if len(self.candidates) >= MAX_CANDIDATES:
            silent = [c for c in self.candidates if c.session.peer_open is None]
            if not silent:
                self._refuse(transport, "too many connections", Notification(ErrorCode.CEASE,
                                                                             CeaseSubcode.CONNECTION_REJECTED))
                return
            self._drop(silent[0], Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_REJECTED))
        # A session of its own: the primary keeps connecting out (or waiting) meanwhile,
        # and this one counts only once the peer's OPEN arrived on it.
        conn = Conn(Session(self._session_config(passive=self.cfg.passive)))
        self.candidates.append(conn)
        self._apply(conn, conn.session.start(passive=True))
        self._bind(conn, proto, locally=False)

    def _refuse(self, transport: asyncio.BaseTransport, reason: str, notification: Notification | None,
                abort: bool = False) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        left_out = self._refusal_log.take(reason)
        if left_out is not None:
            more = f" ({left_out} more refused for this reason since the last line)" if left_out else ""
            log.info("%s: inbound connection refused: %s%s", self.cfg.name, reason, more)
        assert isinstance(transport, asyncio.Transport)
        if abort:
            transport.abort()
            return
        if notification is not None:
            transport.write(notification.encode())
        transport.close()
        asyncio.get_running_loop().call_later(CLOSE_LINGER, _abort_unflushed, transport)

    def _collide(self, conn: Conn) -> None:
        """RFC 4271 section 6.8, when ``conn`` got the peer's OPEN (entered OpenConfirm):
        compared with every other connection that got an OPEN; those that did not (yet)
        are no part of it."""
        peer_open = conn.session.peer_open
        assert peer_open is not None  # OpenConfirm follows the OPEN
        for other in [self.primary, *self.candidates]:
            if other is conn or other.retired or other.session.peer_open is None:
                continue
            st = other.session.state
            if st is State.ESTABLISHED:
                log.info("%s: collision with the established session: closing the new connection", self.cfg.name)
                self._drop(conn)
                return
            if st is not State.OPENCONFIRM:
                continue
            if other.session.collision_loser(peer_open.router_id, other.locally_initiated, peer_open.asn):
                loser, winner = other, conn
            else:
                loser, winner = conn, other
            log.info("%s: collision, keeping the connection opened by %s", self.cfg.name,
                     "us" if winner.locally_initiated else "the peer")
            if loser is self.primary:
                self._make_primary(winner)  # closes the old primary
            else:
                self._drop(loser)
            if loser is conn:
                return

    def _promote(self, conn: Conn) -> None:
        """A candidate reached Established before the primary got anywhere: it becomes the
        session, the primary (connecting, or a connection without an OPEN) and the
        other candidates (without an OPEN, or they would have collided) are closed."""
        self._make_primary(conn)
        for other in list(self.candidates):
            self._drop(other)

    def _make_primary(self, conn: Conn) -> None:
        old = self.primary
        if conn in self.candidates:
            self.candidates.remove(conn)
        self.primary = conn
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        if old is not conn and not old.retired:
            self._drop(old)

    def _drop(self, conn: Conn, notification: Notification | None = None, abort: bool = False) -> None:
        """Close a connection that lost (Cease 6/7 unless ``notification``) and forget it."""
        if conn in self.candidates:
            self.candidates.remove(conn)
        conn.retired = True  # its closing events are ours, not news
        tr = conn.transport
        st = conn.session.state
        if abort or st not in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
            self._apply(conn, conn.session.stop(restart=False) if st is not State.IDLE else [])
            if tr is not None:
                tr.abort()
        elif notification is None:
            self._apply(conn, conn.session.collision_close())
        else:
            self._apply(conn, conn.session.stop(notification, restart=False))
        self._retire(conn)

    @staticmethod
    def _retire(conn: Conn) -> None:
        conn.retired = True
        for h in conn.timers.values():
            h.cancel()
        conn.timers.clear()

    def _start_connect(self, conn: Conn) -> None:
        if self._connect_task is not None and not self._connect_task.done():
            return
        self._connect_task = asyncio.get_running_loop().create_task(self._connect(conn))

    async def _connect(self, conn: Conn) -> None:  # only ever for the primary
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        address = cfg.address
        if address is None:
            interface = cfg.interface
            assert interface is not None  # a neighbour without an address is unnumbered
            address = await loop.run_in_executor(None, discover_link_local_peer, interface, 0.5)
            if address is None:
                self._apply(conn, conn.session.connection_failed(f"no link-local peer found on {interface}"))
                return
            self.discovered_address = address
        ip = ipaddress.ip_address(address)
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if cfg.password:
                set_md5(sock, address, cfg.password)
            if cfg.ttl_security:
                set_gtsm(sock)
            scope = ifindex(cfg.interface) if cfg.interface else 0
            if cfg.interface and ip.version == 6 and ip.is_link_local:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, cfg.interface.encode())
            if cfg.local_address:
                sock.bind((cfg.local_address, 0, 0, scope) if fam == socket.AF_INET6 else (cfg.local_address, 0))
            target = (address, cfg.port, 0, scope) if fam == socket.AF_INET6 else (address, cfg.port)
            await asyncio.wait_for(loop.sock_connect(sock, target), timeout=max(cfg.connect_retry, 1.0))
        except (OSError, asyncio.TimeoutError) as e:
            sock.close()
            if conn is self.primary and conn.session.state in (State.CONNECT, State.ACTIVE):
                self._apply(conn, conn.session.connection_failed(f"connect to {address}: {e or 'timeout'}"))
            return
        except asyncio.CancelledError:
            sock.close()
            raise
        if conn is not self.primary or conn.session.state not in (State.CONNECT, State.ACTIVE):
            sock.close()  # an inbound connection won meanwhile
            return
        proto = _Protocol(self)
        await loop.create_connection(lambda: proto, sock=sock)
        if conn is self.primary:
            self._renew_if_stale()
        self._bind(conn, proto, locally=True)

    async def _advertise_loop(self) -> None:
        """Router advertisements on an unnumbered link so FRR finds our link-local address."""
        loop = asyncio.get_running_loop()
        interface = self.cfg.interface
        assert interface is not None  # started for unnumbered neighbours only
        while self.enabled:
            await loop.run_in_executor(None, send_router_advertisement, interface)
            await asyncio.sleep(2.0 if self.state is not State.ESTABLISHED else 15.0)

    # ------------------------------------------------------------------ sending

    def send(self, message) -> None:
        self._apply(self.primary, self.session.send(message))

    def send_raw(self, chunks: list[bytes]) -> None:
        self._apply(self.primary, self.session.send_raw_updates(chunks))

    @property
    def local_address(self) -> str | None:
        return self.primary.local_address


def _abort_unflushed(transport: asyncio.WriteTransport) -> None:
    """A closed transport that still holds unsent data after CLOSE_LINGER: abort it."""
    if transport.get_write_buffer_size():
        transport.abort()
