"""Issue 10, finding 21: ``show status`` said ``restarting: true`` after a graceful
restart had completed.  The restart ends when the RIB converged: the status says so,
and the OPEN of every later connection has no Restart State bit (RFC 4724 3)."""
from __future__ import annotations

import asyncio

from l3fab.speaker import handlers
from l3fab.speaker.config import NeighborConfig, NodeConfig
from l3fab.speaker.server import Speaker
from l3fab.speaker.wire.capabilities import GracefulRestartCap
from l3fab.speaker.wire.constants import IPV4_UNICAST


class Consumer:
    name = "test"
    families = frozenset({IPV4_UNICAST})

    def __init__(self) -> None:
        self.converged = 0

    def rib_changed(self, family, dests) -> None:
        pass

    def rib_converged(self, rib) -> None:
        self.converged += 1


def test_restarting_is_cleared_when_the_rib_converged():
    node = NodeConfig(router_id="10.0.0.1", asn=65001, listen_addresses=("127.0.0.1",), listen_port=0,
                      convergence_timeout=0.2,
                      neighbors=(NeighborConfig("down", 65002, address="127.0.0.9", port=9, connect_retry=60.0),))

    async def main() -> tuple[dict, dict, bool, bool, int]:
        speaker = Speaker(node)
        consumer = Consumer()
        speaker.add_consumer(consumer)
        speaker.restarting = True  # what the daemon sets when the kernel kept our routes
        await speaker.start()
        peer = speaker.peers[0]
        before = handlers.status(speaker, {})
        r_before = peer.session.local_open.first(GracefulRestartCap).restart_state
        for _ in range(100):  # the convergence deadline (the neighbour never comes up)
            if speaker.converged_at is not None:
                break
            await asyncio.sleep(0.05)
        after = handlers.status(speaker, {})
        # the neighbour is still trying (Connect/Active): its next OPEN must not claim a restart
        r_after = peer.session.local_open.first(GracefulRestartCap).restart_state
        await speaker.stop()
        return before, after, r_before, r_after, consumer.converged

    before, after, r_before, r_after, converged = asyncio.run(main())
    assert before["restarting"] is True and r_before is True
    assert converged == 1 and after["converged"] is True
    assert after["restarting"] is False
    assert r_after is False
