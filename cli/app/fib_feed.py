"""The kernel FIB feed: a Loc-RIB consumer for IPv4/IPv6 unicast.

One kernel route per destination whose best path was learned from a peer, with an
ECMP next-hop group made of the multipath set.  What this node originates (its
loopback, its locator) is local and has kernel state of its own.

Changes are queued and programmed in chunks by the kernel worker, never in the
event loop, and never held back by the MRAI of the advertisements.  After a
restart with forwarding state (RFC 4724 section 4.1) the kernel keeps the old
routes until the RIB converged; then the whole table is pushed and what the
previous run left and nobody wants any more is removed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from l3fab.fib.controller import Fib, FibResult
from l3fab.fib.model import FibNextHop, FibRoute
from l3fab.fib.worker import KernelWorker
from l3fab.speaker.config import FibConfig
from l3fab.speaker.consumer import RibReader
from l3fab.speaker.table.path import Path
from l3fab.speaker.table.rib import Destination
from l3fab.speaker.wire.constants import IPV4_UNICAST, IPV6_UNICAST, Family


log = logging.getLogger("l3fab.fib")
UNICAST = (IPV4_UNICAST, IPV6_UNICAST)
CHUNK = 2_000  # routes per kernel batch: the worker is free for other work in between


def fib_next_hops(multipath: Iterable[Path], peer_interfaces: dict[str, str]) -> tuple[FibNextHop, ...]:
    """Kernel next hops for a multipath set: link-local gateways carry their interface."""
    out = []
    seen = set()
    for p in multipath:
        nh = p.next_hop
        if nh is None or p.source.is_local:
            continue
        dev = peer_interfaces.get(p.source.name)
        gw = nh.address
        if not gw.startswith("fe80:") and nh.link_local and dev:
            gw = nh.link_local  # on a shared link the peer's link-local address is the better gateway
        if gw.startswith("fe80:") and not dev:
            continue  # a link-local next hop without a known link cannot be installed
        hop = FibNextHop(gateway=gw, ifname=dev if gw.startswith("fe80:") else None)
        if hop not in seen:
            seen.add(hop)
            out.append(hop)
    return tuple(out)


def _ifname(index: int | None) -> str | None:
    if not index:
        return None
    try:
        return socket.if_indextoname(index)
    except OSError:
        return None


class FibFeed:
    """Implements :class:`~speaker.consumer.LocRibConsumer`."""

    name = "fib"
    families = frozenset(UNICAST)

    def __init__(self, config: FibConfig, worker: KernelWorker, peer_interfaces: dict[str, str],
                 fib: Fib | None = None) -> None:
        self.config = config
        self.table = config.table
        self.worker = worker
        self.peer_interfaces = dict(peer_interfaces)
        self.fib = fib or Fib(protocol=config.protocol, tables=[config.table])
        self.errors: list[str] = []
        self.preserved = 0
        self.deferred = False  # restarting: the kernel keeps the old routes until the RIB converged
        self._pending: dict[str, tuple[FibNextHop, ...]] = {}  # prefix -> next hops (none: remove)
        self._converge = False
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ kernel side (worker thread)

    def _start(self) -> bool:
        self.fib.start()
        self.preserved = len(self.fib.installed(self.table))
        return self.preserved > 0

    def _record(self, result: FibResult | None) -> None:
        if result is not None and result.errors:
            for e in result.errors:
                log.error("FIB: %s", e)
            self.errors = (self.errors + list(result.errors))[-50:]

    def _apply(self, batch: list[tuple[str, tuple[FibNextHop, ...]]]) -> None:
        with self.fib.batch() as box:
            for prefix, hops in batch:
                if hops:
                    self.fib.update(FibRoute(self.table, prefix, hops))
                else:
                    self.fib.remove(self.table, prefix)
        self._record(box.value)

    def _converged(self) -> int:
        result = self.fib.converged()
        self._record(result)
        return result.deleted

    def _clear(self) -> None:
        self._record(self.fib.set_desired(self.table, {}, apply=False))
        self._record(self.fib.converged())

    # ------------------------------------------------------------------ event loop side

    async def start(self) -> bool:
        """Read what a previous run left in the kernel; True when there was forwarding state."""
        had = await self.worker.run(self._start)
        self.deferred = had
        return had

    def rib_changed(self, family: Family, dests: Sequence[Destination]) -> None:
        if self.deferred:
            return
        ifs = self.peer_interfaces
        pending = self._pending
        for d in dests:
            pending[str(d.key)] = fib_next_hops(d.multipath, ifs) if d.best is not None else ()
        self._kick()

    def rib_converged(self, rib: RibReader) -> None:
        if self.deferred:
            self.deferred = False
            ifs = self.peer_interfaces
            for d in rib.best(UNICAST):
                self._pending[str(d.key)] = fib_next_hops(d.multipath, ifs)
        self._converge = True
        self._kick()

    def _kick(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending or self._converge:
                if self._pending:
                    batch = []
                    for prefix in list(self._pending)[:CHUNK]:
                        batch.append((prefix, self._pending.pop(prefix)))
                    await self.worker.run(self._apply, batch)
                else:
                    self._converge = False
                    removed = await self.worker.run(self._converged)
                    log.info("FIB converged; %d stale routes removed", removed)
        finally:
            self._task = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def keep_repaired(self, interval: float) -> None:
        """Level-triggered repair of the underlay routes: every second a cheap check (the
        kernel is read again only after a link or address change), every ``interval``
        seconds a full reconcile against a kernel dump.  Routes the kernel deleted with
        their link, or someone deleted by hand, come back."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(1.0)
            try:
                full = loop.time() - last >= interval
                if full:
                    last = loop.time()
                self._record(await self.worker.run(self.fib.reconcile if full else self.fib.repair))
            except Exception:  # the loop must survive; the error is logged with its traceback
                log.exception("FIB repair failed")

    async def clear(self) -> None:
        """Full shutdown: remove every route this node installed."""
        if self._task is not None:
            self._task.cancel()
        self._pending.clear()
        await self.worker.run(self._clear)

    def summary(self) -> dict[str, Any]:
        return {"table": self.table, "protocol": self.config.protocol,
                "routes": len(self.fib.desired(self.table)), "converged": self.fib.is_converged,
                "pending": len(self._pending), "preserved_at_start": self.preserved, "errors": self.errors[-5:]}

    def _view(self, table: int) -> list[dict[str, Any]]:
        out = []
        for r in self.fib.installed(table):
            out.append({"table": r.table, "prefix": r.prefix, "kind": r.kind.name.lower(),
                        "nexthops": [{"gateway": h.gateway, "ifname": h.ifname or _ifname(h.ifindex),
                                      "ifindex": h.ifindex, "weight": h.weight,
                                      "encap": list(h.encap.segs) if h.encap else None} for h in r.nexthops]})
        return out

    async def view(self, table: int | None = None) -> list[dict[str, Any]]:
        return await self.worker.run(self._view, table or self.table)


__all__ = ["FibFeed", "fib_next_hops"]
