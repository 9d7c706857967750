"""Mutation fuzzing of the decoder and the session.

Valid messages are mutated (bit flips, truncation, corrupted length fields, inserted
and deleted octets) and fed to ``decode_message``, ``MessageReader`` and a
:class:`Session` in Established.  The only acceptable outcomes are a decoded
message or a :class:`RemoteProtocolError` subclass; anything else is a codec bug.
The session must never raise and must end Established or Idle, consistently.
"""
from __future__ import annotations

import random
import struct

import pytest

from bgpbytes import AS_PATH_65001, OPT_TRANS, ORIGIN_IGP, attr, hx, next_hop, update
from sessions import established_with, peer_open
from l3fab.speaker.session import Session, SessionConfig
from l3fab.speaker.session.events import (
    Disconnect,
    NotificationReceived,
    NotificationSent,
    SessionDown,
    State,
    Timer,
    UpdateReceived,
)
from l3fab.speaker.wire import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    KEEPALIVE,
    VPNV4,
    VPNV6,
    Aggregator,
    AsPath,
    AsSegment,
    AtomicAggregate,
    ClusterList,
    CodecContext,
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    LocalPref,
    Med,
    MessageReader,
    MpNextHop,
    MpReachNlri,
    MpUnreachNlri,
    NextHop,
    Notification,
    Open,
    Origin,
    OriginatorId,
    PathId,
    Prefix,
    RemoteProtocolError,
    RouteDistinguisher,
    RouteRefresh,
    Update,
    VpnPrefix,
    decode_message,
    end_of_rib,
    route_target,
)
from l3fab.speaker.wire.capabilities import (
    ADDPATH_SEND,
    AddPathCap,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHop,
    FourOctetAs,
    FqdnCap,
    GracefulRestartCap,
    Multiprotocol,
    RouteRefreshCap,
    UnknownCapability,
)

ALL = (IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6)
CASES = 4000  # per target; the whole module stays well under 20 s


def _seed_messages() -> list[bytes]:
    rd = RouteDistinguisher(0, 65000, 1)
    path = (Origin(0), AsPath((AsSegment(2, (65001, 4200000001)), AsSegment(1, (7, 8)))), Med(5), LocalPref(100),
            AtomicAggregate(), Aggregator(4200000001, "10.0.0.9"), Communities((1, 2)), OriginatorId("1.1.1.1"),
            ClusterList(("2.2.2.2",)), ExtendedCommunities((route_target("65000:1"),)),
            LargeCommunities((LargeCommunity(1, 2, 3),)))
    v4 = tuple(Prefix.parse(p) for p in ("10.0.0.0/8", "192.0.2.0/24", "192.0.2.1/32", "0.0.0.0/0"))
    v6 = tuple(Prefix.parse(p) for p in ("2001:db8::/32", "2001:db8::1/128"))
    vpn4 = (VpnPrefix(rd, v4[1], (100,)), VpnPrefix(RouteDistinguisher(1, "1.2.3.4", 5), v4[2], (1048575,)))
    vpn6 = (VpnPrefix(RouteDistinguisher(2, 4200000001, 3), v6[0], (100,)),)
    updates = [
        Update(attributes=path + (NextHop("10.0.0.1"),), nlri=v4, withdrawn=v4[:2]),
        Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop("2001:db8::1", "fe80::1"), v6),) + path),
        Update(attributes=(MpReachNlri(IPV4_UNICAST, MpNextHop("2001:db8::1"), v4),) + path[:2]),
        Update(attributes=(MpReachNlri(VPNV4, MpNextHop("10.0.0.1"), vpn4),) + path),
        Update(attributes=(MpReachNlri(VPNV6, MpNextHop("2001:db8::1", "fe80::2"), vpn6),) + path[:3]),
        Update(withdrawn=v4[:1], attributes=(MpUnreachNlri(VPNV4, vpn4),)),
        Update(attributes=(MpUnreachNlri(IPV6_UNICAST, v6),
                           MpReachNlri(VPNV6, MpNextHop("2001:db8::1"), vpn6)) + path[:2]),
        Update(withdrawn=v4),
        end_of_rib(IPV4_UNICAST), end_of_rib(VPNV6),
    ]
    out = [u.encode() for u in updates]
    out.append(Update(attributes=path + (NextHop("10.0.0.1"),), nlri=v4[:2]).encode(CodecContext(four_octet_as=False)))
    out.append(Update(attributes=(MpReachNlri(IPV6_UNICAST, MpNextHop("2001:db8::1"),
                                              (PathId(7, v6[0]),)),) + path[:2]).encode())
    out.append(update(attrs=attr(OPT_TRANS, 99, b"\x01\x02") + ORIGIN_IGP + AS_PATH_65001 + next_hop("10.0.0.1"),
                      nlri=hx("18c00002")))
    caps = (Multiprotocol(IPV4_UNICAST), Multiprotocol(VPNV6), RouteRefreshCap(), EnhancedRouteRefreshCap(),
            FourOctetAs(4200000001), ExtendedMessageCap(), ExtendedNextHop(((IPV4_UNICAST, 2),)),
            GracefulRestartCap(True, True, 120, ((IPV4_UNICAST, True),)), AddPathCap(((IPV4_UNICAST, 3),)),
            FqdnCap("leaf1", "example"), UnknownCapability(code=71, raw=b""))
    out.append(Open(4200000001, 90, "10.0.0.2", caps).encode())
    out.append(Open(65002, 3, "10.0.0.2",
                    tuple(UnknownCapability(code=200 + i, raw=bytes(50)) for i in range(6))).encode())
    out += [Notification(6, 2, b"\x03bye").encode(), Notification(3, 1).encode(), KEEPALIVE.encode(),
            RouteRefresh(IPV4_UNICAST).encode(), RouteRefresh(VPNV6, 1).encode()]
    return out


SEEDS = _seed_messages()


def _fix_length(m: bytearray) -> bytearray:
    if len(m) >= 19:
        m[16:18] = struct.pack("!H", min(len(m), 0xFFFF))
    return m


def mutate(rng: random.Random, msg: bytes) -> bytes:
    m = bytearray(msg)
    if len(m) < 20:  # too short to aim at a body: random octets
        return bytes(m) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
    kind = rng.randrange(7)
    if kind == 0:  # flip a few bits in the body
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(19, len(m))
            m[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate, and say so in the header (or not)
        m = m[: rng.randrange(len(m))]
        if rng.random() < 0.8:
            _fix_length(m)
    elif kind == 2:  # corrupt one or two octets that are likely length fields
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(19, len(m))
            m[i] = rng.choice((0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, rng.randrange(256)))
    elif kind == 3:  # insert random octets
        i = rng.randrange(19, len(m) + 1)
        m[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        _fix_length(m)
    elif kind == 4:  # delete a run of octets from the body
        i = rng.randrange(19, len(m))
        del m[i : i + rng.randint(1, 8)]
        _fix_length(m)
    elif kind == 5:  # corrupt the header's length field
        m[16:18] = struct.pack("!H",
                               rng.choice((0, 18, 19, 23, len(m) - 1, len(m) + 1, 4096, 4097, 65535,
                                           rng.randrange(65536))))
    else:  # splice two messages' bodies
        other = rng.choice(SEEDS)
        m = m[: rng.randrange(19, len(m) + 1)] + bytearray(other[rng.randrange(19, len(other) + 1):])
        _fix_length(m)
    return bytes(m)


CONTEXTS = (
    CodecContext(),
    CodecContext(four_octet_as=False),
    CodecContext(addpath_receive=frozenset(ALL), max_message=65535),
)


def _check_decode(data: bytes, ctx: CodecContext) -> None:
    try:
        decode_message(data, ctx)
    except RemoteProtocolError as e:
        assert 1 <= e.code <= 7 and isinstance(e.data, bytes)
    except Exception as e:  # pragma: no cover - this is what the test looks for
        pytest.fail(f"{type(e).__name__}: {e} decoding {data.hex()} with {ctx}")


def test_seed_messages_are_valid():
    # each seed decodes without fault in one of the contexts the fuzzer uses
    def clean(m, ctx):
        try:
            return not getattr(decode_message(m, ctx), "faults", ())
        except RemoteProtocolError:
            return False

    for m in SEEDS:
        assert any(clean(m, ctx) for ctx in CONTEXTS), m.hex()


@pytest.mark.parametrize("seed", [1, 2])
def test_decode_message_only_raises_protocol_errors(seed):
    rng = random.Random(seed)
    for _ in range(CASES):
        data = mutate(rng, rng.choice(SEEDS))
        for ctx in CONTEXTS:
            _check_decode(data, ctx)


def test_message_reader_on_a_mutated_stream():
    rng = random.Random(3)
    for _ in range(CASES // 3):
        stream = b"".join(mutate(rng, rng.choice(SEEDS)) if rng.random() < 0.3 else rng.choice(SEEDS)
                          for _ in range(rng.randint(1, 6)))
        reader = MessageReader(rng.choice(CONTEXTS))
        pos = 0
        try:
            while pos < len(stream):
                step = rng.randint(1, 200)
                reader.feed(stream[pos : pos + step])
                pos += step
                for msg in reader.messages():
                    assert msg.type in (1, 2, 3, 4, 5)
        except RemoteProtocolError:
            pass
        except Exception as e:  # pragma: no cover
            pytest.fail(f"{type(e).__name__}: {e} reading {stream.hex()}")


def _established(variant: int) -> Session:
    if variant == 0:  # everything negotiated
        cfg = SessionConfig(65001, "10.0.0.1", 65002, families=ALL, addpath_receive=ALL)
        caps = tuple(Multiprotocol(f) for f in ALL) + (FourOctetAs(65002), RouteRefreshCap(), ExtendedMessageCap(),
                                                       AddPathCap(tuple((f, ADDPATH_SEND) for f in ALL)))
    elif variant == 1:  # a 2-octet AS peer
        cfg = SessionConfig(65001, "10.0.0.1", 65002, families=(IPV4_UNICAST, IPV6_UNICAST))
        caps = (Multiprotocol(IPV4_UNICAST), Multiprotocol(IPV6_UNICAST))
    else:  # IPv4 only, no options
        cfg = SessionConfig(65001, "10.0.0.1", 65002, hold_time=0)
        caps = ()
    s, _ = established_with(cfg, peer_open(caps=caps))
    return s


def _check_session(s: Session, data: bytes) -> bool:
    """Feed ``data``; check the outcome is consistent; True if the session went down."""
    try:
        actions = s.data_received(data)
    except Exception as e:  # pragma: no cover
        pytest.fail(f"session raised {type(e).__name__}: {e} on {data.hex()}")
    notes = [a for a in actions if isinstance(a, (NotificationSent, NotificationReceived))]
    went_down = s.state is not State.ESTABLISHED
    if not went_down:
        assert not notes and not any(isinstance(a, (Disconnect, SessionDown)) for a in actions), actions
    else:
        assert s.state is State.IDLE, s.state
        assert len(notes) == 1, actions
        assert any(isinstance(a, Disconnect) for a in actions)
        assert any(isinstance(a, SessionDown) for a in actions)
        assert s.data_received(KEEPALIVE.encode()) == []  # the dead connection is ignored
    for a in actions:
        if isinstance(a, UpdateReceived):
            assert isinstance(a.update, Update)
    # whatever happened, the owner can still stop it and time it out
    s.timer_expired(Timer.HOLD)
    s.stop()
    assert s.state is State.IDLE
    return went_down


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_session_in_established_survives_mutated_messages(variant):
    rng = random.Random(10 + variant)
    downs = 0
    for _ in range(CASES // 3):
        downs += _check_session(_established(variant), mutate(rng, rng.choice(SEEDS)))
    assert 0 < downs < CASES // 3  # both outcomes were reached


def test_session_in_opensent_survives_mutated_opens():
    rng = random.Random(20)
    opens = [m for m in SEEDS if m[18] == 1]
    for _ in range(CASES // 3):
        s = Session(SessionConfig(65001, "10.0.0.1", None))
        s.start()
        s.connection_made()
        data = mutate(rng, rng.choice(opens))
        try:
            actions = s.data_received(data)
        except Exception as e:  # pragma: no cover
            pytest.fail(f"session raised {type(e).__name__}: {e} on {data.hex()}")
        assert s.state in (State.OPENSENT, State.OPENCONFIRM, State.IDLE)
        if s.state is State.IDLE:
            assert sum(isinstance(a, (NotificationSent, NotificationReceived)) for a in actions) == 1
