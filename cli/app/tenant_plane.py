"""The host's tenant side: a Loc-RIB consumer for VPNv4/VPNv6.

Intent -> dataplane spec (local plumbing); VPN Loc-RIB -> VRF imports -> remote
routes in the tenant tables; and the views behind ``show vrf|endpoints|dataplane``.

Decisions are made on the event loop (they are cheap and in memory); everything
that touches the kernel (the dataplane's ``ip``/``nft``/``tc`` work, seg6 route
batches, counter reads) is queued on the single :class:`KernelWorker`, so an
endpoint add or a burst of 100,000 imported routes never holds keepalives back.

The dataplane may be absent (``dataplane.enabled: false``, or a node without a
FIB): imports are still computed, so ``show vrf`` and ``show fib --vrf`` say what
would be installed.

Intent changes fail closed (issue 10): a new state is first checked by the
dataplane's own rules (:meth:`TenantPlane.check_state`, the intent's ``check`` hook,
before anything is stored), and :meth:`TenantPlane.apply_change` raises
:class:`DataplaneRefused` with nft's reason when the kernel would not take the
anti-spoofing filter for it; the API then restores the previous intent.  Changes are
serialised by :attr:`TenantPlane.changing`.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from l3fab.dataplane import nft, tc
from l3fab.dataplane.intent import DataplaneSettings, build_spec
from l3fab.dataplane.model import DataplaneSpec, RemoteRoute
from l3fab.fib.controller import Fib
from l3fab.fib.worker import KernelWorker
from l3fab.speaker.consumer import RibReader
from l3fab.speaker.table.rib import Destination
from l3fab.speaker.wire.constants import VPNV4, VPNV6, Family
from l3fab.tenancy.errors import IntentError
from l3fab.tenancy.intent import Intent
from l3fab.tenancy.model import State
from l3fab.tenancy.views import endpoint_views, tenant_views

from .vrf_import import VrfImporter

log = logging.getLogger("l3fab.tenants")
VPN = (VPNV4, VPNV6)


class DataplaneRefused(Exception):
    """The kernel did not take an intent change's filter; the message is its reason."""


class Dataplane(Protocol):
    """A dataplane backend (:class:`dataplane.linux.LinuxDataplane`).  Its methods do
    kernel work and are only ever called on the kernel worker."""

    fib: Fib
    use_nft: bool
    use_tc: bool
    waiting: dict[str, str]
    filter_error: str | None  # set by apply: why the nftables filter could not be updated

    @property
    def vrf_devices(self) -> bool: ...

    def start(self) -> bool: ...

    def apply(self, spec: DataplaneSpec) -> list[str]: ...

    def interfaces_changed(self) -> bool: ...

    def refresh(self) -> list[str]: ...

    def set_remote(self, routes: Iterable[RemoteRoute]) -> list[str]: ...

    def replace_remote(self, routes: Iterable[RemoteRoute]) -> list[str]: ...

    def converged(self) -> None: ...

    def clear(self) -> list[str]: ...

    def summary(self) -> dict[str, Any]: ...


def _ifname(index: int | None) -> str | None:
    try:
        return socket.if_indextoname(index) if index else None
    except OSError:
        return None


class TenantPlane:
    """Implements :class:`~speaker.consumer.LocRibConsumer` for the VPN families."""

    name = "tenants"
    families = frozenset(VPN)

    def __init__(self, intent: Intent, settings: DataplaneSettings, dataplane: Dataplane | None = None,
                 worker: KernelWorker | None = None, maximum_paths: int = 64,
                 vpn_destinations: Callable[[], Iterable[Destination]] = lambda: ()) -> None:
        self.intent = intent
        self.settings = settings
        self.dataplane = dataplane
        self.worker = worker or KernelWorker("l3fab-tenants")
        self.maximum_paths = maximum_paths
        self.vpn_destinations = vpn_destinations
        self.importer = self._new_importer()
        self._import_key: tuple[Any, ...] | None = None
        self._pending: dict[tuple[int, str], RemoteRoute] = {}  # (table, prefix) -> latest state, not yet programmed
        self._drain_task: asyncio.Task[None] | None = None
        self.chunk = 1000
        self._converge = False
        self.spec: DataplaneSpec | None = None
        self.errors: list[str] = []
        self.changing = asyncio.Lock()  # one intent change at a time, so that a refused one can be undone
        intent.check = self.check_state

    def check_state(self, state: State) -> None:
        """The dataplane's own checks on a new intent state (names, interfaces, addresses
        as the nftables filter takes them), before it is stored; IntentError if refused."""
        node = self.intent.node
        try:
            nft.digest(build_spec(node.locator, tenant_views(state, node), endpoint_views(state, node),
                                  self.settings))
        except ValueError as e:
            raise IntentError.from_line(f"dataplane: {e}") from None

    def _new_importer(self) -> VrfImporter:
        tables = {t.name: t.table for t in self.intent.tenants()}
        # SIDs must lie in the fabric's underlay space where dataplane.underlay-prefixes says
        # what it is (empty: any global unicast address)
        policy = self.intent.import_policy().with_sid_space(self.settings.underlay_prefixes)
        return VrfImporter(policy, tables, self.maximum_paths)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> bool:
        """Read the kernel; put the local part (from the store) in place at once."""
        had_state = await self.worker.run(self.dataplane.start) if self.dataplane is not None else False
        await self.sync()
        return had_state

    async def apply_change(self) -> None:
        """:meth:`sync` after an intent change; :class:`DataplaneRefused` with nft's reason
        when the filter for the new intent could not be put in place (the old filter
        stays, and what it does not cover is not plumbed)."""
        refused = await self.sync()
        if refused is not None:
            raise DataplaneRefused(refused)

    def _apply(self, dp: Dataplane, spec: DataplaneSpec) -> tuple[list[str], str | None]:
        errors = dp.apply(spec)
        return errors, (dp.filter_error if dp.use_nft else None)

    async def sync(self) -> str | None:
        """After an intent change: local plumbing (on the worker), then, when the tenants
        changed, every import decided again.  Returns why the filter could not be
        updated, or None."""
        spec = self.spec = build_spec(self.intent.node.locator, self.intent.tenants(), self.intent.endpoints(),
                                      self.settings)
        refused = None
        if self.dataplane is not None:
            self.errors, refused = await self.worker.run(self._apply, self.dataplane, spec)
        # Imports depend on the tenants (tables, route targets, peerings), not on the local
        # endpoints (a next hop in our own locator is never imported, SID or not): an
        # endpoint change does not re-decide a full table.
        key = tuple((t.name, t.table, t.route_target, t.effective_peers) for t in self.intent.tenants())
        if key != self._import_key:
            self._import_key = key
            self._pending.clear()  # the full replace below supersedes what was queued
            self.importer = self._new_importer()
            self.importer.update(self.vpn_destinations())
            if self.dataplane is not None:
                self.errors += await self.worker.run(self.dataplane.replace_remote, self.importer.routes())
        return refused

    async def watch_interfaces(self) -> bool:
        """Plumb endpoints whose interface appeared, re-plumb those whose interface was
        re-created; True if something was done."""
        dp = self.dataplane
        if dp is None or self.spec is None or not await self.worker.run(dp.interfaces_changed):
            return False
        self.errors = await self.worker.run(dp.refresh)
        return True

    def _reconcile(self, dp: Dataplane, spec: DataplaneSpec) -> list[str]:
        errors = dp.apply(spec)
        return errors + [str(e) for e in dp.fib.reconcile().errors]

    async def reconcile(self) -> None:
        """Level-triggered repair (someone deleted a rule, an address, a route...): the
        local objects are applied again and the routes re-read from the kernel."""
        if self.dataplane is not None and self.spec is not None:
            self.errors = await self.worker.run(self._reconcile, self.dataplane, self.spec)

    async def run_dataplane_loop(self) -> None:
        """Endpoints whose interface appears, vanishes or is re-created are (re)plumbed (every 1 s);
        every ``dataplane.reconcile-interval`` seconds the kernel is reconciled."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(1.0)
            try:
                if not await self.watch_interfaces() and loop.time() - last >= self.settings.reconcile_interval:
                    last = loop.time()
                    await self.reconcile()
            except Exception:  # the loop must survive; the error is logged with its traceback
                log.exception("dataplane reconcile failed")

    def rejected(self) -> list[dict[str, str]]:
        """VPN routes offered to the import decision and not imported, with the reason."""
        return [{"route": str(k), "reason": why} for k, why in sorted(self.importer.rejected.items(), key=str)]

    # ------------------------------------------------------------------ Loc-RIB consumer

    def rib_changed(self, family: Family, dests: Sequence[Destination]) -> None:
        """Imports are decided at once; the kernel is programmed in chunks by the worker."""
        routes = self.importer.update(dests)
        if not routes or self.dataplane is None:
            return
        for r in routes:
            self._pending[(r.table, r.prefix)] = r  # the latest state of a route wins
        self._kick()

    def rib_converged(self, rib: RibReader) -> None:
        """Stale tenant routes of a previous run go - once everything decided is in the
        kernel, or a route still queued would be deleted and added again (a flap)."""
        if self.dataplane is None:
            return
        self._converge = True
        self._kick()

    def _kick(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        dp = self.dataplane
        try:
            while dp is not None and (self._pending or self._converge):
                if self._pending:
                    batch = []
                    for key in list(self._pending)[: self.chunk]:
                        batch.append(self._pending.pop(key))
                    errors = await self.worker.run(dp.set_remote, batch)
                    self.errors = (self.errors + errors)[-50:]
                else:
                    self._converge = False
                    await self.worker.run(dp.converged)
        finally:
            self._drain_task = None

    async def drained(self) -> None:
        """Wait until everything decided is in the kernel."""
        while self._drain_task is not None:
            await asyncio.shield(self._drain_task)

    @property
    def pending(self) -> int:
        """Remote routes decided but not yet in the kernel."""
        return len(self._pending)

    async def clear(self) -> None:
        if self._drain_task is not None:
            self._drain_task.cancel()
        self._pending.clear()
        if self.dataplane is not None:
            await self.worker.run(self.dataplane.clear)

    # ------------------------------------------------------------------ views

    def table_of(self, vrf: str) -> int:
        return self.intent.tenant(vrf).table  # IntentError names the tenant

    def vrfs(self) -> list[dict[str, Any]]:
        counts: dict[int, int] = {}
        for t, _p in self.importer._vrf:
            counts[t] = counts.get(t, 0) + 1
        mode = None
        if self.dataplane is not None:
            mode = "vrf-device" if self.dataplane.vrf_devices else "ip-rule"
        out = []
        for tenant in self.intent.tenants():
            row = tenant.to_dict()
            row["imported_routes"] = counts.get(tenant.table, 0)
            row["mode"] = mode or "no dataplane"
            out.append(row)
        return out

    def _installed(self, table: int) -> list[dict[str, Any]]:
        assert self.dataplane is not None
        out = []
        for r in self.dataplane.fib.installed(table):
            hops = []
            for h in r.nexthops:
                hop: dict[str, Any] = {"gateway": h.gateway, "ifname": h.ifname or _ifname(h.ifindex)}
                if h.encap is not None:
                    hop["encap"] = {"mode": "encap.red" if h.encap.mode == 3 else "encap", "segs": list(h.encap.segs)}
                hops.append(hop)
            out.append({"table": r.table, "prefix": r.prefix, "kind": r.kind.name.lower(), "nexthops": hops})
        return out

    async def fib(self, vrf: str) -> list[dict[str, Any]]:
        table = self.table_of(vrf)
        if self.dataplane is None:
            return [{"table": r["table"], "prefix": r["prefix"], "kind": "seg6 (not installed: no dataplane)",
                     "sids": r["sids"]} for r in self.importer.view(table)]
        return await self.worker.run(self._installed, table)

    def _counters(self) -> dict[str, Any]:
        """Per endpoint, and the drops of interfaces l3fab does not know under ``nft.STRANGERS_KEY``."""
        if self.dataplane is None or not self.dataplane.use_nft:
            return {}
        try:
            return nft.counters(strangers=True)
        except Exception as e:  # a view must not fail on a missing tool: the error is shown instead
            return {"error": str(e)}

    def _rates(self, spec: DataplaneSpec | None) -> dict[str, Any]:
        if self.dataplane is None or not self.dataplane.use_tc or spec is None:
            return {}
        try:
            return tc.stats(spec.ports)
        except Exception as e:  # as above
            return {"error": str(e)}

    def _kernel_facts(self, spec: DataplaneSpec | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Counters, rate statistics and the backend summary, read on the worker."""
        summary = self.dataplane.summary() if self.dataplane is not None else {}
        return self._counters(), self._rates(spec), summary

    async def endpoints(self, tenant: str | None = None) -> list[dict[str, Any]]:
        rows = self.intent.endpoints(tenant)  # IntentError for an unknown tenant, before any kernel work
        spec = self.spec
        counters, rates, _ = await self.worker.run(self._kernel_facts, spec)
        ports = {p.name: p for p in (spec.ports if spec else ())}
        waiting = self.dataplane.waiting if self.dataplane is not None else {}
        out = []
        for e in rows:
            row = e.to_dict()
            port = ports.get(e.name)
            row["handle4"] = port.handle4 if port else None
            if self.dataplane is None:
                row["status"] = "no dataplane"
            else:
                row["status"] = f"waiting: {waiting[e.name]}" if e.name in waiting else "plumbed"
            row["counters"] = counters.get(e.name, {})
            row["rate"] = rates.get(e.name)
            out.append(row)
        return out

    async def summary(self) -> dict[str, Any]:
        spec = self.spec
        out: dict[str, Any] = {"vrfs": len(self.intent.tenants()), "endpoints": len(self.intent.endpoints()),
                               "imported_routes": len(self.importer._vrf), "pending_routes": len(self._pending),
                               "sid_refusals": self.importer.sid_refusals, "errors": self.errors[-10:]}
        if spec is not None:
            out["sids"] = [{"endpoint": p.name, "tenant": p.tenant, "sid4": p.sid4,
                            "action4": "End.DX4" if p.sid4 else None, "nh4": p.handle4, "sid6": p.sid6,
                            "action6": "End.DT6" if p.sid6 else None, "table": p.table, "interface": p.ifname}
                           for p in spec.ports]
        if self.dataplane is None:
            out["backend"] = "none"
            return out
        counters, rates, summary = await self.worker.run(self._kernel_facts, spec)
        out.update(summary)
        out["stranger_drops"] = (counters.pop(nft.STRANGERS_KEY, None) or {}).get(nft.STRANGERS)
        out["counters"] = counters
        out["rate_limits"] = rates
        return out


__all__ = ["TenantPlane", "Dataplane"]
