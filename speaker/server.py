"""The speaker: listeners, one :class:`Peer` per neighbour, the table layer, the FIB
feed and the API handlers.

Data flow (GoBGP's layering): UPDATE -> Adj-RIB-In (after loop checks and import
policy) -> Loc-RIB per family (decision process, next-hop validity) -> per peer
export rules and policy -> Adj-RIB-Out -> packed UPDATEs; and Loc-RIB unicast
best paths -> FIB.  Work is batched: every change marks destinations dirty and one
flush (after the current burst of input, or after MRAI) settles them.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import struct
import time

from .config import NodeConfig
from .netutil import local_link_locals, set_gtsm, set_md5
from .origination import RouteSpecError, parse_route, parse_route_key, self_next_hop
from .peer import Peer, _Protocol
from .policy import EvalContext, NextHopDirective
from .policy.roles import leaf_from_host
from .session.events import State
from .session.negotiated import Negotiated
from .table.adj_rib_in import AttributeInterner, path_view, update_paths
from .table.decision import DecisionConfig
from .table.export import ExportContext, export_path
from .table.nexthop import NexthopTracker
from .table.path import LOCAL, Path
from .table.rib import Destination, LocRib
from .wire.constants import IPV4_UNICAST, IPV6_UNICAST, SUPPORTED_FAMILIES, VPNV4, VPNV6, CeaseSubcode, ErrorCode, Family
from .wire.notification import Notification
from .wire.route_refresh import SUBTYPE_BORR, SUBTYPE_EORR, SUBTYPE_REQUEST, RouteRefresh
from .wire.update import Update

log = logging.getLogger("l3fab.speaker")
UNICAST = (IPV4_UNICAST, IPV6_UNICAST)
VPN = (VPNV4, VPNV6)


class ApiError(Exception):
    """A request the API refuses: the message names the field and value."""


class Speaker:
    def __init__(self, config: NodeConfig, fib=None, dataplane=None) -> None:
        self.config = config
        self.restarting = False
        self.fib = fib
        self.peers: list[Peer] = [Peer(self, config, n) for n in config.neighbors]
        cfg = DecisionConfig(config.maximum_paths, config.multipath_relax, config.always_compare_med)
        self.nexthops = NexthopTracker()
        self.ribs: dict[Family, LocRib] = {f: LocRib(f, cfg, self.nexthops.valid) for f in SUPPORTED_FAMILIES}
        self.intern = AttributeInterner()
        self.eval_ctx = EvalContext(local_as=config.asn)
        self.started = time.time()
        self.converged_at: float | None = None
        self._servers: list = []
        self._flush_handle: asyncio.Handle | None = None
        self._tasks: list[asyncio.Task] = []
        self._import_policies = {p.cfg.name: self._policy_for(p) for p in self.peers}
        self._export_policies = {p.cfg.name: self._export_policy_for(p) for p in self.peers}
        self._stale_timers: dict[str, asyncio.TimerHandle] = {}
        self.stopping = False  # no more table work: the forwarding state must stay as it is
        self.intent = None
        self._intent_routes: dict = {}  # (family, key) -> route spec currently originated for the intent
        if config.tenancy is not None:
            from l3fab.tenancy.intent import Intent

            self.intent = Intent.load(config.tenancy_state_file, config.tenancy)
        self.tenants = None  # TenantPlane: VRF imports and the dataplane
        if self.intent is not None:
            from l3fab.dataplane.intent import DataplaneSettings

            from .tenant_plane import TenantPlane

            self.tenants = TenantPlane(self.intent, config.dataplane or DataplaneSettings(enabled=False), dataplane,
                                       config.maximum_paths, self._vpn_best)

    # ------------------------------------------------------------------ policies

    def _policy(self, name: str | None):
        if name is None:
            return None
        return self.config.policies.policies[name]

    def _export_policy_for(self, peer: Peer):
        """Configured, or on a host with tenants the host-export rule of ARCHITECTURE.md:
        its locator, VPN routes whose next hop is one of its SIDs, and the prefixes its
        config lists under ``networks`` - never a route learned from another host."""
        if peer.cfg.export_policy:
            return self._policy(peer.cfg.export_policy)
        if self.config.role == "host" and self.config.tenancy is not None:
            from .policy import parse_policy
            from .policy.roles import host_export_config

            cfg = host_export_config(self.config.tenancy.locator)
            nets = [n["prefix"] for n in self.config.networks if not n.get("rd")]
            if nets:
                cfg["terms"].insert(0, {"name": "configured-networks", "match": {"prefix": nets}, "action": "accept"})
            return parse_policy("host-export", cfg)
        return None

    def _policy_for(self, peer: Peer):
        """The import policy: configured, or the leaf's per-host filter built from host-locator."""
        if peer.cfg.import_policy:
            return self._policy(peer.cfg.import_policy)
        if peer.cfg.host_locator:
            return leaf_from_host(peer.cfg.host_locator)
        return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.fib is not None:
            self.restarting = await loop.run_in_executor(None, self.fib.start)
        if self.tenants is not None:
            had = self.tenants.start()
            self.restarting = self.restarting or (had and self.tenants.dataplane is not None)
            if self.tenants.dataplane is not None:
                self._tasks.append(loop.create_task(self._dataplane_loop()))
        if self.fib is not None or (self.tenants is not None and self.tenants.dataplane is not None):
            if self.restarting:
                log.info("found forwarding state of a previous run: graceful restart (stale FIB routes "
                         "are removed once every peer sent End-of-RIB, or after %ss)", self.config.convergence_timeout)
            for p in self.peers:
                p.refresh_session_config()
            self._tasks.append(loop.create_task(self._convergence_deadline()))
        for addr in self.config.listen_addresses:
            ip = ipaddress.ip_address(addr)
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if addr == "::" else 1)
            for p in self.peers:
                if p.cfg.password and p.cfg.address:
                    try:
                        set_md5(sock, p.cfg.address, p.cfg.password)
                    except OSError as e:
                        log.error("%s: cannot install TCP-MD5 key on the listener: %s", p.cfg.name, e)
            if any(p.cfg.ttl_security for p in self.peers):
                set_gtsm(sock, enforce=False)  # SYN-ACKs to GTSM peers leave with TTL 255
            sock.bind((addr, self.config.listen_port))
            sock.listen(64)
            sock.setblocking(False)
            srv = await loop.create_server(lambda: _Inbound(self), sock=sock)
            self._servers.append(srv)
        await self.refresh_connected()
        self._tasks.append(loop.create_task(self._connected_loop()))
        if self.config.networks:
            self.announce(list(self.config.networks))
        if self.intent is not None:
            self._sync_intent()
        for p in self.peers:
            p.start()

    async def stop(self, graceful: bool = False) -> None:
        """Stop.  ``graceful``: close sessions without NOTIFICATION and keep the FIB, so
        peers that support graceful restart keep forwarding to us while we restart."""
        self.stopping = True
        for srv in self._servers:
            srv.close()
        for t in self._tasks:
            t.cancel()
        for p in self.peers:
            await p.stop("l3fab shutting down", graceful=graceful)
        await asyncio.sleep(0.05)  # let the Cease notifications flush
        if self.fib is not None and not graceful:
            self.fib.clear()
        if self.tenants is not None and not graceful:
            self.tenants.clear()

    @property
    def listen_port(self) -> int:
        for srv in self._servers:
            for s in srv.sockets:
                return s.getsockname()[1]
        return self.config.listen_port

    # ------------------------------------------------------------------ underlay facts

    async def refresh_connected(self) -> None:
        """Connected prefixes (for next-hop resolution) from the kernel's interface addresses."""
        try:
            proc = await asyncio.create_subprocess_exec("ip", "-j", "addr", "show", stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.DEVNULL)
            out, _ = await proc.communicate()
            links = json.loads(out or b"[]")
        except (OSError, ValueError):
            return
        prefixes = set()
        for link in links:
            for a in link.get("addr_info", []):
                try:
                    net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
                except (KeyError, ValueError):
                    continue
                if net.is_link_local or net.is_loopback:
                    continue
                prefixes.add((net.version, int(net.network_address), net.prefixlen))
        if self.nexthops.set_connected(prefixes):
            for fam, keys in self.nexthops.recheck().items():
                self.ribs[fam].touch(keys)
            self.schedule_flush()

    async def _connected_loop(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            await self.refresh_connected()

    # ------------------------------------------------------------------ peer events

    def peer_for(self, address: str, scope: int) -> Peer | None:
        for p in self.peers:
            if p.matches(address, scope):
                return p
        return None

    def export_context(self, peer: Peer, neg: Negotiated) -> ExportContext:
        ll = None
        if peer.cfg.interface:
            lls = sorted(local_link_locals(peer.cfg.interface))
            ll = lls[0] if lls else None
        return ExportContext(
            peer_name=peer.cfg.name, peer_as=neg.peer_as, local_as=neg.local_as, router_id=self.config.router_id,
            families=neg.families, self_next_hop=self_next_hop(peer.local_address, ll), ibgp=neg.ibgp,
            rr_client=peer.cfg.route_reflector_client, cluster_id=self.config.cluster_id,
            next_hop_self=peer.cfg.next_hop_self, extended_next_hop=neg.extended_next_hop)

    def on_established(self, peer: Peer, neg: Negotiated) -> None:
        log.info("%s: established (AS %s, id %s, families %s)", peer.cfg.name, neg.peer_as, neg.peer_id,
                 ", ".join(sorted(f.name for f in neg.families)))
        peer.export_ctx = self.export_context(peer, neg)
        peer.rib_out.clear()
        for fam in neg.families:
            self._export_all(peer, fam)
        chunks = peer.rib_out.flush(neg.codec)
        chunks += [peer.rib_out.end_of_rib(f, neg.codec) for f in sorted(neg.families)]
        peer.send_raw(chunks)

    def on_session_down(self, peer: Peer, reason: str, notification: bool) -> None:
        log.warning("%s: session down: %s", peer.cfg.name, reason)
        peer.rib_out.clear()
        gr = peer.last_gr
        keep = set()
        # RFC 4724 helper mode keeps a restarting peer's routes; not when our own link to it
        # is down: nothing can be forwarded over it, so the routes go at once.
        if gr is not None and not notification and peer.cfg.graceful_restart and not peer.link_down:
            keep = {f for f, _fwd in gr.families}
        for fam in list(peer.rib_in.tables):
            if fam in keep:
                self._mark_stale(peer, fam)
            else:
                self._drop_family(peer, fam)
        if keep:
            restart = gr.restart_time or self.config.restart_time
            old = self._stale_timers.pop(peer.cfg.name, None)
            if old:
                old.cancel()
            self._stale_timers[peer.cfg.name] = asyncio.get_running_loop().call_later(
                restart, self._stale_expired, peer)
            log.info("%s: graceful restart: keeping %s as stale for up to %ss", peer.cfg.name,
                     ", ".join(sorted(f.name for f in keep)), restart)
        self.schedule_flush()

    def _mark_stale(self, peer: Peer, fam: Family) -> None:
        rib = self.ribs[fam]
        table = peer.rib_in.tables.get(fam, {})
        for slot, p in list(table.items()):
            sp = p._replace(stale=True)
            table[slot] = sp
            rib.add(sp)

    def _drop_family(self, peer: Peer, fam: Family) -> None:
        rib = self.ribs[fam]
        for p in peer.rib_in.tables.get(fam, {}).values():
            rib.remove(peer.cfg.name, p.key, p.path_id)
            if p.next_hop is not None:
                self.nexthops.forget(p.next_hop.address, fam, p.key)
        peer.rib_in.clear(fam)
        if peer.rib_in_pre is not None:
            peer.rib_in_pre.clear(fam)

    def _sweep_stale(self, peer: Peer, fam: Family) -> int:
        rib = self.ribs[fam]
        table = peer.rib_in.tables.get(fam, {})
        stale = [(k, p) for k, p in table.items() if p.stale]
        for slot, p in stale:
            del table[slot]
            rib.remove(peer.cfg.name, p.key, p.path_id)
        return len(stale)

    def _stale_expired(self, peer: Peer) -> None:
        self._stale_timers.pop(peer.cfg.name, None)
        n = sum(self._sweep_stale(peer, f) for f in list(peer.rib_in.tables))
        if n:
            log.warning("%s: restart timer expired, %d stale routes removed", peer.cfg.name, n)
            self.schedule_flush()

    def on_update(self, peer: Peer, update: Update) -> None:
        eor = update.end_of_rib()
        if eor is not None:
            self._end_of_rib(peer, eor)
            return
        source = peer.source
        policy = self._import_policies.get(peer.cfg.name)
        local_as = self.config.asn
        allow = peer.cfg.allowas_in
        rid = self.config.router_id
        cluster = self.config.cluster_id or rid
        rib_in = peer.rib_in
        pre = peer.rib_in_pre
        ribs = self.ribs
        name = peer.cfg.name
        announced, withdrawn = update_paths(update, source, self.intern)
        for family, paths in announced:
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
                if accepted is not None:
                    res = policy.evaluate(path, self.eval_ctx)
                    accepted = res.path if res.accepted else None
                if accepted is None:
                    if rib_in.pop(family, path.key, path.path_id) is not None:
                        rib.remove(name, path.key, path.path_id)
                    continue
                rib_in.put(accepted)
                rib.add(accepted)
        for family, key, path_id in withdrawn:
            if pre is not None:
                pre.pop(family, key, path_id)
            old = rib_in.pop(family, key, path_id)
            if old is not None:
                ribs[family].remove(name, key, path_id)
                if old.next_hop is not None:
                    self.nexthops.forget(old.next_hop.address, family, key)
        self._check_max_prefix(peer)
        self.schedule_flush()

    def _end_of_rib(self, peer: Peer, fam: Family) -> None:
        peer.eor_received.add(fam)
        n = self._sweep_stale(peer, fam)
        if n:
            log.info("%s: End-of-RIB for %s, %d stale routes removed", peer.cfg.name, fam.name, n)
        if not any(p.rib_in.tables.get(f) and any(x.stale for x in p.rib_in.tables[f].values())
                   for p in self.peers for f in p.rib_in.tables):
            t = self._stale_timers.pop(peer.cfg.name, None)
            if t:
                t.cancel()
        self.schedule_flush()
        self._check_converged()

    def _check_max_prefix(self, peer: Peer) -> None:
        mp = peer.cfg.max_prefix
        if mp is None:
            return
        for fam, table in peer.rib_in.tables.items():
            n = len(table)
            if n > mp.limit:
                log.error("%s: %d %s routes exceed maximum-prefix %d: closing the session", peer.cfg.name, n,
                          fam.name, mp.limit)
                data = struct.pack("!HBI", fam.afi, fam.safi, mp.limit)  # RFC 4486 section 4
                peer.shutdown_for(Notification(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES, data), mp.restart)
                return
            if n * 100 >= mp.limit * mp.warning and fam not in peer.max_prefix_warned:
                peer.max_prefix_warned.add(fam)
                log.warning("%s: %d %s routes reached %d%% of maximum-prefix %d", peer.cfg.name, n, fam.name,
                            mp.warning, mp.limit)

    def on_route_refresh(self, peer: Peer, rr: RouteRefresh) -> None:
        neg = peer.session.negotiated
        if neg is None or rr.subtype != SUBTYPE_REQUEST or rr.family not in neg.families:
            return
        log.info("%s: route refresh for %s", peer.cfg.name, rr.family.name)
        chunks = []
        if neg.enhanced_route_refresh:
            chunks.append(RouteRefresh(rr.family, SUBTYPE_BORR).encode())
        peer.rib_out.restage_all([rr.family])
        chunks += peer.rib_out.flush(neg.codec)
        chunks.append(RouteRefresh(rr.family, SUBTYPE_EORR).encode() if neg.enhanced_route_refresh
                      else peer.rib_out.end_of_rib(rr.family, neg.codec))
        peer.send_raw(chunks)

    # ------------------------------------------------------------------ convergence (FIB)

    def _forwarding(self) -> bool:
        return self.fib is not None or (self.tenants is not None and self.tenants.dataplane is not None)

    def _check_converged(self) -> None:
        if self.converged_at is not None or not self._forwarding():
            return
        for p in self.peers:
            if not p.enabled:
                continue
            neg = p.session.negotiated
            if p.state is not State.ESTABLISHED or neg is None or not neg.families <= p.eor_received:
                return
        self._converged("End-of-RIB from every peer")

    async def _convergence_deadline(self) -> None:
        await asyncio.sleep(self.config.convergence_timeout)
        self._converged(f"convergence timeout {self.config.convergence_timeout}s")

    def _converged(self, why: str) -> None:
        if self.converged_at is not None:
            return
        self.converged_at = time.time()
        self.flush()
        if self.fib is not None and self.restarting:
            self._fib_resync()
        removed = self.fib.converged() if self.fib is not None else 0
        if self.tenants is not None:
            self.tenants.converged()
        log.info("RIB converged (%s); %s stale FIB routes removed", why, removed)

    # ------------------------------------------------------------------ flushing

    def schedule_flush(self) -> None:
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            if self.config.mrai > 0:
                self._flush_handle = loop.call_later(self.config.mrai, self.flush)
            else:
                self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self.stopping:
            return
        changed: list[tuple[Family, list[Destination]]] = []
        nexthops = self.nexthops
        for _ in range(8):  # next-hop changes can ripple; settle within a few rounds
            underlay = False
            for fam, rib in self.ribs.items():
                ds = rib.process()
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
            return
        established = [p for p in self.peers if p.state is State.ESTABLISHED and p.session.negotiated
                       and getattr(p, "export_ctx", None) is not None]
        for p in established:
            fams = p.export_ctx.families
            stage = p.rib_out.stage
            for fam, ds in changed:
                if fam in fams:
                    for d in ds:
                        stage(fam, d.key, self._export(p, d.best))
            if p.rib_out.pending():
                p.send_raw(p.rib_out.flush(p.session.negotiated.codec))
        if self.fib is not None and not self._fib_deferred():
            self.fib.apply([d for fam, ds in changed if fam in UNICAST for d in ds], self.peer_interfaces())
        if self.tenants is not None:
            vpn = [d for fam, ds in changed if fam in VPN for d in ds]
            if vpn:
                self.tenants.on_changes(vpn)

    def _fib_deferred(self) -> bool:
        """RFC 4724 section 4.1: after a restart, route selection for forwarding waits for
        End-of-RIB from every peer (or the deadline); the kernel keeps the old routes."""
        return self.restarting and self.converged_at is None

    def _fib_resync(self) -> None:
        """Push the whole unicast Loc-RIB to the FIB (after a deferred start)."""
        self.fib.apply([d for f in UNICAST for d in self.ribs[f].best_paths()], self.peer_interfaces())

    def _export(self, peer: Peer, best: Path | None) -> Path | None:
        if best is None:
            return None
        out = export_path(best, peer.export_ctx)
        policy = self._export_policies.get(peer.cfg.name)
        if out is not None and policy is not None:
            res = policy.evaluate(out, self.eval_ctx)
            if not res.accepted:
                return None
            out = res.path
            if res.next_hop is not None:
                nh = peer.export_ctx.self_next_hop if res.next_hop is NextHopDirective.SELF else best.next_hop
                if nh is None:
                    return None
                out = out._replace(next_hop=nh)
        return out

    def _export_all(self, peer: Peer, fam: Family) -> None:
        for d in self.ribs[fam].best_paths():
            peer.rib_out.stage(fam, d.key, self._export(peer, d.best))

    def peer_interfaces(self) -> dict[str, str]:
        """Neighbour name -> interface (for link-local next hops in the FIB)."""
        return {p.cfg.name: p.cfg.interface for p in self.peers if p.cfg.interface}

    # ------------------------------------------------------------------ origination

    def announce(self, specs: list[dict], offset: int = 0) -> int:
        """Originate routes; all are validated before any is applied."""
        routes = [parse_route(s, f"routes[{offset + i}]") for i, s in enumerate(specs)]
        for r in routes:
            self.ribs[r.family].add(Path(r.family, r.key, r.next_hop, r.attributes,
                                         getattr(r.nlri, "labels", ()), LOCAL))
        self.schedule_flush()
        return len(routes)

    async def announce_bulk(self, specs: list[dict], chunk: int = 10_000) -> int:
        """:meth:`announce` for big batches: validate everything first (nothing is applied
        if one route is bad), then apply and send in chunks, letting keepalives and
        received messages through in between so no hold timer runs out."""
        routes = [parse_route(s, f"routes[{i}]") for i, s in enumerate(specs)]
        for start in range(0, len(routes), chunk):
            for r in routes[start : start + chunk]:
                self.ribs[r.family].add(Path(r.family, r.key, r.next_hop, r.attributes,
                                             getattr(r.nlri, "labels", ()), LOCAL))
            self.flush()
            await asyncio.sleep(0)
        return len(routes)

    def withdraw(self, specs: list[dict]) -> int:
        keys = [parse_route_key(s, f"routes[{i}]") for i, s in enumerate(specs)]
        n = 0
        for family, key in keys:
            d = self.ribs[family].dests.get(key)
            if d is not None and d.find("local") is not None:
                self.ribs[family].remove("local", key)
                n += 1
        self.schedule_flush()
        return n

    # ------------------------------------------------------------------ tenant intent

    def _sync_intent(self) -> None:
        """Originate what the intent says (locator, endpoint VPN routes); withdraw the rest."""
        wanted = {}
        for spec in self.intent.originated_routes():
            wanted[parse_route_key(spec, "intent")] = spec
        gone = [k for k in self._intent_routes if k not in wanted]
        for family, key in gone:
            self.ribs[family].remove("local", key)
        changed = [spec for k, spec in wanted.items() if self._intent_routes.get(k) != spec]
        if changed:
            self.announce(changed)
        self._intent_routes = wanted
        self.schedule_flush()

    def _vpn_best(self):
        for fam in VPN:
            yield from self.ribs[fam].best_paths()

    async def _dataplane_loop(self) -> None:
        """Endpoints whose interface appears, vanishes or is re-created are (re)plumbed (every 1 s);
        every ``dataplane.reconcile-interval`` seconds the kernel is reconciled (level-triggered
        repair of whatever someone changed)."""
        every = self.tenants.settings.reconcile_interval
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            try:
                if not self.tenants.watch_interfaces() and time.monotonic() - last >= every:
                    last = time.monotonic()
                    self.tenants.reconcile()
            except Exception:  # noqa: BLE001 - the loop must survive; the error is logged
                log.exception("dataplane reconcile failed")

    def _intent_call(self, method: str, params: dict):
        if self.intent is None:
            raise ApiError("tenancy: this node has no tenancy section in its config")
        it = self.intent
        p = dict(params)
        if method == "tenant_create":
            out = it.create_tenant(p.get("name"), p.get("vni"), p.get("families") or "dual-stack",
                                   p.get("peers") or ())
        elif method == "tenant_peers":
            out = it.set_peers(p.get("name"), p.get("peers") or ())
        elif method == "tenant_delete":
            it.delete_tenant(p.get("name"))
            out = None
        elif method == "tenant_list":
            return [t.to_dict() for t in it.tenants()]
        elif method == "tenant_show":
            return it.tenant(p.get("name")).to_dict()
        elif method == "endpoint_add":
            out = it.add_endpoint(p.get("name"), p.get("tenant"), p.get("interface"), p.get("ipv4"),
                                  p.get("ipv6"), p.get("rate_limit"))
        elif method == "endpoint_remove":
            it.remove_endpoint(p.get("name"))
            out = None
        elif method == "endpoint_list":
            return [e.to_dict() for e in it.endpoints(p.get("tenant"))]
        elif method == "endpoint_show":
            return it.endpoint(p.get("name")).to_dict()
        else:
            raise ApiError(f"method: {method!r} is not an API method")
        self._sync_intent()
        if self.tenants is not None:
            self.tenants.sync()
        return out.to_dict() if out is not None else {"done": True}

    # ------------------------------------------------------------------ API views

    def _tenant_plane(self):
        if self.tenants is None:
            raise ApiError("tenancy: this node has no tenancy section in its config")
        return self.tenants

    def find_peer(self, key: str) -> Peer:
        for p in self.peers:
            if key in (p.cfg.name, p.cfg.address, p.cfg.interface, p.discovered_address, p.cfg.description):
                return p
        known = ", ".join(p.cfg.name for p in self.peers) or "none configured"
        raise ApiError(f"neighbor: {key!r} is not a configured neighbour (known: {known})")

    def neighbor_view(self, p: Peer) -> dict:
        s = p.session
        neg = s.negotiated
        return {
            "name": p.cfg.name,
            "address": p.remote_address,
            "interface": p.cfg.interface,
            "description": p.cfg.description,
            "remote_as": p.cfg.remote_as,
            "peer_as": neg.peer_as if neg else None,
            "peer_router_id": neg.peer_id if neg else None,
            "state": s.state.value,
            "state_since": p.state_since,
            "uptime": time.time() - p.state_since,
            "local_address": p.local_address,
            "hold_time": neg.hold_time if neg else p.cfg.hold_time,
            "keepalive": neg.keepalive if neg else None,
            "families": sorted(f.name for f in (neg.families if neg else p.cfg.families)),
            "capabilities": _caps(neg) if neg else {},
            "received": {f.name: p.rib_in.count(f) for f in (neg.families if neg else ())},
            "received_pre_policy": p.rib_in_pre.counts() if p.rib_in_pre is not None else None,
            "advertised": {f.name: p.rib_out.count(f) for f in (neg.families if neg else ())},
            "end_of_rib_received": sorted(f.name for f in p.eor_received),
            "stale": sum(1 for t in p.rib_in.tables.values() for x in t.values() if x.stale),
            "messages_in": s.messages_in,
            "messages_out": s.messages_out,
            "updates_in": s.updates_in,
            "updates_out": s.updates_out,
            "established_count": p.established_count,
            "last_error": p.last_error or s.last_error,
            "last_notification_in": p.last_notification_in,
            "last_notification_out": p.last_notification_out,
            "rfc7606_faults": list(p.faults[-10:]),
            "passive": p.cfg.passive,
            "ttl_security": p.cfg.ttl_security,
            "md5": bool(p.cfg.password),
            "import_policy": p.cfg.import_policy or (f"leaf-from-host {p.cfg.host_locator}" if p.cfg.host_locator else None),
            "export_policy": p.cfg.export_policy or (
                f"host-export {self.config.tenancy.locator} (built in)"
                if self._export_policies.get(p.cfg.name) is not None else None),
            "max_prefix": p.cfg.max_prefix.limit if p.cfg.max_prefix else None,
        }

    def loc_rib_view(self, fam: Family, prefix: str | None = None, limit: int | None = None) -> list[dict]:
        out = []
        for d in list(self.ribs[fam].dests.values()):
            if prefix and str(d.key.prefix if hasattr(d.key, "rd") else d.key) != prefix:
                continue
            multi = {id(p) for p in d.multipath}
            for p in d.paths:
                valid = self.nexthops.valid(p)
                out.append(path_view(p, source=p.source.name, best=p is d.best, multipath=id(p) in multi,
                                     stale=p.stale, valid=valid).to_dict())
                if limit and len(out) >= limit:
                    return out
        return out

    def handle(self, method: str, params: dict):
        """Dispatch one API request; raises :class:`ApiError` for bad input."""
        if method == "status":
            return {"router_id": self.config.router_id, "asn": self.config.asn, "role": self.config.role,
                    "uptime": time.time() - self.started,
                    "neighbors": len(self.peers), "established": sum(p.state is State.ESTABLISHED for p in self.peers),
                    "listen_port": self.listen_port, "restarting": self.restarting,
                    "converged": self.converged_at is not None,
                    "loc_rib": {f.name: len(r) for f, r in self.ribs.items()},
                    "fib": self.fib.summary() if self.fib is not None else None}
        if method == "neighbors":
            return [self.neighbor_view(p) for p in self.peers]
        if method == "neighbor":
            return self.neighbor_view(self.find_peer(str(params.get("neighbor", ""))))
        if method in ("rib_received", "rib_received_pre"):
            p = self.find_peer(str(params.get("neighbor", "")))
            rib = p.rib_in if method == "rib_received" else p.rib_in_pre
            if rib is None:
                raise ApiError(f"neighbor: {p.cfg.name!r} does not keep pre-policy routes (set keep-pre-policy)")
            fams = [_family(params["family"])] if params.get("family") else sorted(rib.tables)
            limit = params.get("limit")
            out = []
            for f in fams:
                for r in rib.routes(f):
                    out.append(r.to_dict())
                    if limit and len(out) >= int(limit):
                        return out
            return out
        if method == "rib_advertised":
            p = self.find_peer(str(params.get("neighbor", "")))
            fams = [_family(params["family"])] if params.get("family") else sorted(p.rib_out.tables)
            return [path_view(x).to_dict() for f in fams for x in p.rib_out.tables.get(f, {}).values()]
        if method == "rib_received_count":
            p = self.find_peer(str(params.get("neighbor", "")))
            return p.rib_in.counts()
        if method == "rib":
            fams = [_family(params["family"])] if params.get("family") else list(SUPPORTED_FAMILIES)
            limit = int(params["limit"]) if params.get("limit") else None
            return [r for f in fams for r in self.loc_rib_view(f, params.get("prefix"), limit)]
        if method == "fib" and params.get("vrf"):
            return self._tenant_plane().fib(str(params["vrf"]))
        if method == "vrfs":
            return self._tenant_plane().vrfs()
        if method == "vrf_rejected":
            return self._tenant_plane().rejected()
        if method == "endpoints":
            return self._tenant_plane().endpoints(params.get("tenant"))
        if method == "dataplane":
            return self._tenant_plane().summary()
        if method == "fib":
            if self.fib is None:
                raise ApiError("fib: the FIB is disabled on this node (fib.enabled: false)")
            return self.fib.view(params.get("table"))
        if method == "announce":
            routes = _routes(params)
            if len(routes) > 10_000:
                async def bulk():
                    return {"announced": await self.announce_bulk(routes)}
                return bulk()
            return {"announced": self.announce(routes)}
        if method == "withdraw":
            return {"withdrawn": self.withdraw(_routes(params))}
        if method == "local_routes":
            fams = [_family(params["family"])] if params.get("family") else list(SUPPORTED_FAMILIES)
            return [path_view(p, source="local").to_dict() for f in fams for d in self.ribs[f].dests.values()
                    for p in d.paths if p.source.name == "local"]
        if method == "route_refresh":
            p = self.find_peer(str(params.get("neighbor", "")))
            fam = _family(params.get("family", "ipv4"))
            if p.state is not State.ESTABLISHED:
                raise ApiError(f"neighbor: {p.cfg.name!r} is {p.state.value}, not Established")
            neg = p.session.negotiated
            if not neg.route_refresh:
                raise ApiError(f"neighbor: {p.cfg.name!r} did not announce the route refresh capability")
            if fam not in neg.families:
                raise ApiError(f"family: {fam.name!r} was not negotiated with {p.cfg.name!r}")
            p.send(RouteRefresh(fam))
            return {"sent": True}
        if method == "reset":
            p = self.find_peer(str(params.get("neighbor", "")))
            p.enabled = True
            p.reset(str(params.get("message", "")))
            return {"reset": p.cfg.name}
        if method.startswith(("tenant_", "endpoint_")):
            return self._intent_call(method, params)
        raise ApiError(f"method: {method!r} is not an API method")


def _family(text) -> Family:
    try:
        return Family.parse(str(text))
    except ValueError as e:
        raise ApiError(f"family: {e}") from None


def _routes(params: dict) -> list[dict]:
    routes = params.get("routes")
    if not isinstance(routes, list):
        raise ApiError(f"routes: {routes!r} is not a list of route objects")
    return routes


def _caps(neg: Negotiated) -> dict:
    return {
        "four_octet_as": neg.four_octet_as,
        "route_refresh": neg.route_refresh,
        "enhanced_route_refresh": neg.enhanced_route_refresh,
        "extended_message": neg.extended_message,
        "extended_next_hop": sorted(f.name for f in neg.extended_next_hop),
        "addpath_receive": sorted(f.name for f in neg.addpath_receive),
        "graceful_restart": bool(neg.peer_graceful_restart),
    }


class _Inbound(asyncio.Protocol):
    """Listener protocol: find the neighbour, then hand the connection over."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker
        self.proto: _Protocol | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        peername = sock.getpeername()
        addr = peername[0].split("%")[0]
        scope = peername[3] if len(peername) >= 4 else 0
        peer = self.speaker.peer_for(addr, scope)
        if peer is None:
            log.info("refusing connection from unknown peer %s", addr)
            transport.close()
            return
        self.proto = _Protocol(peer)
        self.proto.transport = transport
        peer.accept(self.proto)

    def data_received(self, data: bytes) -> None:
        if self.proto is not None:
            self.proto.data_received(data)

    def connection_lost(self, exc) -> None:
        if self.proto is not None:
            self.proto.connection_lost(exc)


__all__ = ["Speaker", "ApiError", "RouteSpecError"]
