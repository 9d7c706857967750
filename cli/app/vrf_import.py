"""From VPN Loc-RIB best paths to tenant VRF routes (the host-import policy).

Each VPN destination (RD + prefix) whose best path is valid is offered to the
tenancy import decision (:class:`tenancy.importing.ImportPolicy`): by route
target into the tenant(s) that import it, never into the default table, and
never when its next hop lies in this host's own locator.  A VRF route's SIDs are
the next hops of the destination's multipath set; two RDs with the same prefix
in one VRF (the same address announced by two hosts) become one ECMP route over
both SIDs.  A multipath member whose next hop cannot be a SID (link-local, IPv4,
multicast, outside the fabric's SID space...: ``ImportDecision.sid_refused``) is
left out of the set, even when it is the best path: the others carry the route
instead of every other flow being black-holed.  Each refusal is counted
(:attr:`VrfImporter.sid_refusals`), logged once per next hop, and listed with its
reason in :attr:`VrfImporter.rejected` (``show vrf --rejected``).

Sans-IO: :meth:`update` takes changed destinations and returns the VRF routes
that changed, as :class:`dataplane.model.RemoteRoute` (no SIDs = remove).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, cast

from l3fab.dataplane.model import RemoteRoute
from l3fab.speaker.table.path import Path
from l3fab.speaker.table.rib import Destination
from l3fab.speaker.wire.attributes import ExtendedCommunities
from l3fab.speaker.wire.nlri import VpnPrefix
from l3fab.speaker.wire.rd import RouteDistinguisher

from l3fab.tenancy.importing import ImportPolicy

log = logging.getLogger("l3fab.tenants")
MAX_REJECTED = 10_000  # destinations listed in rejected
MAX_LOGGED = 1_000  # refused next hops logged (once each)
Decision = tuple[tuple[int, ...], str, bool]  # (kernel tables, reason, next hop refused as a SID)
DecisionKey = tuple[ExtendedCommunities | None, RouteDistinguisher, str | None]  # (ext communities, rd, next hop)

class VrfImporter:
    def __init__(self, policy: ImportPolicy, tables: dict[str, int], maximum_paths: int = 64) -> None:
        self.policy = policy
        self.tables = dict(tables)  # tenant name -> kernel table
        self.maximum_paths = maximum_paths
        # VPN destination key -> (tables, sids) it contributes
        self._placed: dict[VpnPrefix, tuple[tuple[int, ...], tuple[str, ...]]] = {}
        # (table, prefix) -> {dest key: sids}
        self._vrf: dict[tuple[int, str], dict[VpnPrefix, tuple[str, ...]]] = {}
        # (extended communities, rd, next hop) -> (tables, reason, refused as a SID)
        # Entries are held by the destinations whose paths use them (reference counts) and
        # dropped with the last one: a withdrawn route leaves no decision behind (issue 10,
        # finding 20: every endpoint add/remove left one per SID).
        self._decisions: dict[DecisionKey, Decision] = {}
        self._refs: dict[DecisionKey, int] = {}
        self._uses: dict[VpnPrefix, tuple[DecisionKey, ...]] = {}  # dest key -> decisions it holds
        # dest key -> reason: routes offered but not imported, or imported without a refused
        # multipath member; bounded (MAX_REJECTED)
        self.rejected: dict[VpnPrefix, str] = {}
        self.imported = 0
        self.sid_refusals = 0  # paths left out because their next hop cannot be a SID
        self._logged: set[str] = set()

    def _decide(self, path: Path, rd: RouteDistinguisher, used: list[DecisionKey]) -> Decision:
        """(kernel tables, reason, next hop refused as a SID) for one path of a VPN destination
        with route distinguisher ``rd``; the decision's key is appended to ``used``."""
        ext = path.get(ExtendedCommunities)
        ck = (ext, rd, path.next_hop.address if path.next_hop else None)
        used.append(ck)
        hit = self._decisions.get(ck)
        if hit is None:
            rts = ext.route_targets() if ext is not None else ()
            d = self.policy.decide(rts, rd, ck[2] or "")
            hit = (tuple(self.tables[v] for v in d.vrfs if v in self.tables), d.reason, d.sid_refused)
            self._decisions[ck] = hit
        return hit

    def _hold(self, key: VpnPrefix, used: tuple[DecisionKey, ...]) -> None:
        """``key`` now holds the decisions ``used``; those no destination holds any more go."""
        refs = self._refs
        for ck in used:
            refs[ck] = refs.get(ck, 0) + 1
        for ck in self._uses.pop(key, ()):
            n = refs.get(ck, 0) - 1
            if n > 0:
                refs[ck] = n
            else:
                refs.pop(ck, None)
                self._decisions.pop(ck, None)
        if used:
            self._uses[key] = used

    def _refused(self, key: VpnPrefix, next_hop: str, reason: str) -> None:
        self.sid_refusals += 1
        if next_hop not in self._logged and len(self._logged) < MAX_LOGGED:
            self._logged.add(next_hop)
            log.warning("VPN route %s: %s: not used", key, reason)

    def _note(self, key: VpnPrefix, reason: str | None) -> None:
        """Record (or, with None, clear) why ``key`` is not imported, or not over every path."""
        if reason is None:
            self.rejected.pop(key, None)
        elif key in self.rejected or len(self.rejected) < MAX_REJECTED:
            self.rejected[key] = reason

    def _wanted(self, key: VpnPrefix, best: Path, multipath: tuple[Path, ...], used: list[DecisionKey]
                ) -> tuple[tuple[int, ...], tuple[str, ...]] | None:
        """(kernel tables, SIDs) for a destination, or None; notes what was refused, and why.

        The best path decides the tables; when its next hop cannot be a SID, the first
        multipath member whose next hop can takes its place.  Members that agree on the
        tables give the SIDs; those with a refused next hop are left out."""
        tables: tuple[int, ...] | None = None
        reason = ""
        sids: set[str] = set()
        refused: list[str] = []
        for p in (best,) + tuple(p for p in multipath if p is not best):
            if p.next_hop is None:
                continue
            nh = p.next_hop.address
            t, why, bad = self._decide(p, key.rd, used)
            if bad:
                self._refused(key, nh, why)
                refused.append(why)
                continue
            if tables is None:
                tables, reason = t, why
            if t and t == tables:
                sids.add(nh)
        if tables:
            note = None
            if refused:
                note = f"{'; '.join(refused)}: left out of the ECMP set (imported over {', '.join(sorted(sids))})"
            self._note(key, note)
            return tables, tuple(sorted(sids)[: self.maximum_paths])
        self._note(key, reason if tables is not None else "; ".join(refused) or "no next hop")
        return None

    def update(self, dests: Iterable[Destination]) -> list[RemoteRoute]:
        changed: set[tuple[int, str]] = set()
        for d in dests:
            key = cast(VpnPrefix, d.key)  # a VPN destination: (rd, prefix), no labels
            best = d.best
            want: tuple[tuple[int, ...], tuple[str, ...]] | None = None
            used: list[DecisionKey] = []
            if best is None:
                self.rejected.pop(key, None)  # gone: nothing to explain any more
            else:
                want = self._wanted(key, best, d.multipath, used)
            self._hold(key, tuple(used))
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
