"""The asyncio side of one neighbour: TCP connections, timers, collision handling.

This is the thin adapter of the sans-IO :class:`~speaker.session.fsm.Session`: it
executes the actions a session returns and hands its events to whoever implements
:class:`PeerEvents` (the speaker).  It keeps no table state: that is the RIB manager's.
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
from .netutil import discover_link_local_peer, ifindex, send_router_advertisement, set_gtsm, set_md5
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
from .wire.capabilities import FqdnCap, GracefulRestartCap
from .wire.constants import CeaseSubcode, ErrorCode
from .wire.notification import Notification
from .wire.route_refresh import RouteRefresh
from .wire.update import Update

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
    """A session object and (when connected) its TCP transport."""

    session: Session
    locally_initiated: bool = False
    protocol: _Protocol | None = None
    timers: dict = field(default_factory=dict)
    local_address: str | None = None
    remote_address: str | None = None

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
        self.secondary: Conn | None = None
        self.enabled = False
        self.discovered_address: str | None = None
        self.state_since = time.time()
        self.established_count = 0
        self.last_error = ""
        self.last_notification_in: str = ""
        self.last_notification_out: str = ""
        self.faults: list[str] = []
        self._connect_task: asyncio.Task | None = None
        self._ra_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ identity

    def _session_config(self, passive: bool) -> SessionConfig:
        extra = (FqdnCap(self.node.hostname or socket.gethostname()),)
        return SessionConfig(
            local_as=self.node.asn, router_id=self.node.router_id, peer_as=self.cfg.remote_as,
            families=self.cfg.families, hold_time=self.cfg.hold_time, connect_retry=self.cfg.connect_retry,
            passive=passive, addpath_receive=self.cfg.addpath_receive, extra_capabilities=extra,
            # RFC 4724 capability without families: we send End-of-RIB markers and want
            # them from the peer (FRR ignores ROUTE-REFRESH until it has sent its EoR).
            graceful_restart_time=self.node.restart_time if self.cfg.graceful_restart else None,
            restarting=self.events.restarting,
            graceful_restart_families=self.cfg.families if self.cfg.graceful_restart else (),
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
            if not up and self.session.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
                tr = self.primary.transport
                self._apply(self.primary, self.session.connection_failed(f"interface {self.cfg.interface} down"))
                if tr is not None:
                    tr.abort()

    def shutdown_for(self, notification: Notification, restart_after: float) -> None:
        """Close with ``notification`` and stay down for ``restart_after`` seconds (0: until reset)."""
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
        """Rebuild the (idle) session after node-wide facts changed (e.g. we are restarting)."""
        if self.session.state is State.IDLE and self.primary.transport is None:
            self.primary = Conn(Session(self._session_config(passive=self.cfg.passive)))

    async def stop(self, reason: str = "", graceful: bool = False) -> None:
        """Stop the sessions.  ``graceful``: drop TCP without a NOTIFICATION, so a peer
        doing graceful restart (RFC 4724) keeps our routes while we come back."""
        self.enabled = False
        for conn in (self.secondary, self.primary):
            if conn is None:
                continue
            if graceful:
                tr = conn.transport
                self._apply(conn, conn.session.connection_failed("graceful restart"))
                if tr is not None:
                    tr.abort()
            else:
                self._apply(conn, conn.session.stop(Notification.shutdown(reason) if reason else None))
        self.secondary = None
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
            elif t is StartTimer:
                old = conn.timers.pop(a.timer, None)
                if old is not None:
                    old.cancel()
                conn.timers[a.timer] = asyncio.get_running_loop().call_later(a.seconds, self._expire, conn, a.timer)
            elif t is StopTimer:
                old = conn.timers.pop(a.timer, None)
                if old is not None:
                    old.cancel()
            elif t is Connect:
                self._start_connect(conn)
            elif t is Disconnect:
                tr = conn.transport
                if conn.protocol is not None:
                    conn.protocol.conn = None
                conn.protocol = None
                if tr is not None:
                    tr.close()
            else:
                self._event(conn, a)

    def _expire(self, conn: Conn, timer: Timer) -> None:
        conn.timers.pop(timer, None)
        if timer is Timer.IDLE_HOLD and not self.enabled:
            return
        self._apply(conn, conn.session.timer_expired(timer))

    def _event(self, conn: Conn, ev) -> None:
        t = type(ev)
        if conn is not self.primary:
            if t is StateChanged and ev.new is State.OPENCONFIRM:
                self._resolve_collision(conn)
            elif t is StateChanged and ev.new is State.IDLE and conn is self.secondary:
                self.secondary = None
            return
        if t is UpdateReceived:
            upd = ev.update
            if upd.faults:
                for f in upd.faults:
                    msg = f"RFC 7606 {f}"
                    log.warning("%s: %s", self.cfg.name, msg)
                    self.faults.append(msg)
                del self.faults[:-50]
            self.events.on_update(self, upd)
        elif t is StateChanged:
            self.state_since = time.time()
            if ev.reason:
                self.last_error = ev.reason if ev.new is State.IDLE else self.last_error
            log.info("%s: %s -> %s (%s)", self.cfg.name, ev.old.value, ev.new.value, ev.reason)
        elif t is Established:
            self.established_count += 1
            neg = ev.negotiated
            self.source = Source(self.cfg.name, conn.remote_address or self.remote_address, neg.peer_as,
                                 neg.peer_id, neg.ibgp, self.cfg.route_reflector_client, neg.local_as)
            self.last_gr = neg.peer_graceful_restart
            self.events.on_established(self, neg)
        elif t is SessionDown:
            self.events.on_session_down(self, ev.reason, ev.notification)
        elif t is RouteRefreshReceived:
            self.events.on_route_refresh(self, ev.refresh)
        elif t is NotificationReceived:
            self.last_notification_in = ev.notification.describe()
            log.warning("%s: NOTIFICATION received %s", self.cfg.name, self.last_notification_in)
        elif t is NotificationSent:
            self.last_notification_out = ev.notification.describe()
            log.warning("%s: NOTIFICATION sent %s", self.cfg.name, self.last_notification_out)

    # ------------------------------------------------------------------ connections

    def _data(self, conn: Conn, data: bytes) -> None:
        self._apply(conn, conn.session.data_received(data))

    def _lost(self, conn: Conn, exc: Exception | None) -> None:
        conn.protocol = None
        reason = f"connection lost ({exc})" if exc else "connection closed by peer"
        self._apply(conn, conn.session.connection_failed(reason))
        if conn is self.secondary:
            self.secondary = None

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
        self._apply(conn, conn.session.connection_made())

    def accept(self, proto: _Protocol) -> None:
        """An inbound TCP connection that :meth:`matches` this neighbour."""
        st = self.session.state
        transport = proto.transport
        assert transport is not None  # an accepted connection
        if not self.enabled:
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if self.cfg.ttl_security:
            try:
                set_gtsm(sock)
            except OSError:
                pass
        if self.cfg.unnumbered:
            peer = sock.getpeername()[0].split("%")[0]
            self.discovered_address = peer
        if st is State.IDLE:
            self._apply(self.primary, self.session.start())
            st = self.session.state
        if st in (State.CONNECT, State.ACTIVE):
            if self._connect_task is not None:
                self._connect_task.cancel()
                self._connect_task = None
            self._bind(self.primary, proto, locally=False)
        elif st in (State.OPENSENT, State.OPENCONFIRM) and self.secondary is None:
            self.secondary = Conn(Session(self._session_config(passive=True)))
            self.secondary.session.start()
            self._bind(self.secondary, proto, locally=False)
        else:
            # Established (or a collision already being resolved): refuse the newcomer.
            n = Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION)
            transport.write(n.encode())
            transport.close()

    def _resolve_collision(self, newer: Conn) -> None:
        """RFC 4271 section 6.8, once the newer connection's OPEN told us the peer's id."""
        peer_open = newer.session.peer_open
        assert peer_open is not None  # called once the newer connection's OPEN arrived
        remote_id = peer_open.router_id
        old = self.primary
        if old.session.state is State.ESTABLISHED:
            self._apply(newer, newer.session.collision_close())
            self.secondary = None
            return
        if old.session.collision_loser(remote_id, old.locally_initiated, peer_open.asn):
            log.info("%s: collision, keeping the connection opened by the peer", self.cfg.name)
            self.primary, self.secondary = newer, None
            self._apply(old, old.session.collision_close())
            for h in old.timers.values():
                h.cancel()
            # The winner already sent its KEEPALIVE and waits for the peer's one.
        else:
            log.info("%s: collision, keeping our connection", self.cfg.name)
            self.secondary = None
            self._apply(newer, newer.session.collision_close())

    def _start_connect(self, conn: Conn) -> None:
        if self._connect_task is not None and not self._connect_task.done():
            return
        self._connect_task = asyncio.get_running_loop().create_task(self._connect(conn))

    async def _connect(self, conn: Conn) -> None:
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
