"""RFC 4271 section 6.8 connection collisions against a running speaker, made deterministic
with a raw peer that holds one connection in OpenSent while opening the other."""
from __future__ import annotations

import socket
import time

import pytest

from l3fab.speaker.wire import IPV4_UNICAST, MessageReader, Notification, Open
from l3fab.speaker.wire.capabilities import FourOctetAs, Multiprotocol
from l3fab.speaker.wire.message import KEEPALIVE_BYTES

from .rawpeer import expect


def _free_port(host: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(4)
    return s


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = MessageReader()

    def expect(self, cls, timeout: float = 5.0):
        return expect(self.sock, self.reader, cls, timeout)


def _open(router_id: str) -> bytes:
    return Open(65002, 30, router_id, (Multiprotocol(IPV4_UNICAST), FourOctetAs(65002))).encode()


@pytest.mark.parametrize("raw_id, survivor", [("10.0.0.9", "inbound"), ("1.0.0.1", "outbound")])
def test_collision_keeps_the_connection_of_the_higher_identifier(daemon_factory, raw_id, survivor):
    listener = _free_port("127.0.0.2")
    d = daemon_factory({
        "router-id": "10.0.0.1", "asn": 65001,
        "listen": {"addresses": ["127.0.0.1"], "port": 0},
        "neighbors": [{"name": "raw", "address": "127.0.0.2", "port": listener.getsockname()[1],
                       "remote-as": 65002, "families": ["ipv4"], "connect-retry": 30}],
    })
    listener.settimeout(10)
    out_sock, _ = listener.accept()           # l3fab's outbound connection, now in OpenSent
    outbound = Conn(out_sock)
    outbound.expect(Open)
    in_sock = socket.socket()
    in_sock.bind(("127.0.0.2", 0))
    in_sock.connect(("127.0.0.1", d.status["listen_port"]))
    inbound = Conn(in_sock)
    in_sock.sendall(_open(raw_id))             # the second connection: collision
    inbound.expect(Open)
    out_sock.sendall(_open(raw_id))
    loser, winner = (outbound, inbound) if survivor == "inbound" else (inbound, outbound)
    note = loser.expect(Notification)
    assert (note.code, note.subcode) == (6, 7)  # Cease / connection collision resolution
    winner.sock.sendall(KEEPALIVE_BYTES)
    deadline = time.monotonic() + 5
    while d.api("neighbor", neighbor="raw")["state"] != "Established":
        assert time.monotonic() < deadline, d.api("neighbor", neighbor="raw")
        time.sleep(0.05)
    assert d.proc.poll() is None
