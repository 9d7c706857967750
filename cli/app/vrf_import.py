"""From VPN Loc-RIB best paths to tenant VRF routes (the host-import policy).

Each VPN destination (RD + prefix) whose best path is valid is offered to the
tenancy import decision (:class:`tenancy.importing.ImportPolicy`): by route
target into the tenant(s) that import it, never into the default table, and
never when its next hop lies in this host's own locator.  A VRF route's SIDs are
the next hops of the destination's multipath set; two RDs with the same prefix
in one VRF (the same address announced by two hosts) become one ECMP route over
both SIDs.

Sans-IO: :meth:`update` takes changed destinations and returns the VRF routes
that changed, as :class:`dataplane.model.RemoteRoute` (no SIDs = remove).
"""
from __future__ import annotations

from typing import Any, Iterable, cast

from l3fab.dataplane.model import RemoteRoute
from l3fab.speaker.table.path import Path
from l3fab.speaker.table.rib import Destination
from l3fab.speaker.wire.attributes import ExtendedCommunities
from l3fab.speaker.wire.nlri import VpnPrefix
from l3fab.speaker.wire.rd import RouteDistinguisher

from l3fab.tenancy.importing import ImportPolicy


class VrfImporter:
    def __init__(self, policy: ImportPolicy, tables: dict[str, int], maximum_paths: int = 64) -> None:
        self.policy = policy
        self.tables = dict(tables)  # tenant name -> kernel table
        self.maximum_paths = maximum_paths
        # VPN destination key -> (tables, sids) it contributes
        self._placed: dict[VpnPrefix, tuple[tuple[int, ...], tuple[str, ...]]] = {}
        # (table, prefix) -> {dest key: sids}
        self._vrf: dict[tuple[int, str], dict[VpnPrefix, tuple[str, ...]]] = {}
        # (extended communities, rd, next hop) -> (tables, reason)
        self._decisions: dict[tuple[ExtendedCommunities | None, RouteDistinguisher, str | None],
                              tuple[tuple[int, ...], str]] = {}
        self.rejected: dict[VpnPrefix, str] = {}  # dest key -> reason (routes offered but not imported), bounded
        self.imported = 0

    def _decide(self, path: Path, rd: RouteDistinguisher) -> tuple[tuple[int, ...], str]:
        """(kernel tables, reason) for one path of a VPN destination with route distinguisher ``rd``."""
        ext = path.get(ExtendedCommunities)
        ck = (ext, rd, path.next_hop.address if path.next_hop else None)
        hit = self._decisions.get(ck)
        if hit is None:
            rts = ext.route_targets() if ext is not None else ()
            d = self.policy.decide(rts, rd, ck[2] or "")
            hit = (tuple(self.tables[v] for v in d.vrfs if v in self.tables), d.reason)
            if len(self._decisions) > 100_000:
                self._decisions.clear()
            self._decisions[ck] = hit
        return hit

    def update(self, dests: Iterable[Destination]) -> list[RemoteRoute]:
        changed: set[tuple[int, str]] = set()
        for d in dests:
            key = cast(VpnPrefix, d.key)  # a VPN destination: (rd, prefix), no labels
            best = d.best
            want: tuple[tuple[int, ...], tuple[str, ...]] | None = None
            if best is not None and best.next_hop is not None:
                tables, reason = self._decide(best, key.rd)
                if tables:
                    sids = sorted({p.next_hop.address for p in (d.multipath or (best,))
                                   if p.next_hop is not None and self._decide(p, key.rd)[0] == tables})
                    want = (tables, tuple(sids[: self.maximum_paths]))
                    self.rejected.pop(key, None)
                elif len(self.rejected) < 10_000:
                    self.rejected[key] = reason
            old = self._placed.get(key)
            if old == want:
                continue
            prefix = str(key.prefix)
            if old is not None:
                for t in old[0]:
                    slot = self._vrf.get((t, prefix))
                    if slot is not None:
                        slot.pop(key, None)
                        if not slot:
                            del self._vrf[(t, prefix)]
                        changed.add((t, prefix))
            if want is None:
                self._placed.pop(key, None)
            else:
                self._placed[key] = want
                for t in want[0]:
                    self._vrf.setdefault((t, prefix), {})[key] = want[1]
                    changed.add((t, prefix))
        self.imported = len(self._placed)
        return [self.route(t, p) for t, p in changed]

    def route(self, table: int, prefix: str) -> RemoteRoute:
        slot = self._vrf.get((table, prefix))
        if not slot:
            return RemoteRoute(table, prefix, ())
        sids = sorted({s for v in slot.values() for s in v})
        return RemoteRoute(table, prefix, tuple(sids[: self.maximum_paths]))

    def routes(self) -> list[RemoteRoute]:
        return [self.route(t, p) for t, p in self._vrf]

    def view(self, table: int | None = None) -> list[dict[str, Any]]:
        out = []
        for (t, prefix), slot in sorted(self._vrf.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            if table is not None and t != table:
                continue
            out.append({"table": t, "prefix": prefix, "sids": sorted({s for v in slot.values() for s in v}),
                        "from": sorted(str(k) for k in slot)})
        return out
