"""A minimal BGP peer over a plain socket, built from l3fab's own codec, for system tests."""
from __future__ import annotations

import socket
import time

from l3fab.speaker.wire import IPV4_UNICAST, MessageReader, Open
from l3fab.speaker.wire.capabilities import ExtendedNextHop, FourOctetAs, Multiprotocol
from l3fab.speaker.wire.message import KEEPALIVE_BYTES


class RawPeer:
    """Connects, exchanges OPEN/KEEPALIVE, then sends whatever bytes a test wants."""

    def __init__(self, port: int, families=(IPV4_UNICAST,), asn: int = 65002, router_id: str = "10.0.0.2",
                 host: str = "127.0.0.1", source: str | None = None) -> None:
        self.sock = socket.socket()
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.reader = MessageReader()
        caps = tuple(Multiprotocol(f) for f in families) + (
            FourOctetAs(asn), ExtendedNextHop(tuple((f, 2) for f in families if f.afi == 1)))
        self.sock.sendall(Open(asn, 30, router_id, caps).encode())
        self.sock.sendall(KEEPALIVE_BYTES)
        self.expect(Open)

    def expect(self, cls, timeout: float = 5.0):
        return expect(self.sock, self.reader, cls, timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


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
