"""From Loc-RIB best paths to kernel routes: one FIB entry per unicast destination,
with an ECMP next-hop group made of the multipath set.

Only routes learned from peers are installed; what this node originates is local
(its loopback, its locator) and already has kernel state of its own.
"""
from __future__ import annotations

import logging
import socket

from l3fab.fib.controller import Fib
from l3fab.fib.model import FibNextHop, FibRoute

from .config import FibConfig
from .table.rib import Destination

log = logging.getLogger("l3fab.fib")


def fib_next_hops(multipath, peer_interfaces: dict[str, str]) -> tuple[FibNextHop, ...]:
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
    def __init__(self, config: FibConfig, fib: Fib | None = None) -> None:
        self.config = config
        self.table = config.table
        self.fib = fib or Fib(protocol=config.protocol, tables=[config.table])
        self.errors: list[str] = []
        self.preserved = 0

    def start(self) -> bool:
        """Read what a previous run left in the kernel; True when there was forwarding state."""
        self.fib.start()
        self.preserved = len(self.fib.installed(self.table))
        return self.preserved > 0

    def _record(self, result) -> None:
        if result is not None and result.errors:
            for e in result.errors:
                log.error("FIB: %s", e)
            self.errors = (self.errors + list(result.errors))[-50:]

    def apply(self, changes: list[Destination], peer_interfaces: dict[str, str]) -> None:
        if not changes:
            return
        with self.fib.batch() as box:
            for ch in changes:
                prefix = str(ch.key)
                best = ch.best
                hops = fib_next_hops(ch.multipath, peer_interfaces) if best is not None else ()
                if not hops:
                    self.fib.remove(self.table, prefix)
                else:
                    self.fib.update(FibRoute(self.table, prefix, hops))
        self._record(box.value)

    def converged(self) -> int:
        result = self.fib.converged()
        self._record(result)
        return result.deleted

    def clear(self) -> None:
        """Full shutdown: remove every route this node installed."""
        self._record(self.fib.set_desired(self.table, {}, apply=False))
        self._record(self.fib.converged())

    def summary(self) -> dict:
        return {"table": self.table, "protocol": self.config.protocol,
                "routes": len(self.fib.desired(self.table)), "converged": self.fib.is_converged,
                "preserved_at_start": self.preserved, "errors": self.errors[-5:]}

    def view(self, table=None) -> list[dict]:
        t = int(table) if table else self.table
        out = []
        for r in self.fib.installed(t):
            out.append({"table": r.table, "prefix": r.prefix, "kind": r.kind.name.lower(),
                        "nexthops": [{"gateway": h.gateway, "ifname": h.ifname or _ifname(h.ifindex), "ifindex": h.ifindex,
                                      "weight": h.weight,
                                      "encap": list(h.encap.segs) if h.encap else None} for h in r.nexthops]})
        return out
