"""The RIB manager: every table decision of the speaker, sans-IO.

Like the session FSM, it is a pure object.  The daemon feeds it events (an UPDATE
from a peer, a session up or down, End-of-RIB, a route refresh request, a timer
expiry, routes this node originates, the connected prefixes of the host) and
executes what it returns as a :class:`RibOutput`: bytes to send to a peer, a
stale timer to start or cancel, a session to close for max-prefix.  It owns, per
peer, the Adj-RIB-In (before and after import policy) and the Adj-RIB-Out, and per
family the Loc-RIB with its next-hop tracking.

Work is batched: events only mark destinations dirty.  :meth:`RibManager.process`
runs the decision process once for the burst, ripples next-hop changes, stages
the results towards every established peer, and returns the changed destinations
for Loc-RIB consumers.  :meth:`RibManager.drain` packs what is staged into
UPDATEs; the daemon calls it at once, or after the MRAI.
"""
from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ..policy import EvalContext, NextHopDirective, Policy
from ..session.negotiated import Negotiated
from ..wire.attributes import LocalPref
from ..wire.constants import IPV4_UNICAST, IPV6_UNICAST, SUPPORTED_FAMILIES, CeaseSubcode, ErrorCode, Family
from ..wire.notification import Notification
from ..wire.route_refresh import SUBTYPE_BORR, SUBTYPE_EORR, SUBTYPE_REQUEST, RouteRefresh
from ..wire.update import Update
from .adj_rib_in import AdjRibIn, AttributeInterner, update_paths
from .adj_rib_out import AdjRibOut
from .decision import DecisionConfig
from .export import ExportContext, export_path
from .nexthop import NexthopTracker
from .path import LOCAL, Key, Path, Source
from .rib import Destination, LocRib

log = logging.getLogger("l3fab.rib")
UNICAST = (IPV4_UNICAST, IPV6_UNICAST)
RIPPLE_ROUNDS = 8  # next-hop changes can ripple; they settle within a few rounds


@dataclass(frozen=True)
class MaxPrefix:
    """Per-family limit on accepted routes: Cease 6/1 above ``limit`` (RFC 4486),
    a warning at ``warning`` percent, a new session after ``restart`` seconds (0: never)."""

    limit: int
    warning: int = 75
    restart: float = 30.0


@dataclass(frozen=True)
class PeerTableConfig:
    """What the table layer needs to know about one neighbour."""

    name: str
    import_policy: Policy | None = None
    export_policy: Policy | None = None
    allowas_in: int = 0
    max_prefix: MaxPrefix | None = None
    keep_pre_policy: bool = False
    graceful_restart: bool = True  # RFC 4724 helper mode for this neighbour


@dataclass(frozen=True)
class RibSettings:
    local_as: int
    router_id: str
    cluster_id: str | None = None
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    restart_time: int = 120  # when the peer's capability gives none


@dataclass(frozen=True)
class StaleTimer:
    """Start (``seconds`` set) or cancel (``seconds`` None) a peer's RFC 4724 restart timer;
    on expiry the daemon calls :meth:`RibManager.stale_expired`."""

    peer: str
    seconds: float | None


@dataclass(frozen=True)
class Shutdown:
    """Close the session with ``notification`` and stay down for ``restart_after`` seconds."""

    peer: str
    notification: Notification
    restart_after: float


@dataclass
class RibOutput:
    """What the daemon must do after an event."""

    send: dict[str, list[bytes]] = field(default_factory=dict)
    timers: list[StaleTimer] = field(default_factory=list)
    shutdowns: list[Shutdown] = field(default_factory=list)
    dirty: bool = False  # destinations changed: call process() (soon)

    def add_send(self, peer: str, chunks: list[bytes]) -> None:
        if chunks:
            self.send.setdefault(peer, []).extend(chunks)


@dataclass
class PeerRib:
    """The table state of one neighbour."""

    cfg: PeerTableConfig
    rib_in: AdjRibIn = field(default_factory=AdjRibIn)
    rib_in_pre: AdjRibIn | None = None
    rib_out: AdjRibOut = field(default_factory=AdjRibOut)
    source: Source | None = None
    negotiated: Negotiated | None = None  # set while Established
    export_ctx: ExportContext | None = None
    eor_received: set[Family] = field(default_factory=set)
    max_prefix_warned: set[Family] = field(default_factory=set)
    stale_timer: bool = False
    # family name -> routes (announced or withdrawn) ignored because the session did not
    # negotiate the family (RFC 4760 section 7); kept across sessions
    ignored_families: dict[str, int] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.negotiated is not None

    def stale_count(self) -> int:
        return sum(1 for t in self.rib_in.tables.values() for p in t.values() if p.stale)


def _without_local_pref(paths: list[Path], intern: AttributeInterner) -> list[Path]:
    """RFC 4271 5.1.5: LOCAL_PREF received from an external peer is ignored (dropped here,
    once per attribute set: all paths of one UPDATE share it)."""
    attrs = intern(tuple(a for a in paths[0].attributes if type(a) is not LocalPref))
    return [p._replace(attributes=attrs) for p in paths]


class RibManager:
    def __init__(self, settings: RibSettings, peers: Iterable[PeerTableConfig] = ()) -> None:
        self.settings = settings
        self.nexthops = NexthopTracker()
        self.ribs: dict[Family, LocRib] = {f: LocRib(f, settings.decision, self.nexthops.valid)
                                           for f in SUPPORTED_FAMILIES}
        self.intern = AttributeInterner()
        self.eval_ctx = EvalContext(local_as=settings.local_as)
        self.peers: dict[str, PeerRib] = {}
        self._origin_groups: dict[str, dict[tuple[Family, Key], Path]] = {}
        for p in peers:
            self.add_peer(p)

    def add_peer(self, cfg: PeerTableConfig) -> PeerRib:
        if cfg.name in self.peers or cfg.name == LOCAL.name:
            raise ValueError(f"neighbor: {cfg.name!r} is already a table source")
        pr = PeerRib(cfg, rib_in_pre=AdjRibIn() if cfg.keep_pre_policy else None)
        self.peers[cfg.name] = pr
        return pr

    # ------------------------------------------------------------------ sessions

    def peer_up(self, name: str, neg: Negotiated, source: Source, ctx: ExportContext) -> RibOutput:
        """Established: the whole table goes out at once, then End-of-RIB per family."""
        pr = self.peers[name]
        pr.negotiated, pr.source, pr.export_ctx = neg, source, ctx
        pr.eor_received = set()
        pr.max_prefix_warned = set()
        pr.rib_out.clear()
        out = RibOutput()
        if pr.stale_timer:
            self._sweep_unpreserved(pr, neg, out)
        for fam in neg.families:
            self._export_all(pr, fam)
        chunks = pr.rib_out.flush(neg.codec)
        chunks += [pr.rib_out.end_of_rib(f, neg.codec) for f in sorted(neg.families)]
        out.add_send(name, chunks)
        return out

    def peer_down(self, name: str, keep_families: Iterable[Family] = (), restart_time: int | None = None) -> RibOutput:
        """The session ended.  ``keep_families``: the families the peer's last graceful
        restart capability listed, when helper mode applies (RFC 4724: no NOTIFICATION,
        our link to it still up): their routes stay, marked stale, until End-of-RIB or
        the restart timer; every other route of the peer goes at once.  ``restart_time``:
        the peer's advertised Restart Time (0 keeps nothing: the routes go at once)."""
        pr = self.peers[name]
        pr.negotiated = pr.export_ctx = None
        pr.rib_out.clear()
        seconds = restart_time if restart_time is not None else self.settings.restart_time
        keep = set(keep_families) if pr.cfg.graceful_restart and seconds > 0 else set()
        families = set(pr.rib_in.tables) | (set(pr.rib_in_pre.tables) if pr.rib_in_pre is not None else set())
        for fam in families:
            if fam in keep:
                self._mark_stale(pr, fam)
            else:
                self._drop_family(pr, fam)
        self._collect_attributes()
        out = RibOutput(dirty=True)
        if keep:
            pr.stale_timer = True
            out.timers.append(StaleTimer(name, seconds))
            log.info("%s: graceful restart: keeping %s as stale for up to %ss", name,
                     ", ".join(sorted(f.name for f in keep)), seconds)
        return out

    def _sweep_unpreserved(self, pr: PeerRib, neg: Negotiated, out: RibOutput) -> None:
        """RFC 4724 section 4.2: the peer is back.  Without the graceful restart capability in
        its new OPEN, every stale route goes at once; with it, the stale routes of each family
        the capability does not list with the Forwarding State (F) bit go at once (and so do
        those of a family the new session did not negotiate: no End-of-RIB will come for it).
        The rest wait for End-of-RIB or the restart timer, as before."""
        gr = neg.peer_graceful_restart
        kept = {f for f, forwarding in gr.families if forwarding} & neg.families if gr is not None else set()
        families = set(pr.rib_in.tables) | (set(pr.rib_in_pre.tables) if pr.rib_in_pre is not None else set())
        swept: dict[str, int] = {}
        for fam in sorted(families - kept):
            n = self._sweep_stale(pr, fam)
            if n:
                swept[fam.name] = n
        if swept:
            out.dirty = True
            why = "no graceful restart capability" if gr is None else "forwarding state not preserved"
            log.info("%s: back with %s: stale routes removed at once (%s)", pr.cfg.name, why,
                     ", ".join(f"{f} {n}" for f, n in swept.items()))
        if pr.stale_count() == 0:
            pr.stale_timer = False
            out.timers.append(StaleTimer(pr.cfg.name, None))

    def _mark_stale(self, pr: PeerRib, fam: Family) -> None:
        rib = self.ribs[fam]
        table = pr.rib_in.tables.get(fam, {})
        for slot, p in list(table.items()):
            sp = p._replace(stale=True)
            table[slot] = sp
            rib.add(sp)
        if pr.rib_in_pre is not None:
            pre = pr.rib_in_pre.tables.get(fam, {})
            for slot, p in list(pre.items()):
                pre[slot] = p._replace(stale=True)

    def _drop_family(self, pr: PeerRib, fam: Family) -> None:
        rib = self.ribs[fam]
        name = pr.cfg.name
        table = pr.rib_in.tables.get(fam, {})
        for p in table.values():
            rib.remove(name, p.key, p.path_id)
            if p.next_hop is not None:
                self.nexthops.forget(p.next_hop.address, fam, p.key)
        self.intern.dropped(len(table) + (pr.rib_in_pre.count(fam) if pr.rib_in_pre is not None else 0))
        pr.rib_in.clear(fam)
        if pr.rib_in_pre is not None:
            pr.rib_in_pre.clear(fam)

    def _sweep_stale(self, pr: PeerRib, fam: Family) -> int:
        rib = self.ribs[fam]
        table = pr.rib_in.tables.get(fam, {})
        stale = [(k, p) for k, p in table.items() if p.stale]
        for slot, p in stale:
            del table[slot]
            rib.remove(pr.cfg.name, p.key, p.path_id)
            if p.next_hop is not None:
                self.nexthops.forget(p.next_hop.address, fam, p.key)
        dropped = len(stale)
        if pr.rib_in_pre is not None:
            pre = pr.rib_in_pre.tables.get(fam, {})
            pre_stale = [k for k, p in pre.items() if p.stale]
            for slot in pre_stale:
                del pre[slot]
            dropped += len(pre_stale)
        self.intern.dropped(dropped)
        return len(stale)

    def stale_expired(self, name: str) -> RibOutput:
        """The restart timer ran out: the peer's stale routes go."""
        pr = self.peers[name]
        pr.stale_timer = False
        families = set(pr.rib_in.tables) | (set(pr.rib_in_pre.tables) if pr.rib_in_pre is not None else set())
        n = sum(self._sweep_stale(pr, f) for f in sorted(families))
        if n:
            log.warning("%s: restart timer expired, %d stale routes removed", name, n)
        self._collect_attributes()
        return RibOutput(dirty=n > 0)

    def _collect_attributes(self) -> None:
        """Let the attribute interner forget the sets no route uses, when that is due (a
        check per UPDATE; the walk over the live routes is amortised, see AttributeInterner)."""
        intern = self.intern
        if intern.due():
            intern.collect(t for pr in self.peers.values()
                           for rib in (pr.rib_in, pr.rib_in_pre) if rib is not None
                           for t in rib.tables.values())

    # ------------------------------------------------------------------ UPDATEs

    def update_received(self, name: str, update: Update) -> RibOutput:
        """RFC 4271 9.1: Adj-RIB-In after loop checks and import policy, then Loc-RIB.
        Routes of families the session did not negotiate are ignored (RFC 4760 7)."""
        pr = self.peers[name]
        neg = pr.negotiated
        if neg is None or pr.source is None:
            return RibOutput()
        eor = update.end_of_rib()
        families = neg.families
        if eor is not None:
            return self._end_of_rib(pr, eor) if eor in families else RibOutput()
        source = pr.source
        policy = pr.cfg.import_policy
        settings = self.settings
        local_as = settings.local_as
        allow = pr.cfg.allowas_in
        rid = settings.router_id
        cluster = settings.cluster_id or rid
        rib_in = pr.rib_in
        pre = pr.rib_in_pre
        ribs = self.ribs
        announced, withdrawn = update_paths(update, source, self.intern)
        if announced and not source.ibgp:
            sample = next((ps[0] for _, ps in announced if ps), None)
            if sample is not None and sample.get(LocalPref) is not None:
                announced = [(f, _without_local_pref(ps, self.intern)) for f, ps in announced if ps]
        for family, paths in announced:
            if family not in families:
                self._ignore(pr, family, len(paths))
                continue
            rib = ribs[family]
            if pre is not None:
                pre.put_many(family, paths)
            # Loop prevention depends on the attributes only, which every path of one
            # UPDATE shares: own AS (allowas-in), ORIGINATOR_ID and CLUSTER_LIST (RFC 4456).
            first = paths[0]
            looped = (first.as_path.asns().count(local_as) > allow or
                      (source.ibgp and (first.originator_id == rid or cluster in first.cluster_list)))
            if not looped and policy is None:
                rib_in.put_many(family, paths)
                rib.add_many(paths)
                continue
            for path in paths:
                accepted = None if looped else path
                if accepted is not None and policy is not None:
                    res = policy.evaluate(path, self.eval_ctx)
                    accepted = res.path if res.accepted else None
                if accepted is None:
                    if rib_in.pop(family, path.key, path.path_id) is not None:
                        rib.remove(name, path.key, path.path_id)
                    continue
                rib_in.put(accepted)
                rib.add(accepted)
        for family, key, path_id in withdrawn:
            if family not in families:
                self._ignore(pr, family, 1)
                continue
            if pre is not None:
                pre.pop(family, key, path_id)
            old = rib_in.pop(family, key, path_id)
            if old is not None:
                ribs[family].remove(name, key, path_id)
                if old.next_hop is not None:
                    self.nexthops.forget(old.next_hop.address, family, key)
        out = RibOutput(dirty=True)
        self._check_max_prefix(pr, out)
        if withdrawn:
            self.intern.dropped(len(withdrawn))
        self._collect_attributes()
        return out

    @staticmethod
    def _ignore(pr: PeerRib, family: Family, n: int) -> None:
        """Routes of a family the session did not negotiate: counted, never stored."""
        counts = pr.ignored_families
        if family.name not in counts:
            log.warning("%s: ignoring %s routes: the family was not negotiated", pr.cfg.name, family.name)
        counts[family.name] = counts.get(family.name, 0) + n

    def _end_of_rib(self, pr: PeerRib, fam: Family) -> RibOutput:
        pr.eor_received.add(fam)
        out = RibOutput()
        n = self._sweep_stale(pr, fam)
        if n:
            log.info("%s: End-of-RIB for %s, %d stale routes removed", pr.cfg.name, fam.name, n)
            out.dirty = True
            self._collect_attributes()
        if pr.stale_timer and pr.stale_count() == 0:
            pr.stale_timer = False
            out.timers.append(StaleTimer(pr.cfg.name, None))
        return out

    def _check_max_prefix(self, pr: PeerRib, out: RibOutput) -> None:
        mp = pr.cfg.max_prefix
        if mp is None:
            return
        name = pr.cfg.name
        for fam, table in pr.rib_in.tables.items():
            n = len(table)
            if n > mp.limit:
                log.error("%s: %d %s routes exceed maximum-prefix %d: closing the session", name, n,
                          fam.name, mp.limit)
                data = struct.pack("!HBI", fam.afi, fam.safi, mp.limit)  # RFC 4486 section 4
                out.shutdowns.append(Shutdown(name, Notification(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES, data),
                                              mp.restart))
                return
            if n * 100 >= mp.limit * mp.warning and fam not in pr.max_prefix_warned:
                pr.max_prefix_warned.add(fam)
                log.warning("%s: %d %s routes reached %d%% of maximum-prefix %d", name, n, fam.name,
                            mp.warning, mp.limit)

    def route_refresh(self, name: str, rr: RouteRefresh) -> RibOutput:
        """RFC 2918 / RFC 7313: send the family again (between BoRR and EoRR when enhanced)."""
        pr = self.peers[name]
        neg = pr.negotiated
        out = RibOutput()
        if neg is None or rr.subtype != SUBTYPE_REQUEST or rr.family not in neg.families:
            return out
        log.info("%s: route refresh for %s", name, rr.family.name)
        chunks = []
        if neg.enhanced_route_refresh:
            chunks.append(RouteRefresh(rr.family, SUBTYPE_BORR).encode())
        pr.rib_out.restage_all([rr.family])
        chunks += pr.rib_out.flush(neg.codec)
        chunks.append(RouteRefresh(rr.family, SUBTYPE_EORR).encode() if neg.enhanced_route_refresh
                      else pr.rib_out.end_of_rib(rr.family, neg.codec))
        out.add_send(name, chunks)
        return out

    # ------------------------------------------------------------------ origination

    def originate(self, paths: Iterable[Path]) -> int:
        """Add (or replace) locally originated paths (source ``local``)."""
        n = 0
        for p in paths:
            self.ribs[p.family].add(p)
            n += 1
        return n

    def withdraw_local(self, keys: Iterable[tuple[Family, Key]]) -> int:
        """Remove locally originated paths; returns how many existed."""
        n = 0
        for family, key in keys:
            d = self.ribs[family].dests.get(key)
            if d is not None and d.find(LOCAL.name) is not None:
                self.ribs[family].remove(LOCAL.name, key)
                n += 1
        return n

    def set_origin_group(self, group: str, paths: Iterable[Path]) -> int:
        """Make the paths a named producer (the tenant intent) originates exactly ``paths``:
        new or changed ones are added, the ones it no longer lists withdrawn.  The work is
        proportional to the group, and unchanged paths do not touch the table."""
        wanted = {(p.family, p.key): p for p in paths}
        old = self._origin_groups.get(group, {})
        gone = [k for k in old if k not in wanted]
        self.withdraw_local(gone)
        changed = [p for k, p in wanted.items() if old.get(k) != p]
        self.originate(changed)
        self._origin_groups[group] = wanted
        return len(changed) + len(gone)

    # ------------------------------------------------------------------ underlay facts

    def set_connected(self, prefixes: set[tuple[int, int, int]]) -> bool:
        """The host's connected prefixes ((version, network, length)); True when a next
        hop's reachability changed (call :meth:`process`)."""
        changed = self.nexthops.set_connected(prefixes)
        if not changed:
            return False
        dependents = self.nexthops.dependents
        for nh in changed:
            for fam, key in dependents.get(nh, ()):
                self.ribs[fam].touch((key,))
        return True

    # ------------------------------------------------------------------ decision and export

    def process(self, limit: int | None = None) -> list[tuple[Family, list[Destination]]]:
        """Run the decision for what is dirty (at most ``limit`` destinations per family in
        this call, next-hop ripple rounds included: :meth:`dirty` says whether work is
        left), ripple next-hop changes, stage the new best paths towards every established
        peer; return the changed destinations per family (for Loc-RIB consumers)."""
        changed: list[tuple[Family, list[Destination]]] = []
        nexthops = self.nexthops
        budget: dict[Family, int] = {}
        for _ in range(RIPPLE_ROUNDS):
            underlay = False
            for fam, rib in self.ribs.items():
                if not rib.dirty:
                    continue
                left = None
                if limit is not None:
                    left = budget.get(fam, limit)
                    if left <= 0:
                        continue
                    before = len(rib.dirty)
                ds = rib.process(left)
                if left is not None:
                    budget[fam] = left - (before - len(rib.dirty))
                if not ds:
                    continue
                changed.append((fam, ds))
                if fam in UNICAST:
                    moved = [(d.key, d.best is not None) for d in ds if (d.old_best is None) != (d.best is None)]
                    if moved:
                        nexthops.underlay_changes(fam, moved)
                        underlay = True
            if not underlay:
                break
            for fam, keys in nexthops.recheck().items():
                self.ribs[fam].touch(keys)
        if not changed:
            return changed
        for pr in self.peers.values():
            ctx = pr.export_ctx
            if ctx is None:
                continue
            fams = ctx.families
            stage = pr.rib_out.stage
            for fam, ds in changed:
                if fam in fams:
                    for d in ds:
                        stage(fam, d.key, self._export(pr, d.best))
        return changed

    def dirty(self) -> bool:
        """Destinations wait for a decision run."""
        return any(r.dirty for r in self.ribs.values())

    def pending_out(self) -> bool:
        return any(pr.rib_out.pending() for pr in self.peers.values() if pr.negotiated is not None)

    def drain(self) -> dict[str, list[bytes]]:
        """Pack what is staged for every established peer into UPDATEs."""
        out: dict[str, list[bytes]] = {}
        for name, pr in self.peers.items():
            neg = pr.negotiated
            if neg is not None and pr.rib_out.pending():
                out[name] = pr.rib_out.flush(neg.codec)
        return out

    def _export(self, pr: PeerRib, best: Path | None) -> Path | None:
        ctx = pr.export_ctx
        if best is None or ctx is None:
            return None
        out = export_path(best, ctx)
        policy = pr.cfg.export_policy
        if out is not None and policy is not None:
            res = policy.evaluate(out, self.eval_ctx)
            if not res.accepted:
                return None
            out = res.path
            if res.next_hop is not None:
                nh = ctx.self_next_hop if res.next_hop is NextHopDirective.SELF else best.next_hop
                if nh is None:
                    return None
                out = out._replace(next_hop=nh)
        return out

    def _export_all(self, pr: PeerRib, fam: Family) -> None:
        for d in self.ribs[fam].best_paths():
            pr.rib_out.stage(fam, d.key, self._export(pr, d.best))

    # ------------------------------------------------------------------ reading

    def loc_rib(self, family: Family) -> LocRib:
        return self.ribs[family]

    def best(self, families: Iterable[Family]) -> Iterator[Destination]:
        """Destinations with a best path, in the given families."""
        for fam in families:
            yield from self.ribs[fam].best_paths()

    def valid(self, path: Path) -> bool:
        return self.nexthops.valid(path)

    def counts(self) -> Mapping[str, int]:
        return {f.name: len(r) for f, r in self.ribs.items()}

    def eor_complete(self, name: str) -> bool:
        """Established and End-of-RIB received for every negotiated family."""
        pr = self.peers[name]
        return pr.negotiated is not None and pr.negotiated.families <= pr.eor_received


__all__ = ["RibManager", "RibSettings", "PeerTableConfig", "PeerRib", "MaxPrefix", "RibOutput", "StaleTimer",
           "Shutdown"]
