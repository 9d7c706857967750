"""A raw-socket peer feeds a running speaker malformed BGP: RFC 7606 outcomes, no crash."""
from __future__ import annotations

import struct

from l3fab.speaker.wire import AsPath, Notification, Origin, Prefix
from l3fab.speaker.wire.message import KEEPALIVE_BYTES
from l3fab.speaker.wire.update import Update

from .rawpeer import RawPeer, wait

PEER_CONFIG = {
    "router-id": "10.0.0.1", "asn": 65001,
    "listen": {"addresses": ["127.0.0.1"], "port": 0},
    "neighbors": [{"name": "raw", "address": "127.0.0.1", "remote-as": 65002, "passive": True,
                   "families": ["ipv4"], "hold-time": 30}],
}


def _update(nlri: str, *attrs) -> bytes:
    return Update(attributes=attrs, nlri=(Prefix.parse(nlri),)).encode()


def _raw_update(attrs: bytes, nlri: bytes) -> bytes:
    body = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs + nlri
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


def test_treat_as_withdraw_keeps_session_and_session_reset_notifies(daemon_factory):
    from l3fab.speaker.wire.attributes import NextHop

    d = daemon_factory(PEER_CONFIG)
    peer = RawPeer(d.status["listen_port"])
    wait(lambda: d.api("neighbor", neighbor="raw")["state"] == "Established")

    good = (Origin(0), AsPath.sequence(65002), NextHop("192.0.2.1"))
    peer.send(_update("10.1.0.0/24", *good))
    wait(lambda: d.api("rib_received", neighbor="raw"))

    # ORIGIN with value 7: RFC 7606 section 7.1 treat-as-withdraw; the session stays up
    bad_origin = b"\x40\x01\x01\x07" + AsPath.sequence(65002).pack(_ctx()) + NextHop("192.0.2.1").pack(_ctx())
    peer.send(_raw_update(bad_origin, b"\x18\x0a\x01\x00"))
    wait(lambda: not d.api("rib_received", neighbor="raw"))
    n = d.api("neighbor", neighbor="raw")
    assert n["state"] == "Established"
    assert any("treat-as-withdraw" in f and "ORIGIN" in f for f in n["rfc7606_faults"]), n["rfc7606_faults"]

    # ATOMIC_AGGREGATE with a length: attribute discard, the route is kept
    peer.send(_raw_update(b"".join(a.pack(_ctx()) for a in good) + b"\x40\x06\x01\x00", b"\x18\x0a\x02\x00"))
    wait(lambda: [r for r in d.api("rib_received", neighbor="raw") if r["prefix"] == "10.2.0.0/24"])

    # Prefix length 33 in the NLRI field: session reset with 3/10
    peer.send(_raw_update(b"".join(a.pack(_ctx()) for a in good), b"\x21\x0a\x00\x00\x00\x00"))
    note = peer.expect(Notification)
    assert (note.code, note.subcode) == (3, 10)
    wait(lambda: d.api("neighbor", neighbor="raw")["state"] != "Established")
    assert d.proc.poll() is None, "the speaker must survive"

    # it accepts a new session afterwards (after its idle-hold time)
    def reconnect():
        try:
            return RawPeer(d.status["listen_port"])
        except (ConnectionError, TimeoutError, OSError):
            return None

    peer2 = wait(reconnect)
    wait(lambda: d.api("neighbor", neighbor="raw")["state"] == "Established")
    peer2.send(KEEPALIVE_BYTES)


def test_garbage_header_gets_notification(daemon_factory):
    d = daemon_factory(PEER_CONFIG)
    peer = RawPeer(d.status["listen_port"])
    wait(lambda: d.api("neighbor", neighbor="raw")["state"] == "Established")
    peer.send(b"\x00" * 19)  # bad marker: 1/1
    note = peer.expect(Notification)
    assert (note.code, note.subcode) == (1, 1)
    assert d.proc.poll() is None


def _ctx():
    from l3fab.speaker.wire.context import DEFAULT_CONTEXT
    return DEFAULT_CONTEXT
