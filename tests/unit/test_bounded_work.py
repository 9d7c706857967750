"""Work per turn of the event loop is bounded: a big TCP read is handed to the session
in slices, and a decision run takes a bounded number of destinations."""
from __future__ import annotations

import asyncio

from l3fab.speaker.peer import SLICE, _Protocol
from l3fab.speaker.table.path import Path
from l3fab.speaker.table.rib import LocRib
from l3fab.speaker.wire.constants import IPV4_UNICAST
from l3fab.speaker.wire.nlri import Prefix


class FakePeer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.lost = 0

    def _data(self, conn, data: bytes) -> None:
        self.chunks.append(data)

    def _lost(self, conn, exc) -> None:
        self.lost += 1


class FakeTransport:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")

    def is_closing(self) -> bool:
        return False


def test_a_big_read_reaches_the_session_in_slices_with_reading_paused():
    peer, transport = FakePeer(), FakeTransport()
    proto = _Protocol(peer, conn=object())  # type: ignore[arg-type]
    proto.transport = transport  # type: ignore[assignment]
    data = bytes(range(256)) * (3 * SLICE // 256 + 10)

    async def main() -> list[int]:
        proto.data_received(data)
        first = [len(c) for c in peer.chunks]
        proto.data_received(b"tail")  # arrives while the backlog is being worked off: stays in order
        while proto._pumping:
            await asyncio.sleep(0)
        return first

    first = asyncio.run(main())
    assert first == [SLICE]  # only one slice in the first turn
    assert b"".join(peer.chunks) == data + b"tail"
    assert all(len(c) <= SLICE for c in peer.chunks) and len(peer.chunks) == 4
    assert transport.events == ["pause", "resume"]


def test_small_reads_go_straight_through():
    peer = FakePeer()
    proto = _Protocol(peer, conn=object())  # type: ignore[arg-type]
    proto.data_received(b"x" * 100)
    assert peer.chunks == [b"x" * 100] and not proto._pumping


def test_connection_lost_feeds_the_backlog_first():
    """A NOTIFICATION that arrived just before the close must still be read."""
    peer, transport = FakePeer(), FakeTransport()
    proto = _Protocol(peer, conn=object())  # type: ignore[arg-type]
    proto.transport = transport  # type: ignore[assignment]

    async def main() -> None:
        proto.data_received(b"a" * (SLICE + 5))
        proto.connection_lost(None)

    asyncio.run(main())
    assert b"".join(peer.chunks) == b"a" * (SLICE + 5) and peer.lost == 1


def test_decision_run_takes_at_most_limit_destinations():
    rib = LocRib(IPV4_UNICAST)
    for i in range(10):
        rib.add(Path(IPV4_UNICAST, Prefix.parse(f"10.0.0.{i}/32"), None))
    first = rib.process(limit=4)
    assert len(first) == 4 and len(rib.dirty) == 6
    rest = rib.process()
    assert len(rest) == 6 and not rib.dirty
    assert {str(d.key) for d in first + rest} == {f"10.0.0.{i}/32" for i in range(10)}


def test_a_manager_run_takes_at_most_limit_destinations_ripple_rounds_included():
    """Unicast best-path changes ripple into further rounds (next-hop tracking); those
    rounds must not take more dirty destinations than the limit (regression: each of the
    8 rounds took ``limit`` again, so one run decided 40,000 destinations)."""
    from l3fab.speaker.origination import parse_route
    from l3fab.speaker.table.manager import RibManager, RibSettings

    rib = RibManager(RibSettings(65001, "192.0.2.1"))
    rib.originate(parse_route({"prefix": f"10.0.{i // 256}.{i % 256}/32"}).path() for i in range(1000))
    first = rib.process(100)
    assert sum(len(ds) for _f, ds in first) == 100 and rib.dirty()
    total = 100
    while rib.dirty():
        total += sum(len(ds) for _f, ds in rib.process(100))
    assert total == 1000
