"""A minimal BGP peer over a plain socket, built from l3fab's own codec, for system tests."""
from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from l3fab.speaker.wire import IPV4_UNICAST, MessageReader, Open
from l3fab.speaker.wire.capabilities import ExtendedNextHop, FourOctetAs, Multiprotocol
from l3fab.speaker.wire.constants import MessageType
from l3fab.speaker.wire.message import KEEPALIVE_BYTES, decode_body
from l3fab.speaker.wire.notification import Notification

CLONE_NEWNET = 0x40000000


class RawPeer:
    """Connects, exchanges OPEN/KEEPALIVE, then sends whatever bytes a test wants.

    ``hold_time`` is the hold time of its OPEN (the session uses the smaller of the two
    sides'). ``netns`` connects from inside a named network namespace (``ip netns``),
    where a daemon under test runs; only the socket lives there, the test stays put.
    """

    def __init__(self, port: int, families=(IPV4_UNICAST,), asn: int = 65002, router_id: str = "10.0.0.2",
                 host: str = "127.0.0.1", source: str | None = None, hold_time: int = 30,
                 netns: str | None = None) -> None:
        self.sock = socket_in_netns(netns) if netns else socket.socket()
        self._send_lock = threading.Lock()
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.reader = MessageReader()
        self.hold_time = hold_time
        caps = tuple(Multiprotocol(f) for f in families) + (
            FourOctetAs(asn), ExtendedNextHop(tuple((f, 2) for f in families if f.afi == 1)))
        self.sock.sendall(Open(asn, hold_time, router_id, caps).encode())
        self.sock.sendall(KEEPALIVE_BYTES)
        self.expect(Open)

    def expect(self, cls, timeout: float = 5.0):
        return expect(self.sock, self.reader, cls, timeout)

    def send(self, data: bytes) -> None:
        with self._send_lock:  # a Recorder thread sends KEEPALIVEs on the same socket
            self.sock.sendall(data)

    def record(self, keepalive_every: float | None = None) -> "Recorder":
        """Start a :class:`Recorder` on this peer's socket (from now on, only it reads)."""
        rec = Recorder(self, keepalive_every if keepalive_every is not None else self.hold_time / 3)
        rec.start()
        return rec

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass
class Received:
    """One message from the daemon: when ``recv`` returned it (``time.monotonic()``) and its type."""

    at: float
    type: int


@dataclass
class Recorder:
    """A thread that reads everything the daemon sends, notes the arrival of every message,
    and keeps the session up from our side (a KEEPALIVE every ``keepalive_every`` seconds).

    Messages that arrive in one ``recv`` share its time stamp. ``closed_at`` is when the
    daemon closed the connection, ``notification`` the NOTIFICATION it sent, if any.
    """

    peer: RawPeer
    keepalive_every: float
    messages: list[Received] = field(default_factory=list)
    notification: Notification | None = None
    closed_at: float | None = None
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._read, daemon=True, name="rawpeer-read"),
                         threading.Thread(target=self._keepalives, daemon=True, name="rawpeer-keepalive")]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    @property
    def alive(self) -> bool:
        """The daemon has neither closed the connection nor sent a NOTIFICATION."""
        return self.closed_at is None and self.notification is None and self.error is None

    def times(self, msg_type: int = MessageType.KEEPALIVE) -> list[float]:
        return [m.at for m in list(self.messages) if m.type == msg_type]

    def _keepalives(self) -> None:
        while not self._stop.wait(self.keepalive_every):
            try:
                self.peer.send(KEEPALIVE_BYTES)
            except OSError:
                return

    def _read(self) -> None:
        sock, reader = self.peer.sock, self.peer.reader
        sock.settimeout(0.2)
        try:
            while not self._stop.is_set():
                self._frames(reader, time.monotonic())  # what an earlier expect() left buffered
                try:
                    data = sock.recv(1 << 20)
                except socket.timeout:
                    continue
                now = time.monotonic()
                if not data:
                    self.closed_at = now
                    return
                reader.feed(data)
                self._frames(reader, now)
        except OSError as e:
            self.closed_at = time.monotonic()
            self.error = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - a bad frame ends the recording, the test reads why
            self.error = f"{type(e).__name__}: {e}"

    def _frames(self, reader: MessageReader, now: float) -> None:
        for msg_type, body in reader.frames():
            self.messages.append(Received(now, msg_type))
            if msg_type == MessageType.NOTIFICATION:
                self.notification = decode_body(msg_type, body)


def socket_in_netns(netns: str) -> socket.socket:
    """A TCP socket that belongs to the network namespace ``netns`` (needs root).

    A helper thread enters the namespace with setns(2), which changes that thread
    only, creates the socket there and ends; the socket keeps its namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    out: list = []

    def make() -> None:
        try:
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            out.append(socket.socket())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out.append(e)

    t = threading.Thread(target=make, name=f"netns-{netns}")
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def expect(sock: socket.socket, reader: MessageReader, cls, timeout: float = 5.0):
    """The next message of type ``cls`` on ``sock`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in reader.messages():
            if isinstance(msg, cls):
                return msg
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed without the expected message")
        reader.feed(data)
    raise TimeoutError(cls.__name__)


def wait(fn, timeout: float = 20.0):  # generous: CI machines run other namespaces at the same time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")
