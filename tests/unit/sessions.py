"""Drive sans-IO :class:`Session` objects in tests: an in-memory link between two of
them, and a one-sided helper that feeds a session a peer's raw bytes."""
from __future__ import annotations

from collections import deque

from l3fab.speaker.session import Session, SessionConfig
from l3fab.speaker.session.events import (
    Connect,
    Disconnect,
    Send,
    StartTimer,
    State,
    StopTimer,
)
from l3fab.speaker.wire import KEEPALIVE, Open
from l3fab.speaker.wire.capabilities import FourOctetAs, Multiprotocol
from l3fab.speaker.wire.constants import IPV4_UNICAST

_EOF = None


class Link:
    """Two sessions joined by an in-order byte pipe.

    Every action a session returns is recorded in ``log[session]``; ``Send`` data is
    queued for the other side and delivered by :meth:`pump`, in order.  Timers are
    only recorded (``timers[session]`` maps a running timer to its seconds): tests
    fire them by calling ``timer_expired`` and passing the result to :meth:`feed`.
    A ``Disconnect`` closes the pipe after what was already queued, and the other
    side then sees ``connection_failed``.
    """

    def __init__(self, a: SessionConfig, b: SessionConfig) -> None:
        self.a, self.b = Session(a), Session(b)
        self.queue: deque = deque()
        self.log: dict[Session, list] = {self.a: [], self.b: []}
        self.timers: dict[Session, dict] = {self.a: {}, self.b: {}}
        self.connects: dict[Session, int] = {self.a: 0, self.b: 0}
        self.up = False

    def other(self, s: Session) -> Session:
        return self.b if s is self.a else self.a

    def feed(self, s: Session, actions: list) -> list:
        for act in actions:
            self.log[s].append(act)
            if isinstance(act, Send):
                if self.up:
                    self.queue.append((self.other(s), act.data))
            elif isinstance(act, StartTimer):
                self.timers[s][act.timer] = act.seconds
            elif isinstance(act, StopTimer):
                self.timers[s].pop(act.timer, None)
            elif isinstance(act, Disconnect):
                if self.up:
                    self.queue.append((self.other(s), _EOF))
            elif isinstance(act, Connect):
                self.connects[s] += 1
        return actions

    def connect(self) -> None:
        """The TCP connection comes up: both ends learn it at once."""
        self.up = True
        self.feed(self.a, self.a.connection_made())
        self.feed(self.b, self.b.connection_made())

    def pump(self, limit: int = 10_000) -> None:
        while self.queue and limit:
            limit -= 1
            dst, data = self.queue.popleft()
            if data is _EOF:
                self.up = False
                self.feed(dst, dst.connection_failed("peer closed the connection"))
            elif self.up:
                self.feed(dst, dst.data_received(data))
        assert limit, "pump did not settle"

    def fire(self, s: Session, timer) -> list:
        """A running timer of ``s`` expires."""
        assert timer in self.timers[s], f"{timer} is not running on {s.config.router_id}: {self.timers[s]}"
        del self.timers[s][timer]
        return self.feed(s, s.timer_expired(timer))

    def establish(self) -> None:
        self.feed(self.a, self.a.start())
        self.feed(self.b, self.b.start())
        self.connect()
        self.pump()
        assert self.a.state is State.ESTABLISHED, self.log[self.a]
        assert self.b.state is State.ESTABLISHED, self.log[self.b]

    def events(self, s: Session, cls) -> list:
        return [e for e in self.log[s] if isinstance(e, cls)]


def config(local_as: int = 65001, router_id: str = "10.0.0.1", **kw) -> SessionConfig:
    return SessionConfig(local_as=local_as, router_id=router_id, **kw)


def pair(a: dict | None = None, b: dict | None = None) -> Link:
    """A link between an active 65001/10.0.0.1 and a passive 65002/10.0.0.2."""
    ca = dict(local_as=65001, router_id="10.0.0.1", peer_as=65002)
    cb = dict(local_as=65002, router_id="10.0.0.2", peer_as=65001, passive=True)
    ca.update(a or {})
    cb.update(b or {})
    return Link(SessionConfig(**ca), SessionConfig(**cb))


def peer_open(asn: int = 65002, hold: int = 90, router_id: str = "10.0.0.2", caps=None) -> Open:
    if caps is None:
        caps = (Multiprotocol(IPV4_UNICAST), FourOctetAs(asn))
    return Open(asn, hold, router_id, tuple(caps))


def established_with(cfg: SessionConfig, peer: Open) -> tuple[Session, list]:
    """A session brought to Established by feeding it ``peer``'s OPEN and KEEPALIVE."""
    s = Session(cfg)
    actions = s.start() + s.connection_made() + s.data_received(peer.encode() + KEEPALIVE.encode())
    assert s.state is State.ESTABLISHED, actions
    return s, actions
