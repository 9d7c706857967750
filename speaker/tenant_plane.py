"""The host's tenant side, glued together: intent -> dataplane spec, VPN Loc-RIB ->
VRF imports -> remote routes, and the views behind ``show vrf|endpoints|dataplane``.

The dataplane may be absent (``dataplane.enabled: false``, or a node without a
FIB): imports are still computed, so ``show vrf`` and ``show fib --vrf`` say what
would be installed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable, Iterable

from l3fab.dataplane.intent import DataplaneSettings, build_spec

from .vrf_import import VrfImporter

log = logging.getLogger("l3fab.tenants")


def _ifname(index) -> str | None:
    try:
        return socket.if_indextoname(index) if index else None
    except OSError:
        return None


class TenantPlane:
    def __init__(self, intent, settings: DataplaneSettings, dataplane=None, maximum_paths: int = 64,
                 vpn_destinations: Callable[[], Iterable] = lambda: ()) -> None:
        self.intent = intent
        self.settings = settings
        self.dataplane = dataplane
        self.maximum_paths = maximum_paths
        self.vpn_destinations = vpn_destinations
        self.importer = self._new_importer()
        self._import_key: tuple | None = None
        self._pending: dict[tuple[int, str], object] = {}  # (table, prefix) -> RemoteRoute not yet programmed
        self._drain_handle = None
        self.chunk = 1000
        self._converge_when_drained = False
        self.spec = None
        self.errors: list[str] = []

    def _new_importer(self) -> VrfImporter:
        tables = {t.name: t.table for t in self.intent.tenants()}
        return VrfImporter(self.intent.import_policy(), tables, self.maximum_paths)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> bool:
        """Read the kernel; put the local part (from the store) in place at once."""
        had_state = self.dataplane.start() if self.dataplane is not None else False
        self.sync()
        return had_state

    def sync(self) -> None:
        """After an intent change: local plumbing, then every import decided again."""
        self.spec = build_spec(self.intent.node.locator, self.intent.tenants(), self.intent.endpoints(), self.settings)
        if self.dataplane is not None:
            self.errors = self.dataplane.apply(self.spec)
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
                self.errors += self.dataplane.replace_remote(self.importer.routes())

    def watch_interfaces(self) -> bool:
        """Plumb endpoints whose interface appeared, re-plumb those whose interface was
        re-created; True if something was done."""
        if self.dataplane is None or self.spec is None or not self.dataplane.interfaces_changed():
            return False
        self.errors = self.dataplane.refresh()
        return True

    def reconcile(self) -> None:
        """Level-triggered repair (someone deleted a rule, an address, a route...): the
        local objects are applied again and the routes re-read from the kernel."""
        if self.dataplane is not None and self.spec is not None:
            self.errors = self.dataplane.apply(self.spec)
            self.errors += [str(e) for e in self.dataplane.fib.reconcile().errors]

    def rejected(self) -> list[dict]:
        """VPN routes offered to the import decision and not imported, with the reason."""
        return [{"route": str(k), "reason": why} for k, why in sorted(self.importer.rejected.items(), key=str)]

    def on_changes(self, dests: list) -> None:
        """Imports are decided at once; the kernel is programmed in chunks from the event
        loop, so a large burst (seg6 routes install at a few thousand per second, slower in
        big tables) never starves keepalives past the hold time."""
        routes = self.importer.update(dests)
        if not routes or self.dataplane is None:
            return
        for r in routes:
            self._pending[(r.table, r.prefix)] = r  # the latest state of a route wins
        if self._drain_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (direct use): programme at once
                self._drain()
                return
            self._drain_handle = loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_handle = None
        batch = []
        while self._pending and len(batch) < self.chunk:
            key = next(iter(self._pending))
            batch.append(self._pending.pop(key))
        if batch:
            self.errors = (self.errors + self.dataplane.set_remote(batch))[-50:]
        if self._pending:
            try:
                self._drain_handle = asyncio.get_running_loop().call_soon(self._drain)
            except RuntimeError:
                self._drain()
        elif self._converge_when_drained:
            self._converge_when_drained = False
            self.dataplane.converged()

    @property
    def pending(self) -> int:
        """Remote routes decided but not yet in the kernel."""
        return len(self._pending)

    def converged(self) -> None:
        """Stale tenant routes of a previous run go - once everything decided is in the
        kernel, or a route still queued would be deleted and added again (a flap)."""
        if self.dataplane is None:
            return
        if self._pending:
            self._converge_when_drained = True
        else:
            self.dataplane.converged()

    def clear(self) -> None:
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        self._pending.clear()
        if self.dataplane is not None:
            self.dataplane.clear()

    # ------------------------------------------------------------------ views

    def table_of(self, vrf: str) -> int:
        return self.intent.tenant(vrf).table  # IntentError names the tenant

    def vrfs(self) -> list[dict]:
        counts: dict[int, int] = {}
        for t, _p in self.importer._vrf:
            counts[t] = counts.get(t, 0) + 1
        mode = None
        if self.dataplane is not None:
            mode = "vrf-device" if self.dataplane.vrf_devices else "ip-rule"
        out = []
        for t in self.intent.tenants():
            row = t.to_dict()
            row["imported_routes"] = counts.get(t.table, 0)
            row["mode"] = mode or "no dataplane"
            out.append(row)
        return out

    def fib(self, vrf: str) -> list[dict]:
        table = self.table_of(vrf)
        if self.dataplane is None:
            return [{"table": r["table"], "prefix": r["prefix"], "kind": "seg6 (not installed: no dataplane)",
                     "sids": r["sids"]} for r in self.importer.view(table)]
        out = []
        for r in self.dataplane.fib.installed(table):
            hops = []
            for h in r.nexthops:
                hop = {"gateway": h.gateway, "ifname": h.ifname or _ifname(h.ifindex)}
                if h.encap is not None:
                    hop["encap"] = {"mode": "encap.red" if h.encap.mode == 3 else "encap", "segs": list(h.encap.segs)}
                hops.append(hop)
            out.append({"table": r.table, "prefix": r.prefix, "kind": r.kind.name.lower(), "nexthops": hops})
        return out

    def _counters(self) -> dict:
        if self.dataplane is None or not self.dataplane.use_nft:
            return {}
        from l3fab.dataplane import nft

        try:
            return nft.counters()
        except Exception as e:  # noqa: BLE001 - a view must not fail on a missing tool
            return {"error": str(e)}

    def _rates(self) -> dict:
        if self.dataplane is None or not self.dataplane.use_tc or self.spec is None:
            return {}
        from l3fab.dataplane import tc

        try:
            return tc.stats(self.spec.ports)
        except Exception as e:  # noqa: BLE001
            return {"error": str(e)}

    def endpoints(self, tenant: str | None = None) -> list[dict]:
        counters = self._counters()
        rates = self._rates()
        ports = {p.name: p for p in (self.spec.ports if self.spec else ())}
        waiting = self.dataplane.waiting if self.dataplane is not None else {}
        out = []
        for e in self.intent.endpoints(tenant):
            row = e.to_dict()
            port = ports.get(e.name)
            row["handle4"] = port.handle4 if port else None
            if self.dataplane is None:
                row["status"] = "no dataplane"
            else:
                row["status"] = f"waiting: {waiting[e.name]}" if e.name in waiting else "plumbed"
            row["counters"] = counters.get(e.name, {}) if isinstance(counters, dict) else {}
            row["rate"] = rates.get(e.name) if isinstance(rates, dict) else None
            out.append(row)
        return out

    def summary(self) -> dict:
        out = {"vrfs": len(self.intent.tenants()), "endpoints": len(self.intent.endpoints()),
               "imported_routes": len(self.importer._vrf), "pending_routes": len(self._pending),
               "errors": self.errors[-10:]}
        if self.spec is not None:
            out["sids"] = [{"endpoint": p.name, "tenant": p.tenant, "sid4": p.sid4, "action4": "End.DX4" if p.sid4 else None,
                            "nh4": p.handle4, "sid6": p.sid6, "action6": "End.DT6" if p.sid6 else None,
                            "table": p.table, "interface": p.ifname} for p in self.spec.ports]
        if self.dataplane is None:
            out["backend"] = "none"
            return out
        out.update(self.dataplane.summary())
        out["counters"] = self._counters()
        out["rate_limits"] = self._rates()
        return out
