"""Message-size limits and next hops against a running ``l3fab run`` (issue 10, findings
13, 15 and 16), driven by raw peers built on l3fab's codec over loopback."""
from __future__ import annotations

import ipaddress
import socket
import struct
import time

from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    AsPath,
    CodecContext,
    Communities,
    MessageReader,
    NextHop,
    Notification,
    Open,
    Origin,
    Prefix,
    Update,
)
from l3fab.speaker.wire.capabilities import ExtendedMessageCap, FourOctetAs, Multiprotocol
from l3fab.speaker.wire.message import KEEPALIVE_BYTES
from l3fab.speaker.wire.nlri import encode_nlri

from .rawpeer import RawPeer, expect, wait

EXTENDED = CodecContext(max_message=65535)
HUGE = Communities(tuple(range(1100)))  # 4400 octets: no 4096-octet UPDATE holds it


class ExtendedPeer:
    """A raw peer that offers extended messages (RFC 8654), which RawPeer does not."""

    def __init__(self, port: int, source: str, asn: int, router_id: str, families=(IPV4_UNICAST,)) -> None:
        self.sock = socket.socket()
        self.sock.bind((source, 0))
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.reader = MessageReader(EXTENDED)
        caps = tuple(Multiprotocol(f) for f in families) + (FourOctetAs(asn), ExtendedMessageCap())
        self.sock.sendall(Open(asn, 30, router_id, caps).encode() + KEEPALIVE_BYTES)
        opened = expect(self.sock, self.reader, Open)
        assert opened.first(ExtendedMessageCap) is not None, "the speaker must offer extended messages"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def expect(self, cls, timeout: float = 5.0):
        return expect(self.sock, self.reader, cls, timeout)

    def close(self) -> None:
        self.sock.close()


def _config(*neighbors: dict) -> dict:
    return {"router-id": "10.0.0.1", "asn": 65001, "listen": {"addresses": ["127.0.0.1"], "port": 0},
            "neighbors": [{"passive": True, "hold-time": 30, **n} for n in neighbors]}


def _announce(prefix: str, nh: str, *extra) -> bytes:
    return Update(attributes=(Origin(0), AsPath.sequence(65002), NextHop(nh)) + extra,
                  nlri=(Prefix.parse(prefix),)).encode(EXTENDED)


def _received(peer: RawPeer, until: str, timeout: float = 10.0) -> set[str]:
    """Prefixes announced to ``peer`` until ``until`` arrives."""
    got: set[str] = set()
    deadline = time.monotonic() + timeout
    while until not in got:
        assert time.monotonic() < deadline, f"{until} never arrived; got {sorted(got)}"
        u = peer.expect(Update, timeout=max(0.1, deadline - time.monotonic()))
        got |= {str(n) for _f, _nh, nlri in u.reachable() for n in nlri}
    return got


def test_a_route_too_large_for_a_peer_is_not_sent_and_everything_else_flows(daemon_factory):
    # Finding 13: attributes that fit only an extended message, and a peer without them.
    # On 785e02a LocalProtocolError escaped: the session to "small" flapped every second
    # without a NOTIFICATION, and later advertisements to it stopped.
    d = daemon_factory(_config({"name": "big", "address": "127.0.0.2", "remote-as": 65002, "families": ["ipv4"]},
                               {"name": "small", "address": "127.0.0.3", "remote-as": 65003,
                                "families": ["ipv4"]}))
    port = d.status["listen_port"]
    big = ExtendedPeer(port, "127.0.0.2", 65002, "10.0.0.2")
    small = None
    try:
        wait(lambda: d.api("neighbor", neighbor="big")["state"] == "Established")
        big.send(_announce("10.1.0.0/16", "127.0.0.2", HUGE) + _announce("10.2.0.0/16", "127.0.0.2"))
        wait(lambda: len(d.api("rib_received", neighbor="big")) == 2)

        small = RawPeer(port, asn=65003, router_id="10.0.0.3", source="127.0.0.3")  # no extended messages
        wait(lambda: d.api("neighbor", neighbor="small")["state"] == "Established")
        assert _received(small, "10.2.0.0/16") == {"10.2.0.0/16"}
        # still up, the same session, later routes flow and the large one stays back
        big.send(_announce("10.3.0.0/16", "127.0.0.2", HUGE) + _announce("10.4.0.0/16", "127.0.0.2"))
        assert _received(small, "10.4.0.0/16") == {"10.4.0.0/16"}
        small.send(KEEPALIVE_BYTES)
        n = d.api("neighbor", neighbor="small")
        assert n["state"] == "Established", n
        advertised = {r["prefix"] for r in d.api("rib_advertised", neighbor="small")}
        assert advertised == {"10.2.0.0/16", "10.4.0.0/16"}, advertised
        assert d.proc.poll() is None
    finally:
        big.close()
        if small is not None:
            small.close()


def test_a_route_refresh_of_65535_octets_gets_a_notification_that_fits(daemon_factory):
    # Finding 16: the 7/1 NOTIFICATION quoted the whole message; 21 + 65535 octets do not
    # fit a length field: struct.error escaped and no NOTIFICATION was sent.
    d = daemon_factory(_config({"name": "big", "address": "127.0.0.2", "remote-as": 65002, "families": ["ipv4"]}))
    big = ExtendedPeer(d.status["listen_port"], "127.0.0.2", 65002, "10.0.0.2")
    try:
        wait(lambda: d.api("neighbor", neighbor="big")["state"] == "Established")
        rr = b"\xff" * 16 + struct.pack("!HB", 65535, 5) + b"\x00\x01\x00\x01" + bytes(65535 - 23)
        big.send(rr)
        note = big.expect(Notification, timeout=10)
        assert (note.code, note.subcode) == (7, 1)
        assert rr.startswith(note.data) and 21 + len(note.data) <= 65535
        wait(lambda: d.api("neighbor", neighbor="big")["state"] != "Established")
        assert d.proc.poll() is None, "the speaker must survive"
    finally:
        big.close()


LINK_LOCAL = "fe80::211:22ff:fe33:4455"


def _bird_update(prefix: str, link_local: str) -> bytes:
    """An IPv6 announcement whose next-hop field is 16 zero octets, then ``link_local``."""
    ctx = CodecContext()
    mp = (struct.pack("!HBB", 2, 1, 32) + bytes(16) + ipaddress.IPv6Address(link_local).packed + b"\x00"
          + encode_nlri(Prefix.parse(prefix)))
    attrs = struct.pack("!BBB", 0x80, 14, len(mp)) + mp + Origin(0).pack(ctx) + AsPath.sequence(65002).pack(ctx)
    body = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


def test_a_link_local_only_next_hop_is_used(daemon_factory):
    # Finding 15: BIRD 2 on a link with link-local addresses only sends :: + link-local.
    d = daemon_factory(_config({"name": "bird", "address": "127.0.0.2", "remote-as": 65002,
                                "families": ["ipv4", "ipv6"]}))
    bird = RawPeer(d.status["listen_port"], families=(IPV4_UNICAST, IPV6_UNICAST), source="127.0.0.2")
    try:
        wait(lambda: d.api("neighbor", neighbor="bird")["state"] == "Established")
        bird.send(_bird_update("2001:db8:7::/48", LINK_LOCAL))
        rows = wait(lambda: d.api("rib", family="ipv6", prefix="2001:db8:7::/48"))
        (row,) = rows
        assert row["next_hop"] == LINK_LOCAL and row["link_local_next_hop"] is None, row
        assert row["valid"] and row["best"], row  # on 785e02a: next hop ::, invalid
    finally:
        bird.close()
