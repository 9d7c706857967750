"""The FIB: desired routes per table, kept equal to the kernel's routes of l3fab's protocol.

How the speaker uses it::

    fib = Fib()                       # dumps l3fab's routes already in the kernel
    with fib.batch():                 # one netlink batch for many best-path changes
        fib.update(route)             # a new or changed best path
        fib.remove(table, prefix)     # a withdrawn one
    fib.converged()                   # End-of-RIB from all peers (or a timeout)

What the kernel has is cached, not trusted blindly: the kernel deletes routes
by itself when their interface goes down (and does not bring them back), so
the cache is read again from the kernel after any link or address change
(:class:`~fib.kernel.LinkWatch`) before the next change is planned, and a
replace that finds the route gone adds it again; routes through an interface
that was re-created are encoded again with its new index. :meth:`Fib.repair`
(call it often: it costs one non-blocking read when nothing changed) puts
back what the kernel dropped; :meth:`Fib.reconcile` (call it every interval)
re-reads everything in any case, for what no announcement reveals (``ip route
del``).

Restart behaviour: routes already right are never re-sent. Routes of l3fab's
protocol that nobody asked for (stale, from before a restart) stay until
:meth:`Fib.converged`; before that, only adds and replaces happen. Routes of
any other protocol are never written, replaced or deleted: adds are create-only
(NLM_F_EXCL) and deletes name l3fab's protocol, which the kernel checks.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from l3fab.fib.kernel import ApplyOutcome, KernelFib, Op
from l3fab.fib.model import FibRoute, RTPROT_L3FAB
from l3fab.fib.netlink import FibRouteError, Prepared, RouteKey, Signature, to_route
from l3fab.fib.reconcile import Pid, Plan, diff

log = logging.getLogger("l3fab.fib")

RESYNC_ROUNDS = 3


@dataclass(frozen=True)
class FibResult:
    """What one apply did. ``errors`` are one line each, naming route and errno."""

    added: int = 0
    replaced: int = 0
    deleted: int = 0
    retries: int = 0
    errors: tuple[str, ...] = ()

    def __add__(self, other: "FibResult") -> "FibResult":
        return FibResult(self.added + other.added, self.replaced + other.replaced,
                         self.deleted + other.deleted, self.retries + other.retries,
                         self.errors + other.errors)

    @property
    def ok(self) -> bool:
        return not self.errors


class Fib:
    """Desired forwarding state per kernel table, reconciled to the kernel.

    ``tables``: the tables l3fab owns; None (default) means every table in
    which routes of ``protocol`` appear.
    """

    def __init__(self, kernel: KernelFib | None = None, *, protocol: int = RTPROT_L3FAB,
                 tables: Iterable[int] | None = None):
        self.kernel = kernel if kernel is not None else KernelFib(protocol)
        self.protocol = self.kernel.protocol
        self.tables = None if tables is None else frozenset(tables)
        self._routes: dict[int, dict[str, Prepared]] = {}     # table -> prefix -> route
        self._desired: dict[Pid, Prepared] = {}
        self._want: dict[Pid, tuple[int, Signature]] = {}      # what diff() reads
        self._actual: dict[Pid, dict[int, Signature]] | None = None
        self._stale = False  # the cache is known to be wrong: read the kernel before planning
        self._unencoded: set[Pid] = set()  # to encode again once their interface is back
        self._converged = False
        self._batch = 0
        self._dirty: set[Pid] = set()
        self.errors: dict[RouteKey, str] = {}

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Read l3fab's routes from the kernel (done on first use otherwise)."""
        self._load()

    def close(self) -> None:
        self.kernel.close()

    @property
    def is_converged(self) -> bool:
        return self._converged

    def converged(self) -> FibResult:
        """The RIB is complete: from now on stale routes are deleted. Deletes them now."""
        self._converged = True
        self._look()
        self._dirty.clear()
        return self._apply_plan(diff(self._want, self._fresh_actual(), prune=True))

    # -- desired state ---------------------------------------------------------

    def update(self, route: FibRoute) -> FibResult:
        """Install or change ``route`` (applied at once, or at the end of :meth:`batch`)."""
        self._check_table(route.table)
        self._put(self.kernel.prepare(route))
        return self._maybe_flush()

    def _put(self, prepared: Prepared) -> None:
        route = prepared.route
        table = self._routes.get(route.table)
        if table is None:
            table = self._routes[route.table] = {}
        table[route.prefix] = prepared
        pid = prepared.key[:4]
        self._desired[pid] = prepared
        self._want[pid] = (prepared.key[4], prepared.sig)  # key[4]: the metric, defaulted
        self._dirty.add(pid)

    def remove(self, table: int, prefix: str | ipaddress.IPv4Network | ipaddress.IPv6Network
               ) -> FibResult:
        """Withdraw the route for ``prefix``; the kernel route goes once converged."""
        self._drop(table, str(ipaddress.ip_network(prefix, strict=True)))
        return self._maybe_flush()

    def _drop(self, table: int, canonical: str) -> None:
        old = self._routes.get(table, {}).pop(canonical, None)
        if old is not None:
            pid = old.key[:4]
            self._unencoded.discard(pid)
            del self._desired[pid]
            del self._want[pid]
            self._dirty.add(pid)

    def set_desired(self, table: int, routes: Mapping[str, FibRoute] | Iterable[FibRoute],
                    *, apply: bool = True) -> FibResult:
        """Make ``routes`` the whole content of ``table`` (others in it are removed).

        With ``apply=False`` only the desired state changes; the kernel follows
        at the next :meth:`flush`, :meth:`converged` or :meth:`reconcile`.
        """
        self._check_table(table)
        items = routes.values() if isinstance(routes, Mapping) else routes
        new: dict[str, FibRoute] = {}
        for route in items:
            if route.table != table:
                raise ValueError(f"set_desired(table={table}): route {route.prefix} "
                                 f"is for table {route.table}")
            new[route.prefix] = route
        current = self._routes.get(table, {})
        self._batch += 1
        try:
            for prefix in [p for p in current if p not in new]:
                self._drop(table, prefix)
            prepare, put = self.kernel.prepare, self._put
            for prefix, route in new.items():
                old = current.get(prefix)
                if old is None or old.route != route:
                    put(prepare(route))
        finally:
            self._batch -= 1
        return self._maybe_flush() if apply else FibResult()

    def desired(self, table: int) -> dict[str, FibRoute]:
        return {p: prep.route for p, prep in self._routes.get(table, {}).items()}

    @contextlib.contextmanager
    def batch(self) -> Iterator["_ResultBox"]:
        """Collect updates and removals; apply them in one netlink batch on exit."""
        box = _ResultBox()
        self._batch += 1
        try:
            yield box
        finally:
            self._batch -= 1
        if not self._batch:
            box.value = self.flush()

    def flush(self) -> FibResult:
        """Apply the changes collected so far."""
        self._look()
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return FibResult()
        actual = self._fresh_actual()
        if len(dirty) * 2 > len(self._want):
            # Most of the state changed (start-up, a whole table): one full diff is
            # cheaper than slicing, and gives the same plan (the states are the same).
            return self._apply_plan(diff(self._want, actual, prune=self._converged))
        return self._apply_plan(self._diff_pids(dirty))

    # -- reconcile ---------------------------------------------------------------

    def reconcile(self) -> FibResult:
        """Read the kernel again, diff against the desired state, apply the difference."""
        self._look()  # read now: the dump below covers what was announced so far
        actual = self._load()
        self._dirty.clear()
        return self._apply_plan(diff(self._want, actual, prune=self._converged))

    def repair(self) -> FibResult:
        """:meth:`reconcile` if the kernel may have dropped routes since the last look.

        That is: an interface or address changed (the kernel deletes the routes
        through an interface that goes down and does not restore them when it
        comes up), or a write found one of l3fab's routes gone. Otherwise nothing
        is read or written, so this is cheap enough to call every second.
        """
        if self._look():
            return self.reconcile()
        return FibResult()

    def installed(self, table: int | None = None) -> list[FibRoute]:
        """l3fab's routes as the kernel has them now (next hops by ifindex)."""
        tables = None if table is None else [table]
        return [to_route(k, s) for k, s in self.kernel.dump(tables).items()]

    # -- internals -----------------------------------------------------------------

    def _check_table(self, table: int) -> None:
        if self.tables is not None and table not in self.tables:
            raise ValueError(f"table {table} is not one of the tables this FIB owns "
                             f"({sorted(self.tables)})")

    def _maybe_flush(self) -> FibResult:
        return FibResult() if self._batch else self.flush()

    def _actual_map(self) -> dict[Pid, dict[int, Signature]]:
        actual = self._actual
        if actual is None:
            actual = self._load()
        return actual

    def _fresh_actual(self) -> dict[Pid, dict[int, Signature]]:
        """The cache, first read again from the kernel if it may be wrong (before planning)."""
        if self._actual is None or self._stale:
            return self._load()
        return self._actual

    def _look(self) -> bool:
        """Read the kernel's announcements; True if the cache is to be read again.

        Routes through an interface that was removed or re-created (a new index)
        are encoded again, so that they name the interface as it is now; those
        whose interface is missing are tried again at every change until it is back.
        """
        if self.kernel.changed():
            self._stale = True
            moved = self.kernel.moved_interfaces()
            if moved or self._unencoded:
                self._reencode(moved)
        return self._stale

    def _reencode(self, ifnames: set[str]) -> None:
        prepare, put, desired = self.kernel.prepare, self._put, self._desired
        pids = set(self._unencoded)
        if ifnames:
            pids.update(pid for pid, prepared in desired.items()
                        if any(nh.ifindex is None and nh.ifname in ifnames
                               for nh in prepared.route.nexthops))
        self._unencoded = set()
        for pid in pids:
            try:
                put(prepare(desired[pid].route))
            except FibRouteError:  # the interface is missing: until then its adds fail (ENODEV)
                self._unencoded.add(pid)

    def _load(self) -> dict[Pid, dict[int, Signature]]:
        actual: dict[Pid, dict[int, Signature]] = {}
        for key, sig in self.kernel.dump(self.tables).items():
            pid = key[:4]
            have = actual.get(pid)
            if have is None:
                actual[pid] = {key[4]: sig}
            else:
                have[key[4]] = sig
        self._actual = actual
        self._stale = False
        return actual

    def _diff_pids(self, pids: Iterable[Pid]) -> Plan:
        actual = self._actual_map()
        want = self._want
        return diff({p: want[p] for p in pids if p in want},
                    {p: actual[p] for p in pids if p in actual}, prune=self._converged)

    def _ops(self, plan: Plan) -> list[Op]:
        desired = self._desired
        ops: list[Op] = []
        for action, items in (("add", plan.add), ("replace", plan.replace)):
            for pid, metric in items:
                prepared = desired[pid]
                ops.append((action, pid, metric, prepared.body, prepared.sig))
        ops += [("delete", pid, metric, None, None) for pid, metric in plan.delete]
        return ops

    def _apply_plan(self, plan: Plan) -> FibResult:
        result = FibResult()
        for _round in range(RESYNC_ROUNDS):
            if not plan:
                return result
            outcome = self.kernel.apply(self._ops(plan))
            recorded, vanished = self._record(outcome)
            result += recorded
            if not outcome.uncertain and not vanished:
                return result
            pids = {op[1] for op in outcome.uncertain}
            if pids:
                # Acks were lost: read back the routes concerned and diff them again.
                log.warning("fib: %d netlink acks lost; re-reading the kernel", len(pids))
                self._load()
            # A replaced route was gone: the cache no longer lists it, so the new
            # plan adds it (create-only: a route of another protocol stays).
            plan = self._diff_pids(pids | vanished)
        if plan:
            raise RuntimeError("fib: netlink acks kept being lost or routes kept vanishing; "
                               "kernel state unknown")
        return result

    def _record(self, outcome: ApplyOutcome) -> tuple[FibResult, set[Pid]]:
        """Update the cache with ``outcome``: the result, and the pids whose replace
        found no route (the kernel had deleted it; they are to be added again)."""
        actual = self._actual_map()
        added = replaced = deleted = 0
        vanished: set[Pid] = set()
        errors = self.errors
        for action, pid, metric, _body, sig in outcome.done:
            if errors:
                errors.pop(pid + (metric,), None)
            have = actual.get(pid)
            if action == "delete":
                deleted += 1
                if have is not None:
                    have.pop(metric, None)
                    if not have:
                        del actual[pid]
                continue
            assert sig is not None  # "add" and "replace" carry the route's signature
            if action == "add":
                added += 1
            else:
                replaced += 1
            if have is None:
                actual[pid] = {metric: sig}
            else:
                have[metric] = sig
        texts = []
        first = ""  # the first vanished route, for the log
        for err in outcome.failed:
            action, pid, metric = err.op[:3]
            if action == "replace" and err.errno == errno.ENOENT:
                # The kernel deleted the route (with its interface, most likely) and so
                # probably others: the whole cache is read again before the next plan.
                if not vanished:
                    first = f"{_address(pid)}/{pid[3]} table {pid[0]} metric {metric}"
                have = actual.get(pid)
                if have is not None:
                    have.pop(metric, None)
                    if not have:
                        del actual[pid]
                vanished.add(pid)
                self._stale = True
                continue
            text = str(err)
            if err.op[0] == "add" and err.errno == errno.EEXIST:
                text += " (held by a route of another protocol; left alone)"
            errors[err.op[1] + (err.op[2],)] = text
            texts.append(text)
            log.error("fib: %s", text)
        if vanished:
            log.warning("fib: %d routes (%s%s) were no longer in the kernel; adding them again",
                        len(vanished), first, ", ..." if len(vanished) > 1 else "")
        return FibResult(added, replaced, deleted, outcome.retries, tuple(texts)), vanished


def _address(pid: Pid) -> str:
    return socket.inet_ntop(pid[1], pid[2])


class _ResultBox:
    """Filled with the :class:`FibResult` of a :meth:`Fib.batch` when it ends."""

    value: FibResult = FibResult()
