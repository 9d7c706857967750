"""The daemon's underlay feed repairs what the kernel dropped: FibFeed with its own
KernelWorker and repair loop, in a namespace; a link goes down (the kernel deletes
the routes through it) and comes back, and the routes return within a few seconds
without any new BGP update (regression: the route to a leaf loopback stayed missing
for over 12 minutes, until l3fab was restarted)."""
from __future__ import annotations

import asyncio
import time

from l3fab.cli.app.fib_feed import FibFeed
from l3fab.fib.worker import KernelWorker
from l3fab.speaker.config import FibConfig
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.table.rib import Destination
from l3fab.speaker.wire.attributes import MpNextHop
from l3fab.speaker.wire.constants import IPV4_UNICAST
from l3fab.speaker.wire.nlri import Prefix

from conftest import fib_in  # tests/fib/conftest.py

T = 100


def _dest(prefix: str, gw: str) -> Destination:
    p = Path(IPV4_UNICAST, Prefix.parse(prefix), MpNextHop(gw), (), (), Source("leaf1", gw))
    d = Destination(p.key, (p,))
    d.best, d.multipath = p, (p,)
    return d


def _routes(ns) -> set[str]:
    return {r["dst"] for r in ns.ip_json("route", "show", "table", str(T))}


def test_the_feed_puts_back_routes_the_kernel_dropped_with_their_link(router):
    worker = KernelWorker()
    feed = FibFeed(FibConfig(table=T), worker, {}, fib=fib_in(router, tables=[T]))

    async def main() -> float:
        await feed.start()
        task = asyncio.get_running_loop().create_task(feed.keep_repaired(3600.0))  # repair only, no full reconcile
        try:
            feed.rib_changed(IPV4_UNICAST, [_dest("10.7.0.1/32", "10.0.0.2"), _dest("10.8.0.1/32", "10.0.1.2")])
            while feed.pending or feed._task is not None:
                await asyncio.sleep(0.05)
            assert _routes(router) == {"10.7.0.1", "10.8.0.1"}
            router.ip("link", "set", "dev", "up0", "down")
            assert _routes(router) == {"10.8.0.1"}  # the kernel deleted the route through up0
            await asyncio.sleep(1.5)
            router.ip("link", "set", "dev", "up0", "up")
            t0 = time.monotonic()
            while "10.7.0.1" not in _routes(router):
                assert time.monotonic() - t0 < 10, f"not repaired: {_routes(router)} errors {feed.errors}"
                await asyncio.sleep(0.2)
            return time.monotonic() - t0
        finally:
            task.cancel()

    try:
        took = asyncio.run(main())
        print(f"route back {took:.1f} s after the link came up")
    finally:
        worker.close()
