"""The RFC 4271 section 8 state machine, driven by two Session objects joined by an
in-memory pipe (``sessions.Link``) and by raw bytes where one side must misbehave."""
from __future__ import annotations

import pytest

from bgpbytes import AS_PATH_65001, ORIGIN_IGP, attr, hx, ip, message, mp_reach, next_hop, prefix, update
from sessions import Link, established_with, pair, peer_open
from l3fab.speaker.session import Session, SessionConfig
from l3fab.speaker.session.events import (
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
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    KEEPALIVE,
    VPNV4,
    AsPath,
    MpNextHop,
    NextHop,
    Notification,
    Origin,
    PathId,
    Prefix,
    RouteRefresh,
    Update,
    pack_announcements,
)
from l3fab.speaker.wire.capabilities import (
    ADDPATH_SEND,
    AddPathCap,
    EnhancedRouteRefreshCap,
    FourOctetAs,
    Multiprotocol,
    RouteRefreshCap,
)
from l3fab.speaker.wire.message import KEEPALIVE_BYTES

KA = KEEPALIVE.encode()


def states(link: Link, s: Session) -> list[State]:
    changes = link.events(s, StateChanged)
    return [changes[0].old] + [c.new for c in changes] if changes else [s.state]


def notifications(actions) -> list[Notification]:
    return [a.notification for a in actions if isinstance(a, NotificationSent)]


# ------------------------------------------------------------------ establishment


def test_active_and_passive_sides_establish():
    link = pair()
    link.establish()
    assert states(link, link.a) == [State.IDLE, State.CONNECT, State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED]
    assert states(link, link.b) == [State.IDLE, State.ACTIVE, State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED]
    assert link.connects == {link.a: 1, link.b: 0}
    (ea,), (eb,) = link.events(link.a, Established), link.events(link.b, Established)
    assert (ea.negotiated.local_as, ea.negotiated.peer_as, ea.negotiated.peer_id) == (65001, 65002, "10.0.0.2")
    assert (eb.negotiated.local_as, eb.negotiated.peer_as, eb.negotiated.peer_id) == (65002, 65001, "10.0.0.1")
    assert ea.negotiated.families == {IPV4_UNICAST} and ea.negotiated.four_octet_as
    assert ea.negotiated.extended_message and ea.negotiated.codec.max_message == 65535
    assert not ea.negotiated.ibgp
    # first the OPEN, then a KEEPALIVE, and nothing else
    sent = [a.data for a in link.events(link.a, Send)]
    assert [m[18] for m in sent] == [1, 4]
    assert not link.events(link.a, NotificationSent) and not link.events(link.b, NotificationSent)


def test_two_active_sides_on_one_connection_establish():
    link = pair(b={"passive": False})
    link.establish()
    assert link.connects == {link.a: 1, link.b: 1}


def test_opensent_uses_the_large_hold_timer():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    s.start()
    actions = s.connection_made()
    assert StartTimer(Timer.HOLD, 240) in actions
    assert StopTimer(Timer.CONNECT_RETRY) in actions


def test_families_are_the_intersection():
    link = pair(a={"families": (IPV4_UNICAST, IPV6_UNICAST, VPNV4)}, b={"families": (IPV6_UNICAST, VPNV4)})
    link.establish()
    assert link.a.negotiated.families == link.b.negotiated.families == {IPV6_UNICAST, VPNV4}
    assert link.a.negotiated.extended_next_hop == {VPNV4}


def test_ibgp_session():
    link = pair(b={"local_as": 65001, "peer_as": "internal"}, a={"peer_as": "internal"})
    link.establish()
    assert link.a.negotiated.ibgp


# ------------------------------------------------------------------ hold time


@pytest.mark.parametrize("ha,hb,want", [(90, 30, 30), (30, 90, 30), (180, 180, 180), (3, 90, 3)])
def test_hold_time_is_the_smaller_one(ha, hb, want):
    link = pair(a={"hold_time": ha}, b={"hold_time": hb})
    link.establish()
    for s in (link.a, link.b):
        assert s.negotiated.hold_time == want
        assert s.negotiated.keepalive == want / 3
        # RFC 9687: the send hold timer runs beside them, max(8 min, 2 x hold time)
        assert link.timers[s] == {Timer.HOLD: want, Timer.KEEPALIVE: want / 3, Timer.SEND_HOLD: max(480.0, 2 * want)}


@pytest.mark.parametrize("ha,hb", [(0, 90), (0, 0)])
def test_hold_time_zero_means_no_keepalives_and_no_hold_timer(ha, hb):
    # Only the side that configured 0 can bring the session to 0 (a peer's 0 against
    # our non-zero hold time is refused: test_peer_hold_time_zero_is_refused_...).
    link = pair(a={"hold_time": ha}, b={"hold_time": hb, "min_hold_time": 0})
    link.establish()
    for s in (link.a, link.b):
        assert s.negotiated.hold_time == 0 and s.negotiated.keepalive == 0
        assert link.timers[s] == {}
        assert s.timer_expired(Timer.KEEPALIVE) == []  # a stray expiry sends nothing


def test_keepalive_timer_sends_keepalive_and_restarts():
    link = pair()
    link.establish()
    actions = link.fire(link.a, Timer.KEEPALIVE)
    assert actions == [Send(KEEPALIVE_BYTES), StartTimer(Timer.KEEPALIVE, 30.0)]
    before = len(link.log[link.b])
    link.pump()
    assert link.log[link.b][before:] == [StartTimer(Timer.HOLD, 90)]  # hold timer restarted
    assert link.b.state is State.ESTABLISHED


def test_keepalive_timer_in_openconfirm():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    s.start()
    s.connection_made()
    s.data_received(peer_open().encode())
    assert s.state is State.OPENCONFIRM
    assert s.timer_expired(Timer.KEEPALIVE)[0] == Send(KEEPALIVE_BYTES)


def test_hold_timer_expiry_sends_4_0_and_restarts_after_idle_hold():
    link = pair(a={"idle_hold": 2.5})
    link.establish()
    actions = link.fire(link.a, Timer.HOLD)
    assert notifications(actions) == [Notification(4, 0)]
    assert Send(Notification(4, 0).encode()) in actions
    assert Disconnect() in actions
    assert SessionDown("hold timer expired", notification=True) in actions
    assert link.a.state is State.IDLE
    assert link.timers[link.a] == {Timer.IDLE_HOLD: 2.5}
    link.pump()
    # the peer got the NOTIFICATION and went down as well
    assert [e.notification for e in link.events(link.b, NotificationReceived)] == [Notification(4, 0)]
    assert link.b.state is State.IDLE and link.events(link.b, SessionDown)
    # automatic restart
    actions = link.fire(link.a, Timer.IDLE_HOLD)
    assert link.a.state is State.CONNECT and Connect() in actions


def test_hold_timer_is_restarted_by_every_message():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open(hold=60))
    assert s.data_received(KA) == [StartTimer(Timer.HOLD, 60)]


def test_hold_timer_expiry_in_opensent():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    s.start()
    s.connection_made()
    assert notifications(s.timer_expired(Timer.HOLD)) == [Notification(4, 0)]
    assert s.state is State.IDLE


# ------------------------------------------------------------------ connect retry


def test_connect_retry_cycle():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002, connect_retry=7))
    actions = s.start()
    assert s.state is State.CONNECT
    assert actions[-2:] == [StartTimer(Timer.CONNECT_RETRY, 7), Connect()]
    s.connection_failed("refused")
    assert s.state is State.ACTIVE and s.last_error == "refused"
    actions = s.timer_expired(Timer.CONNECT_RETRY)
    assert s.state is State.CONNECT
    assert StartTimer(Timer.CONNECT_RETRY, 7) in actions and Connect() in actions
    s.connection_failed("refused again")
    assert s.state is State.ACTIVE
    s.connection_failed("still refused")  # stays Active
    assert s.state is State.ACTIVE
    s.connection_made()  # the peer connected to us while we were Active
    assert s.state is State.OPENSENT


def test_connect_retry_in_connect_state_tries_again():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    s.start()
    actions = s.timer_expired(Timer.CONNECT_RETRY)
    assert s.state is State.CONNECT and Connect() in actions


def test_passive_session_does_not_connect():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002, passive=True))
    assert Connect() not in s.start()
    assert s.state is State.ACTIVE
    assert s.timer_expired(Timer.CONNECT_RETRY) == []


def test_connection_while_idle_is_refused():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    assert s.connection_made() == [Disconnect()]
    assert s.state is State.IDLE


def test_connection_lost_in_established():
    link = pair()
    link.establish()
    actions = link.feed(link.a, link.a.connection_failed("reset by peer"))
    assert link.a.state is State.IDLE
    assert SessionDown("reset by peer") in actions
    assert not notifications(actions) and not any(isinstance(a, Send) for a in actions)
    assert StartTimer(Timer.IDLE_HOLD, 1.0) in actions


# ------------------------------------------------------------------ unexpected messages (RFC 6608)


def _opensent() -> Session:
    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    s.start()
    s.connection_made()
    return s


@pytest.mark.parametrize("data", [KA, update(), RouteRefresh(IPV4_UNICAST).encode()])
def test_unexpected_message_in_opensent_is_5_1(data):
    s = _opensent()
    actions = s.data_received(data)
    assert notifications(actions) == [Notification(5, 1)]
    assert s.state is State.IDLE
    assert not any(isinstance(a, SessionDown) for a in actions)


@pytest.mark.parametrize("data", [update(), peer_open().encode()])
def test_unexpected_message_in_openconfirm_is_5_2(data):
    s = _opensent()
    s.data_received(peer_open().encode())
    assert s.state is State.OPENCONFIRM
    assert notifications(s.data_received(data)) == [Notification(5, 2)]
    assert s.state is State.IDLE


def test_open_in_established_is_5_3():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    actions = s.data_received(peer_open().encode())
    assert notifications(actions) == [Notification(5, 3)]
    assert s.state is State.IDLE and SessionDown in [type(a) for a in actions]


# ------------------------------------------------------------------ NOTIFICATION received


def test_notification_received_in_established():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    n = Notification.shutdown("maintenance")
    actions = s.data_received(n.encode() + KA)  # what follows a NOTIFICATION is ignored
    assert NotificationReceived(n) in actions
    assert s.state is State.IDLE
    assert any(isinstance(a, SessionDown) for a in actions)
    assert not notifications(actions)  # never answer a NOTIFICATION with one
    assert Disconnect() in actions and StartTimer(Timer.IDLE_HOLD, 1.0) in actions
    assert "maintenance" in s.last_error


def test_notification_received_in_opensent_is_not_a_session_down():
    s = _opensent()
    actions = s.data_received(Notification(2, 2).encode())
    assert NotificationReceived(Notification(2, 2)) in actions
    assert s.state is State.IDLE
    assert not any(isinstance(a, SessionDown) for a in actions)


def test_data_after_the_session_went_down_is_ignored():
    s = _opensent()
    s.data_received(Notification(6, 4).encode())
    assert s.data_received(KA) == []


# ------------------------------------------------------------------ bad peer


def test_bad_peer_as_between_two_sessions():
    link = pair(b={"peer_as": 65009})
    link.feed(link.a, link.a.start())
    link.feed(link.b, link.b.start())
    link.connect()
    link.pump()
    assert [n.subcode for n in notifications(link.log[link.b])] == [2]
    assert [e.notification.code for e in link.events(link.a, NotificationReceived)] == [2]
    assert link.a.state is State.IDLE and link.b.state is State.IDLE
    assert not link.events(link.a, SessionDown) and not link.events(link.b, SessionDown)


# ------------------------------------------------------------------ collisions (RFC 4271 6.8)


@pytest.mark.parametrize(
    "local_id,remote_id,local_initiated,loser",
    [
        ("10.0.0.2", "10.0.0.1", True, False),  # higher local id: our connection survives
        ("10.0.0.2", "10.0.0.1", False, True),
        ("10.0.0.1", "10.0.0.2", True, True),  # lower local id: the peer's connection survives
        ("10.0.0.1", "10.0.0.2", False, False),
        ("9.255.255.255", "10.0.0.0", True, True),  # compared as unsigned integers, not strings
        ("10.0.0.10", "10.0.0.9", False, True),
    ],
)
def test_collision_loser_truth_table(local_id, remote_id, local_initiated, loser):
    s = Session(SessionConfig(65001, local_id, 65002))
    assert s.collision_loser(remote_id, local_initiated) is loser


@pytest.mark.parametrize("local_as,remote_as", [(65001, 65002), (65002, 65001)])
def test_collision_with_equal_identifiers_keeps_exactly_one_connection(local_as, remote_as):
    # Regression: with equal BGP identifiers both speakers closed the connection they
    # had initiated, so both connections died.  RFC 6286 section 2.3: the connection
    # initiated by the speaker with the larger AS number is preserved.
    us = Session(SessionConfig(local_as, "10.0.0.1", remote_as))
    them = Session(SessionConfig(remote_as, "10.0.0.1", local_as))
    # connection X is initiated by us, connection Y by them
    x_closed_by_us = us.collision_loser("10.0.0.1", local_initiated=True)
    x_closed_by_them = them.collision_loser("10.0.0.1", local_initiated=False)
    y_closed_by_us = us.collision_loser("10.0.0.1", local_initiated=False)
    y_closed_by_them = them.collision_loser("10.0.0.1", local_initiated=True)
    assert x_closed_by_us == x_closed_by_them and y_closed_by_us == y_closed_by_them
    assert x_closed_by_us != y_closed_by_us
    assert x_closed_by_us is (local_as < remote_as)
    assert us.collision_loser("10.0.0.1", True, remote_as=remote_as) is (local_as < remote_as)


def test_collision_close_sends_cease_6_7_without_restart():
    s = _opensent()
    actions = s.collision_close()
    assert notifications(actions) == [Notification(6, 7)]
    assert s.state is State.IDLE
    assert not any(isinstance(a, StartTimer) and a.timer is Timer.IDLE_HOLD for a in actions)


# ------------------------------------------------------------------ stop


def test_stop_sends_cease_admin_shutdown():
    link = pair()
    link.establish()
    actions = link.feed(link.a, link.a.stop())
    assert notifications(actions) == [Notification(6, 2)]
    assert link.a.state is State.IDLE
    assert any(isinstance(a, SessionDown) for a in actions)
    assert StopTimer(Timer.IDLE_HOLD) in actions
    assert Timer.IDLE_HOLD not in link.timers[link.a]
    link.pump()
    assert [e.notification for e in link.events(link.b, NotificationReceived)] == [Notification(6, 2)]


def test_stop_with_a_shutdown_communication():
    link = pair()
    link.establish()
    link.feed(link.a, link.a.stop(Notification.shutdown("upgrade to 1.2")))
    link.pump()
    (got,) = link.events(link.b, NotificationReceived)
    assert got.notification.shutdown_message == "upgrade to 1.2"


def test_stop_before_connecting_sends_nothing():
    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    s.start()
    actions = s.stop()
    assert not any(isinstance(a, Send) for a in actions) and s.state is State.IDLE


def test_stop_with_restart_schedules_idle_hold():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002, idle_hold=4), peer_open())
    assert StartTimer(Timer.IDLE_HOLD, 4) in s.stop(restart=True)


# ------------------------------------------------------------------ route refresh


def test_route_refresh_between_two_sessions():
    link = pair()
    link.establish()
    assert link.a.negotiated.route_refresh and link.a.negotiated.enhanced_route_refresh
    link.feed(link.a, link.a.send(RouteRefresh(IPV4_UNICAST)))
    link.pump()
    assert link.events(link.b, RouteRefreshReceived) == [RouteRefreshReceived(RouteRefresh(IPV4_UNICAST))]


def test_route_refresh_ignored_when_the_peer_did_not_negotiate_it():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    assert s.negotiated.route_refresh is False
    assert not any(isinstance(a, RouteRefreshReceived) for a in s.data_received(RouteRefresh(IPV4_UNICAST).encode()))
    assert s.state is State.ESTABLISHED


def test_route_refresh_for_a_family_not_negotiated_is_ignored():
    # Regression: RFC 2918 section 4, a ROUTE-REFRESH for an AFI/SAFI that was not
    # negotiated is ignored; it used to reach the owner.
    caps = (Multiprotocol(IPV4_UNICAST), FourOctetAs(65002), RouteRefreshCap())
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open(caps=caps))
    assert not any(isinstance(a, RouteRefreshReceived) for a in s.data_received(RouteRefresh(IPV6_UNICAST).encode()))
    assert any(isinstance(a, RouteRefreshReceived) for a in s.data_received(RouteRefresh(IPV4_UNICAST).encode()))


@pytest.mark.parametrize("enhanced", [False, True])
def test_borr_and_eorr_need_enhanced_route_refresh(enhanced):
    caps = ((Multiprotocol(IPV4_UNICAST), FourOctetAs(65002), RouteRefreshCap())
            + ((EnhancedRouteRefreshCap(),) if enhanced else ()))
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open(caps=caps))
    for subtype in (1, 2):
        got = [a for a in s.data_received(RouteRefresh(IPV4_UNICAST, subtype).encode())
               if isinstance(a, RouteRefreshReceived)]
        assert bool(got) is enhanced


def test_route_refresh_unknown_subtype_is_ignored():
    caps = (Multiprotocol(IPV4_UNICAST), FourOctetAs(65002), RouteRefreshCap(), EnhancedRouteRefreshCap())
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open(caps=caps))
    assert not any(isinstance(a, RouteRefreshReceived) for a in s.data_received(RouteRefresh(IPV4_UNICAST, 3).encode()))


def test_route_refresh_bad_length_in_established_is_7_1():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    bad = message(5, hx("0001 00 01 00"))
    actions = s.data_received(bad)
    assert notifications(actions) == [Notification(7, 1, bad)]
    assert s.state is State.IDLE


# ------------------------------------------------------------------ UPDATEs in Established


def test_updates_flow_between_two_sessions():
    link = pair(a={"families": (IPV4_UNICAST, IPV6_UNICAST)}, b={"families": (IPV4_UNICAST, IPV6_UNICAST)})
    link.establish()
    u = Update(attributes=(Origin(0), AsPath.sequence(65001), NextHop("10.0.0.1")),
               nlri=(Prefix.parse("192.0.2.0/24"),))
    link.feed(link.a, link.a.send(u))
    raw = pack_announcements(IPV6_UNICAST, (Origin(0), AsPath.sequence(65001)), MpNextHop("2001:db8::1"),
                             [Prefix(2, 128, i.to_bytes(16, "big")) for i in range(5000)], link.a.negotiated.codec)
    assert max(len(m) for m in raw) > 4096  # extended messages were negotiated
    link.feed(link.a, link.a.send_raw_updates(raw))
    link.pump()
    got = [e.update for e in link.events(link.b, UpdateReceived)]
    assert got[0] == u
    assert sum(len(x.reachable()[0][2]) for x in got[1:]) == 5000
    assert link.b.state is State.ESTABLISHED and link.b.updates_in == 1 + len(raw)


def test_malformed_update_in_established_resets_with_the_rfc7606_code():
    link = pair()
    link.establish()
    one = mp_reach(2, 1, ip("2001:db8::1"), prefix("2001:db8::/32"))
    link.feed(link.a, link.a.send_raw_updates([update(attrs=one + ORIGIN_IGP + AS_PATH_65001 + one)]))
    link.pump()
    assert [(n.code, n.subcode) for n in notifications(link.log[link.b])] == [(3, 1)]
    assert link.b.state is State.IDLE and link.events(link.b, SessionDown)
    assert [e.notification.subcode for e in link.events(link.a, NotificationReceived)] == [1]
    assert link.a.state is State.IDLE and link.events(link.a, SessionDown)


def test_bad_mp_next_hop_in_established_is_3_9_with_the_attribute():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    bad = mp_reach(2, 1, bytes(5), prefix("2001:db8::/32"))
    actions = s.data_received(update(attrs=bad + ORIGIN_IGP + AS_PATH_65001))
    assert notifications(actions) == [Notification(3, 9, bad)]


def test_treat_as_withdraw_update_keeps_the_session_up():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    actions = s.data_received(update(attrs=attr(0x40, 1, b"\x05") + AS_PATH_65001 + next_hop("10.0.0.1"),
                                     nlri=prefix("192.0.2.0/24")))
    (got,) = [a.update for a in actions if isinstance(a, UpdateReceived)]
    assert got.treat_as_withdraw
    assert got.unreachable() == [(IPV4_UNICAST, (Prefix.parse("192.0.2.0/24"),))]
    assert s.state is State.ESTABLISHED and not notifications(actions)


def test_two_octet_peer_updates_are_decoded_with_as4_path():
    cfg = SessionConfig(65001, "10.0.0.1", 65002)
    s, _ = established_with(cfg, peer_open(caps=(Multiprotocol(IPV4_UNICAST),)))
    assert not s.negotiated.four_octet_as
    u = Update(attributes=(Origin(0), AsPath.sequence(65002, 4200000001), NextHop("10.0.0.2")),
               nlri=(Prefix.parse("10.0.0.0/8"),))
    (got,) = [a.update for a in s.data_received(u.encode(s.negotiated.codec)) if isinstance(a, UpdateReceived)]
    assert got.get(AsPath) == AsPath.sequence(65002, 4200000001)
    assert s.send(u)[0].data == u.encode(s.negotiated.codec)


def test_addpath_negotiation_and_receive():
    caps = (Multiprotocol(IPV4_UNICAST), FourOctetAs(65002), AddPathCap(((IPV4_UNICAST, ADDPATH_SEND),)))
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002, addpath_receive=(IPV4_UNICAST,)),
                            peer_open(caps=caps))
    assert s.negotiated.addpath_receive == {IPV4_UNICAST} and s.negotiated.addpath_send == frozenset()
    p = PathId(9, Prefix.parse("10.0.0.0/8"))
    wire = update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.2"), nlri=hx("00000009") + prefix("10.0.0.0/8"))
    (got,) = [a.update for a in s.data_received(wire) if isinstance(a, UpdateReceived)]
    assert got.nlri == (p,)


def test_send_outside_established_does_nothing():
    s = _opensent()
    assert s.send(RouteRefresh(IPV4_UNICAST)) == []
    assert s.send_raw_updates([update()]) == []


def test_sending_a_notification_closes_the_session():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    actions = s.send(Notification(6, 4))
    assert notifications(actions) == [Notification(6, 4)] and s.state is State.IDLE


def test_messages_split_across_reads():
    s = _opensent()
    wire = peer_open().encode() + KA + update(attrs=ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.2"),
                                              nlri=prefix("10.0.0.0/8"))
    got = []
    for i in range(0, len(wire), 7):
        got += s.data_received(wire[i : i + 7])
    assert s.state is State.ESTABLISHED
    assert [type(e) for e in got if isinstance(e, (Established, UpdateReceived))] == [Established, UpdateReceived]


def test_tcp_failure_in_opensent_goes_active_and_retries():
    """RFC 4271 section 8.2.2: TcpConnectionFails in OpenSent -> Active, ConnectRetryTimer restarted."""
    from l3fab.speaker.session import Session, SessionConfig, StartTimer, State, Timer

    s = Session(SessionConfig(65001, "10.0.0.1", 65002))
    s.start()
    s.connection_made()
    assert s.state is State.OPENSENT
    actions = s.connection_failed("reset by peer")
    assert s.state is State.ACTIVE
    assert StartTimer(Timer.CONNECT_RETRY, s.config.connect_retry) in actions
    again = s.timer_expired(Timer.CONNECT_RETRY)
    assert s.state is State.CONNECT and any(type(a).__name__ == "Connect" for a in again)


# ------------------------------------------------------------------ hardening (issue 10, findings 7, 8, 9)


def _open_answer(cfg: SessionConfig, peer: "Open") -> tuple[Session, list]:  # noqa: F821
    s = Session(cfg)
    actions = s.start() + s.connection_made() + s.data_received(peer.encode())
    return s, actions


@pytest.mark.parametrize("ours, minimum, theirs", [(9, None, 0), (90, None, 0), (90, 10, 5), (90, 10, 0)])
def test_peer_hold_time_below_the_minimum_is_refused_with_2_6(ours, minimum, theirs):
    """A peer must not switch off our liveness checks: its hold time 0 (or one below the
    configured minimum) against our non-zero hold time is an OPEN error 2/6."""
    s, actions = _open_answer(SessionConfig(65001, "10.0.0.1", 65002, hold_time=ours, min_hold_time=minimum),
                              peer_open(hold=theirs))
    assert notifications(actions) == [Notification(2, 6)]
    assert s.state is State.IDLE and s.negotiated is None
    assert not any(isinstance(a, (Established, SessionDown)) for a in actions)
    assert "hold time" in s.last_error and "minimum" in s.last_error


@pytest.mark.parametrize("theirs, want", [(0, 0), (30, 0)])
def test_peer_hold_time_zero_is_fine_when_we_configured_zero(theirs, want):
    s, actions = _open_answer(SessionConfig(65001, "10.0.0.1", 65002, hold_time=0), peer_open(hold=theirs))
    assert s.state is State.OPENCONFIRM and s.negotiated.hold_time == want
    assert not notifications(actions)


def test_hold_time_at_the_minimum_is_accepted():
    s, actions = _open_answer(SessionConfig(65001, "10.0.0.1", 65002, hold_time=90, min_hold_time=10),
                              peer_open(hold=10))
    assert s.state is State.OPENCONFIRM and s.negotiated.hold_time == 10


@pytest.mark.parametrize("hold, configured, want", [(90, None, 480.0), (300, None, 600.0), (9, 20.0, 20.0)])
def test_send_hold_timer_starts_in_established(hold, configured, want):
    cfg = SessionConfig(65001, "10.0.0.1", 65002, hold_time=hold, send_hold_time=configured)
    s, actions = established_with(cfg, peer_open(hold=hold))
    assert StartTimer(Timer.SEND_HOLD, want) in actions
    # started on entering Established, after the OPEN exchange (RFC 9687 section 3.3)
    assert actions.index(StartTimer(Timer.SEND_HOLD, want)) > actions.index(
        next(a for a in actions if isinstance(a, StateChanged) and a.new is State.OPENCONFIRM))


def test_no_send_hold_timer_when_the_hold_time_is_zero():
    s, actions = established_with(SessionConfig(65001, "10.0.0.1", 65002, hold_time=0), peer_open(hold=0))
    assert not any(isinstance(a, StartTimer) and a.timer is Timer.SEND_HOLD for a in actions)
    assert s.send_progress() == []
    assert s.timer_expired(Timer.SEND_HOLD) == [] and s.state is State.ESTABLISHED


def test_send_progress_restarts_the_send_hold_timer_only_in_established():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002, hold_time=9), peer_open(hold=9))
    assert s.send_progress() == [StartTimer(Timer.SEND_HOLD, 480.0)]
    o = _opensent()
    assert o.send_progress() == []


def test_send_hold_expiry_sends_8_0_and_drops_the_connection_at_once():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002, hold_time=9, idle_hold=2.0), peer_open(hold=9))
    actions = s.timer_expired(Timer.SEND_HOLD)
    assert notifications(actions) == [Notification(8, 0)]
    assert Disconnect(abort=True) in actions  # what is queued would never drain
    assert s.state is State.IDLE and "send hold timer expired" in s.last_error
    assert SessionDown(s.last_error, notification=True) in actions
    assert StopTimer(Timer.SEND_HOLD) in actions and StartTimer(Timer.IDLE_HOLD, 2.0) in actions


def test_send_hold_expiry_outside_established_does_nothing():
    o = _opensent()
    assert o.timer_expired(Timer.SEND_HOLD) == [] and o.state is State.OPENSENT


def test_send_buffer_overflow_closes_like_the_send_hold_timer():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    actions = s.send_stalled("40000000 octets queued, limit 33554432")
    assert notifications(actions) == [Notification(8, 0)] and Disconnect(abort=True) in actions
    assert s.state is State.IDLE and "send buffer overflow" in s.last_error
    assert s.send_stalled("again") == []  # not connected any more


def test_the_send_buffer_limit_defaults_to_the_module_constant():
    from l3fab.speaker.session import fsm

    assert SessionConfig(65001, "10.0.0.1").effective_max_send_buffer == fsm.DEFAULT_MAX_SEND_BUFFER
    assert SessionConfig(65001, "10.0.0.1", max_send_buffer=1000).effective_max_send_buffer == 1000


def test_a_peers_shutdown_communication_is_escaped_in_the_reason():
    s, _ = established_with(SessionConfig(65001, "10.0.0.1", 65002), peer_open())
    text = "bye\n2024-01-01 INFO forged line \x1b[31mred\x1b[0m \u202e"
    actions = s.data_received(Notification.shutdown(text).encode())
    down = next(a for a in actions if isinstance(a, SessionDown))
    for shown in (s.last_error, down.reason):
        assert shown.isprintable(), shown
        assert "\\n2024-01-01 INFO forged line \\x1b[31mred" in shown and "\\u202e" in shown
    # the event still carries the NOTIFICATION as received, for whoever needs the raw text
    assert next(a for a in actions if isinstance(a, NotificationReceived)).notification.shutdown_message == text


def test_start_passive_for_one_connection_then_restart_as_configured():
    """A session made for one inbound connection waits for it (no Connect) but, after an
    error, restarts as its configuration says: a non-passive neighbour connects again."""
    s = Session(SessionConfig(65001, "10.0.0.1", 65002, passive=False, idle_hold=1.0))
    actions = s.start(passive=True)
    assert s.state is State.ACTIVE and Connect() not in actions
    s.connection_made()
    s.connection_failed("reset")
    s.data_received(b"")
    assert s.state is State.ACTIVE
    s.stop(restart=True)
    again = s.timer_expired(Timer.IDLE_HOLD)
    assert s.state is State.CONNECT and Connect() in again


def test_reconfigure_only_between_connections():
    """The OPEN of the next connection follows the new configuration (e.g. the Restart
    State bit once a graceful restart is over); a connected session keeps its own."""
    from l3fab.speaker.wire.capabilities import GracefulRestartCap

    cfg = SessionConfig(65001, "10.0.0.1", 65002, graceful_restart_time=120, restarting=True)
    s = Session(cfg)
    assert s.local_open.first(GracefulRestartCap).restart_state
    s.start()
    s.connection_made()
    assert not s.reconfigure(SessionConfig(65001, "10.0.0.1", 65002, graceful_restart_time=120))
    assert s.local_open.first(GracefulRestartCap).restart_state
    s.connection_failed("reset")
    assert s.reconfigure(SessionConfig(65001, "10.0.0.1", 65002, graceful_restart_time=120))
    assert not s.local_open.first(GracefulRestartCap).restart_state and not s.connected
