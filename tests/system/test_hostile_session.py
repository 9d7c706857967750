"""Hostile peers against a running ``l3fab run`` (issue 10, the BGP session findings).

Each test attacks one defence with :class:`hostile.Hostile` and fails on the code
before it (785e02a): silent connections that won the collision check (9), a peer's
hold time 0, a peer that never reads, no TCP keepalives (8), GTSM checked only after
the handshake (10), TCP-MD5 missing for unnumbered neighbours (3), a peer's text in
logs and the API unescaped and one log line per RFC 7606 fault (7), one log line per
refused connection (Low).  The loopback tests run in the host's namespace on
127.0.0.0/8; the link-local ones in a namespace pair (the ``lab`` fixture).
"""
from __future__ import annotations

import socket
import struct
import subprocess
import time

import pytest

from l3fab.speaker.wire import Notification, Open
from l3fab.speaker.wire.message import KEEPALIVE_BYTES

from .hostile import (
    Hostile,
    SpeakerProcess,
    attribute,
    ipv4_route_attributes,
    prefix_octets,
    update_bytes,
    wait_for,
)

LOCAL = "127.0.0.1"
NEIGHBOR = {"name": "raw", "address": LOCAL, "remote-as": 65002, "passive": True, "families": ["ipv4"],
            "hold-time": 9}


def config(*neighbors: dict, **extra) -> dict:
    return {"router-id": "10.0.0.1", "asn": 65001, "listen": {"addresses": [LOCAL], "port": 0},
            "neighbors": list(neighbors) or [NEIGHBOR], **extra}


@pytest.fixture
def speakers(tmp_path, request):
    """Start speakers with ``speakers(config, patches=...)``; stopped (by PID) afterwards."""
    started: list[SpeakerProcess] = []

    def make(cfg: dict, patches: dict | None = None) -> SpeakerProcess:
        sp = SpeakerProcess(tmp_path / f"speaker{len(started)}", cfg, patches)
        started.append(sp)
        return sp

    yield make
    for sp in started:
        sp.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(sp.log_text()[-6000:])


@pytest.fixture
def conns():
    """Hostile connections opened by a test, closed afterwards whatever happened."""
    opened: list[Hostile] = []

    def make(*args, **kw) -> Hostile:
        h = Hostile(*args, **kw)
        opened.append(h)
        return h

    yield make
    for h in opened:
        h.close()


def state(sp: SpeakerProcess, name: str = "raw") -> str:
    return sp.neighbor(name)["state"]


# ------------------------------------------------------------------ finding 9: collisions


@pytest.mark.parametrize("raw_id", ["10.0.0.9", "1.0.0.1"])  # above and below the speaker's 10.0.0.1
def test_a_silent_connection_does_not_shut_the_real_session_out(speakers, conns, raw_id):
    """A connection from the neighbour's address that never sends an OPEN is no party to
    the collision check: the real peer connecting after it gets its session at once,
    and the silent one is closed."""
    sp = speakers(config())
    silent = conns(LOCAL, sp.port, source=LOCAL)
    silent.expect(Open)  # accepted: it has our OPEN, and will never answer
    real = conns(LOCAL, sp.port, source=LOCAL)
    real.establish(router_id=raw_id)
    wait_for(lambda: state(sp) == "Established", timeout=10, what="the real session up (not 240 s later)")
    # the silent connection is gone (with a Cease), the real one stays
    data, how = silent.drain(timeout=5)
    assert how in ("eof", "reset"), "the silent connection must be closed once the real session is up"
    assert state(sp) == "Established"


def test_many_silent_connections_do_not_shut_the_real_session_out(speakers, conns):
    sp = speakers(config())
    silent = [conns(LOCAL, sp.port, source=LOCAL) for _ in range(6)]
    for s in silent:
        s.expect(Open)
    real = conns(LOCAL, sp.port, source=LOCAL)
    real.establish(router_id="10.0.0.9")
    wait_for(lambda: state(sp) == "Established", timeout=10, what="the real session up")
    for s in silent:
        _data, how = s.drain(timeout=5)
        assert how in ("eof", "reset")


# ------------------------------------------------------------------ finding 8: hold time, send hold, buffers


def test_a_peer_hold_time_of_zero_is_refused_with_2_6(speakers, conns):
    sp = speakers(config())
    h = conns(LOCAL, sp.port)
    h.send_open(hold_time=0)
    h.send(KEEPALIVE_BYTES)
    note = h.expect(Notification)
    assert (note.code, note.subcode) == (2, 6)  # OPEN error, unacceptable hold time
    n = sp.neighbor("raw")
    assert n["state"] != "Established" and n["established_count"] == 0
    assert "hold time 0" in n["last_error"], n["last_error"]


def test_hold_time_zero_when_we_configured_zero(speakers, conns):
    sp = speakers(config({**NEIGHBOR, "hold-time": 0}))
    h = conns(LOCAL, sp.port)
    h.establish(hold_time=0)
    wait_for(lambda: state(sp) == "Established")
    assert sp.neighbor("raw")["hold_time"] == 0


def _ss(port: int) -> str:
    return subprocess.run(["ss", "-tnoH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                          text=True, check=True).stdout


def test_bgp_connections_have_tcp_keepalives(speakers, conns):
    sp = speakers(config())
    h = conns(LOCAL, sp.port)
    h.establish()
    wait_for(lambda: state(sp) == "Established")
    out = wait_for(lambda: _ss(sp.port), what="the speaker's socket in ss")
    assert "timer:(keepalive" in out, out


def _networks(n: int) -> list[str]:
    return [f"10.{i // 256}.{i % 256}.0/24" for i in range(n)]


def test_send_hold_timer_closes_a_session_to_a_peer_that_never_reads(speakers, conns):
    """RFC 9687: the peer keeps us happy with KEEPALIVEs but never reads; once its window
    is closed nothing we send is acknowledged, and after the send hold time (here 3 s
    instead of 8 min) the session goes with 8/0."""
    sp = speakers(config({**NEIGHBOR, "hold-time": 3}, networks=_networks(600)),
                  patches={"l3fab.speaker.session.fsm.DEFAULT_SEND_HOLD_TIME": 3.0})
    h = conns(LOCAL, sp.port, rcvbuf=1)  # the smallest receive buffer: the window closes at once
    h.establish(hold_time=3)
    h.keepalives(every=0.5)
    wait_for(lambda: state(sp) == "Established")
    n = wait_for(lambda: (lambda n: n if n["state"] != "Established" else None)(sp.neighbor("raw")), timeout=30,
                 what="the session to a peer that reads nothing closed")
    assert "send hold timer expired" in n["last_error"], n
    assert n["last_notification_out"].startswith("8/0"), n


def test_write_buffer_is_bounded(speakers, conns):
    """A peer that reads nothing while routes keep coming: the transport's write buffer
    passes its limit (here 64 KiB instead of 32 MiB) and the session is closed, long
    before the send hold timer (8 min) would."""
    neighbors = ({**NEIGHBOR, "name": "sink"},
                 {"name": "feeder", "address": "127.0.0.2", "remote-as": 65003, "passive": True,
                  "families": ["ipv4"]})
    sp = speakers(config(*neighbors), patches={"l3fab.speaker.session.fsm.DEFAULT_MAX_SEND_BUFFER": 65536})
    sink = conns(LOCAL, sp.port, source=LOCAL, rcvbuf=1)
    sink.establish(hold_time=30, extended_message=True)
    sink.keepalives(every=2)
    feeder = conns(LOCAL, sp.port, source="127.0.0.2")
    feeder.establish(asn=65003, router_id="10.0.0.3", hold_time=30, extended_message=True)
    feeder.keepalives(every=5)
    wait_for(lambda: state(sp, "sink") == state(sp, "feeder") == "Established")
    big = attribute(0xC0, 250, b"x" * 30000)  # optional transitive: passed on to the sink
    sent = 0
    for i in range(400):  # at most 12 MB; the limit is reached after a few
        attrs = ipv4_route_attributes(65003, "127.0.0.2") + big[:-4] + struct.pack("!I", i)
        feeder.send(update_bytes(attrs, prefix_octets(f"10.{i // 256}.{i % 256}.0/24")))
        sent += 1
        if i % 10 == 9 and state(sp, "sink") != "Established":
            break
        time.sleep(0.01)
    n = wait_for(lambda: (lambda n: n if n["state"] != "Established" else None)(sp.neighbor("sink")), timeout=30,
                 what="the sink's session closed for its write buffer")
    assert "send buffer overflow" in n["last_error"], n
    assert state(sp, "feeder") == "Established"  # the others are not affected


# ------------------------------------------------------------------ finding 10: GTSM on the listener


GTSM_NEIGHBOR = {**NEIGHBOR, "ttl-security": True}


def test_gtsm_a_far_syn_never_completes(speakers, conns):
    """Every neighbour uses ttl-security: IP_MINTTL on the listener, so a SYN with TTL 10
    is dropped by the kernel, no handshake, nothing of ours (AS, id, hostname) leaks."""
    sp = speakers(config(GTSM_NEIGHBOR))
    with pytest.raises((TimeoutError, socket.timeout, ConnectionError)):
        conns(LOCAL, sp.port, ttl=10, timeout=3)
    near = conns(LOCAL, sp.port, ttl=255)
    near.establish()
    wait_for(lambda: state(sp) == "Established")


def test_gtsm_with_a_shared_listener_sends_nothing_to_a_far_peer(speakers, conns):
    """One neighbour uses ttl-security, another does not (the listener cannot drop far
    SYNs for everyone): the connection from the GTSM neighbour's address with TTL 10
    is refused before anything is sent."""
    other = {**NEIGHBOR, "name": "plain", "address": "127.0.0.5", "remote-as": 65005}
    sp = speakers(config(GTSM_NEIGHBOR, other))
    far = conns(LOCAL, sp.port, ttl=10)
    data, how = far.drain(timeout=5)
    assert data == b"" and how in ("eof", "reset"), (data[:60], how)
    assert state(sp) != "Established" and state(sp) != "OpenSent"
    near = conns(LOCAL, sp.port, ttl=255)
    near.establish()
    wait_for(lambda: state(sp) == "Established")


# ------------------------------------------------------------------ finding 7 (peer side): text and fault floods


def test_a_peers_shutdown_text_is_escaped_in_logs_and_the_api(speakers, conns):
    sp = speakers(config())
    h = conns(LOCAL, sp.port)
    h.establish()
    wait_for(lambda: state(sp) == "Established")
    forged = "2099-01-01 00:00:00 INFO l3fab.peer: FORGED -> Established"
    text = f"bye\n{forged}\x1b[2J\x1b]0;owned\x07[/]"
    h.send(Notification.shutdown(text).encode())
    n = wait_for(lambda: (lambda n: n if n["last_notification_in"] else None)(sp.neighbor("raw")))
    for shown in (n["last_notification_in"], n["last_error"]):
        assert shown.isprintable(), repr(shown)
        assert "\\n2099-01-01" in shown and "\\x1b[2J" in shown, shown
    wait_for(lambda: "NOTIFICATION received" in sp.log_text())
    log = sp.log_text()
    assert not any(line.startswith(forged) for line in log.splitlines()), "a forged log line"
    assert "\x1b" not in log and "\x07" not in log


def test_one_update_with_21000_faults_logs_a_bounded_number_of_lines(speakers, conns):
    sp = speakers(config())
    h = conns(LOCAL, sp.port)
    h.establish(extended_message=True)
    wait_for(lambda: state(sp) == "Established")
    repeated = attribute(0xC0, 250, b"") * 21001  # the first is kept, 21,000 are discarded (RFC 7606 3 (g))
    h.send(update_bytes(ipv4_route_attributes(65002, "127.0.0.1") + repeated, prefix_octets("10.9.0.0/24")))
    n = wait_for(lambda: (lambda n: n if n["rfc7606_faults"] else None)(sp.neighbor("raw")))
    assert "21000 faults" in n["rfc7606_faults"][-1], n["rfc7606_faults"]
    assert n["state"] == "Established"
    time.sleep(0.5)  # the log is written by now (a bounded count, so no need to wait for more)
    lines = [line for line in sp.log_text().splitlines() if "RFC 7606" in line]
    assert 1 <= len(lines) <= 2, len(lines)


# ------------------------------------------------------------------ Low: refused connections


def test_refused_connections_from_an_unknown_address_log_a_bounded_number_of_lines(speakers, conns):
    sp = speakers(config())
    for _ in range(300):
        h = Hostile(LOCAL, sp.port, source="127.0.0.3")
        h.drain(timeout=2)
        h.close()
    time.sleep(0.3)
    lines = [line for line in sp.log_text().splitlines() if "refusing connection from unknown peer" in line]
    assert 1 <= len(lines) <= 2, len(lines)
    assert sp.proc.poll() is None


# ------------------------------------------------------------------ findings 3 and 10 on links (namespaces)


PASSWORD = "s3cret-key"


@pytest.fixture
def link_speaker(lab):
    """A speaker in namespace ``l3`` with two unnumbered neighbours: ``md5host`` on u1
    (TCP-MD5) and ``gtsmhost`` on u2 (ttl-security); their hosts are in namespace ``h``."""
    l3, h = lab.add_namespace("l3"), lab.add_namespace("h")
    lab.link(l3, h, "u1", "h1")
    lab.link(l3, h, "u2", "h2")
    cfg = {"router-id": "10.0.0.1", "asn": 65001, "listen": {"addresses": ["::"], "port": 179},
           "neighbors": [
               {"name": "md5host", "interface": "u1", "remote-as": 65002, "passive": True, "families": ["ipv4"],
                "password": PASSWORD},
               {"name": "gtsmhost", "interface": "u2", "remote-as": 65003, "passive": True, "families": ["ipv4"],
                "ttl-security": True},
           ]}
    sp = SpeakerProcess(lab.workdir / "speaker", cfg, enter=lambda argv: lab.enter_argv(l3, argv))
    lab.add_log("l3/l3fab", sp.log)
    try:
        yield sp, l3, h
    finally:
        sp.stop()


def _to(l3, h, ours: str, theirs: str) -> tuple[str, int]:
    """The speaker's link-local address on ``ours`` and the host's scope id of ``theirs``."""
    return l3.link_local(ours), int(h.ip_json("link", "show", "dev", theirs)[0]["ifindex"])


def test_tcp_md5_is_enforced_for_an_unnumbered_neighbour(link_speaker, conns):
    sp, l3, h = link_speaker
    address, scope = _to(l3, h, "u1", "h1")
    # without the key: the SYN is dropped (no key, no handshake), the session never comes up
    with pytest.raises((TimeoutError, socket.timeout, ConnectionError)):
        conns(address, 179, scope_id=scope, netns=h.netns, timeout=3)
    # with a wrong key: the same
    with pytest.raises((TimeoutError, socket.timeout, ConnectionError)):
        conns(address, 179, scope_id=scope, netns=h.netns, md5="wrong", timeout=3)
    assert sp.neighbor("md5host")["established_count"] == 0
    # with the key: Established
    good = conns(address, 179, scope_id=scope, netns=h.netns, md5=PASSWORD)
    good.establish()
    wait_for(lambda: state(sp, "md5host") == "Established")


def test_gtsm_is_enforced_for_a_link_local_neighbour(link_speaker, conns):
    sp, l3, h = link_speaker
    address, scope = _to(l3, h, "u2", "h2")
    with pytest.raises((TimeoutError, socket.timeout, ConnectionError)):
        conns(address, 179, scope_id=scope, netns=h.netns, ttl=10, timeout=3)
    assert sp.neighbor("gtsmhost")["established_count"] == 0
    near = conns(address, 179, scope_id=scope, netns=h.netns, ttl=255)
    near.establish(asn=65003)
    wait_for(lambda: state(sp, "gtsmhost") == "Established")
