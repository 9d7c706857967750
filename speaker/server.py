"""The speaker daemon shell: asyncio wiring around the sans-IO parts.

It owns the listeners (TCP-MD5, GTSM: see :meth:`Speaker._listen`), one :class:`Peer` per neighbour, the timers
(MRAI, RFC 4724 restart and convergence timers), the poll of connected prefixes,
and the Loc-RIB consumers.  Every table decision is the :class:`RibManager`'s: a
peer event goes in, the manager's :class:`RibOutput` is executed here.

One decision run per burst: events mark destinations dirty and schedule
:meth:`Speaker.process` with ``call_soon``.  Consumers (the kernel FIB feed, VRF
import) get the changes at once; UPDATEs to peers wait for the MRAI when one is
configured.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Iterable

from .config import NeighborConfig, NodeConfig
from .consumer import LocRibConsumer
from .netutil import LINK_LOCAL_PREFIX, ifindex, local_link_locals, save_syn, set_gtsm, set_md5
from .origination import LocalRoute, self_next_hop
from .peer import Peer, _Protocol
from .policy import Policy
from .policy.roles import leaf_from_host
from .session.events import State
from .session.negotiated import Negotiated
from .table.decision import DecisionConfig
from .table.export import ExportContext
from .table.manager import PeerTableConfig, RibManager, RibOutput, RibSettings
from .table.path import Key, Source
from .text import LogBudget
from .wire.constants import Family
from .wire.route_refresh import RouteRefresh
from .wire.update import Update

log = logging.getLogger("l3fab.speaker")
CONNECTED_POLL = 2.0  # seconds between reads of the host's interface addresses
DECISION_CHUNK = 5_000  # destinations per family decided in one turn of the event loop


class Speaker:
    """Implements :class:`~speaker.peer.PeerEvents` for its peers."""

    def __init__(self, config: NodeConfig, default_export_policy: Policy | None = None,
                 default_export_description: str | None = None) -> None:
        self.config = config
        self.restarting = False  # set by the application before start(): forwarding state survived
        self.default_export_policy = default_export_policy
        self.default_export_description = default_export_description
        self.peers: list[Peer] = [Peer(self, config, n) for n in config.neighbors]
        self.rib = RibManager(
            RibSettings(config.asn, config.router_id, config.cluster_id,
                        DecisionConfig(config.maximum_paths, config.multipath_relax, config.always_compare_med),
                        config.restart_time),
            [self._table_config(n) for n in config.neighbors])
        self.consumers: list[LocRibConsumer] = []
        self.started = time.time()
        self.converged_at: float | None = None
        self.stopping = False  # no more table work: the forwarding state must stay as it is
        self._servers: list[asyncio.base_events.Server] = []
        # interface -> (our link-local address it is bound to, its server): see _listen_on_link
        self._link_servers: dict[str, tuple[str, asyncio.base_events.Server]] = {}
        self.refused_unknown = 0  # inbound connections from addresses of no neighbour
        self._refusal_log = LogBudget(per_key=1, interval=60.0)
        self._process_handle: asyncio.Handle | None = None
        self._drain_handle: asyncio.TimerHandle | None = None
        self._stale_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ policies

    def _policy(self, name: str | None) -> Policy | None:
        if name is None or self.config.policies is None:
            return None
        return self.config.policies.policies[name]

    def _table_config(self, n: NeighborConfig) -> PeerTableConfig:
        if n.import_policy:
            imp = self._policy(n.import_policy)
        elif n.host_locator:
            imp = leaf_from_host(n.host_locator)  # the leaf's per-host filter
        else:
            imp = None
        exp = self._policy(n.export_policy) if n.export_policy else self.default_export_policy
        return PeerTableConfig(n.name, imp, exp, n.allowas_in, n.max_prefix, n.keep_pre_policy, n.graceful_restart)

    def import_policy_name(self, n: NeighborConfig) -> str | None:
        return n.import_policy or (f"leaf-from-host {n.host_locator}" if n.host_locator else None)

    def export_policy_name(self, n: NeighborConfig) -> str | None:
        if n.export_policy:
            return n.export_policy
        return self.default_export_description if self.default_export_policy is not None else None

    # ------------------------------------------------------------------ consumers and origination

    def add_consumer(self, consumer: LocRibConsumer) -> None:
        """Register a Loc-RIB consumer; it first receives every current best path of its families."""
        self.consumers.append(consumer)
        for fam in sorted(consumer.families):
            dests = list(self.rib.best([fam]))
            if dests:
                consumer.rib_changed(fam, dests)

    def announce(self, routes: Iterable[LocalRoute]) -> int:
        n = self.rib.originate(r.path() for r in routes)
        self.schedule_process()
        return n

    def withdraw(self, keys: Iterable[tuple[Family, Key]]) -> int:
        n = self.rib.withdraw_local(keys)
        self.schedule_process()
        return n

    def set_origin_group(self, group: str, routes: Iterable[LocalRoute]) -> None:
        """Originate exactly ``routes`` for ``group`` (the tenant intent), withdrawing the rest."""
        if self.rib.set_origin_group(group, (r.path() for r in routes)):
            self.schedule_process()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.restarting:
            log.info("found forwarding state of a previous run: graceful restart (stale forwarding state is "
                     "removed once every peer sent End-of-RIB, or after %ss)", self.config.convergence_timeout)
            for p in self.peers:
                p.refresh_session_config()
        if self.consumers:
            self._tasks.append(loop.create_task(self._convergence_deadline()))
        for addr in self.config.listen_addresses:
            self._servers.append(await self._listen(loop, addr))
        await self._listen_on_links()
        await self.refresh_connected()
        self._tasks.append(loop.create_task(self._connected_loop()))
        if self.config.networks:
            self.announce(self.config.networks)
        for p in self.peers:
            p.start()

    async def _listen(self, loop: asyncio.AbstractEventLoop, addr: str) -> asyncio.base_events.Server:
        """A listener on one configured address.

        TCP-MD5: a key for every numbered neighbour with a password.  GTSM (RFC 5082):
        when every neighbour uses ttl-security, IP_MINTTL / IPV6_MINHOPCOUNT 254 on the
        listener itself, so a SYN from further away is dropped by the kernel and never
        gets an answer; otherwise the listener only sends with TTL 255 and each
        ttl-security neighbour checks the TTL of its connection's SYN before sending
        anything (:meth:`Peer.accept`).  Link-local neighbours that need a key or GTSM
        get listeners of their own (:meth:`_listen_on_links`).
        """
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
        if self.peers and all(p.cfg.ttl_security for p in self.peers):
            set_gtsm(sock, enforce=True)
        elif any(p.cfg.ttl_security for p in self.peers):
            set_gtsm(sock, enforce=False)  # SYN-ACKs to GTSM peers leave with TTL 255
        save_syn(sock)
        sock.bind((addr, self.config.listen_port))
        if addr == "::" and self._link_plan():
            # Listeners bound to an interface's link-local address share the port: allowed
            # between SO_REUSEPORT sockets only, set after this bind so that it still
            # failed if the port was taken (another l3fab keeps its port to itself).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.listen(64)
        sock.setblocking(False)
        return await loop.create_server(lambda: _Inbound(self), sock=sock)

    def _link_plan(self) -> dict[str, list[Peer]]:
        """Interface -> its link-local neighbours, for interfaces where one of them has a
        TCP-MD5 password or ttl-security.  Their connections go to our link-local address
        on that interface, and a listener bound there carries their key and GTSM: a key
        for all of fe80::/10 (an unnumbered neighbour's address is not known beforehand)
        and IPV6_MINHOPCOUNT stay on that link (Linux scopes a key to an interface only
        for VRF devices).  Only with a wildcard IPv6 listener: without one, link-local
        neighbours cannot connect to us at all."""
        if "::" not in self.config.listen_addresses:
            return {}
        plan: dict[str, list[Peer]] = {}
        for p in self.peers:
            iface = p.cfg.interface
            if iface and (p.cfg.address is None or ipaddress.ip_address(p.cfg.address).is_link_local):
                plan.setdefault(iface, []).append(p)
        return {i: ps for i, ps in plan.items() if any(p.cfg.password or p.cfg.ttl_security for p in ps)}

    async def _listen_on_links(self) -> None:
        """(Re)bind the listeners of :meth:`_link_plan` to each interface's current
        link-local address (run at start and with every poll of the addresses)."""
        plan = self._link_plan()
        if not plan or not self._servers:
            return
        loop = asyncio.get_running_loop()
        port = self.listen_port
        for iface, peers in plan.items():
            lls = sorted(local_link_locals(iface))
            want = lls[0] if lls else None
            have = self._link_servers.get(iface)
            if have is not None and have[0] == want:
                continue
            if have is not None:
                have[1].close()
                del self._link_servers[iface]
            if want is None:
                continue
            try:
                server = await self._listen_on_link(loop, iface, want, port, peers)
            except OSError as e:
                log.error("cannot listen on %s%%%s port %s: %s", want, iface, port, e)
                continue
            self._link_servers[iface] = (want, server)

    async def _listen_on_link(self, loop: asyncio.AbstractEventLoop, iface: str, address: str, port: int,
                              peers: list[Peer]) -> asyncio.base_events.Server:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
            for p in peers:
                if p.cfg.password:
                    if p.cfg.address:
                        set_md5(sock, p.cfg.address, p.cfg.password)
                    else:
                        set_md5(sock, LINK_LOCAL_PREFIX[0], p.cfg.password, prefixlen=LINK_LOCAL_PREFIX[1])
            if all(p.cfg.ttl_security for p in peers):
                set_gtsm(sock, enforce=True)
            elif any(p.cfg.ttl_security for p in peers):
                set_gtsm(sock, enforce=False)
            save_syn(sock)
            sock.bind((address, port, 0, ifindex(iface)))
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        log.info("listening on %s%%%s port %s for %s", address, iface, port, ", ".join(p.cfg.name for p in peers))
        return await loop.create_server(lambda: _Inbound(self, iface), sock=sock)

    async def stop(self, graceful: bool = False) -> None:
        """Stop.  ``graceful``: close sessions without NOTIFICATION (the application keeps
        the forwarding state), so peers doing graceful restart keep forwarding to us."""
        self.stopping = True
        for srv in (*self._servers, *(server for _addr, server in self._link_servers.values())):
            srv.close()
        for t in self._tasks:
            t.cancel()
        for h in (self._process_handle, self._drain_handle, *self._stale_timers.values()):
            if h is not None:
                h.cancel()
        for p in self.peers:
            await p.stop("l3fab shutting down", graceful=graceful)
        await asyncio.sleep(0.05)  # let the Cease notifications flush

    @property
    def listen_port(self) -> int:
        for srv in self._servers:
            for s in srv.sockets:
                return int(s.getsockname()[1])
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
        prefixes: set[tuple[int, int, int]] = set()
        for link in links:
            for a in link.get("addr_info", []):
                try:
                    net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
                except (KeyError, ValueError):
                    continue
                if net.is_link_local or net.is_loopback:
                    continue
                prefixes.add((net.version, int(net.network_address), net.prefixlen))
        if self.rib.set_connected(prefixes):
            self.schedule_process()

    async def _connected_loop(self) -> None:
        while True:
            await asyncio.sleep(CONNECTED_POLL)
            await self.refresh_connected()
            await self._listen_on_links()

    # ------------------------------------------------------------------ peer events (PeerEvents)

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
        self._execute(self.rib.peer_up(peer.cfg.name, neg, peer.source, self.export_context(peer, neg)))

    def on_session_down(self, peer: Peer, reason: str, notification: bool) -> None:
        log.warning("%s: session down: %s", peer.cfg.name, reason)
        gr = peer.last_gr
        keep: tuple[Family, ...] = ()
        # RFC 4724 helper mode keeps a restarting peer's routes; not when our own link to it
        # is down: nothing can be forwarded over it, so the routes go at once.
        if gr is not None and not notification and not peer.link_down:
            keep = tuple(f for f, _fwd in gr.families)
        self._execute(self.rib.peer_down(peer.cfg.name, keep, gr.restart_time if gr is not None else None))

    def on_update(self, peer: Peer, update: Update) -> None:
        out = self.rib.update_received(peer.cfg.name, update)
        self._execute(out)
        if update.end_of_rib() is not None:
            self._check_converged()

    def on_route_refresh(self, peer: Peer, rr: RouteRefresh) -> None:
        self._execute(self.rib.route_refresh(peer.cfg.name, rr))

    def _execute(self, out: RibOutput) -> None:
        """Carry out what the RIB manager asked for."""
        for name, chunks in out.send.items():
            self.peer_named(name).send_raw(chunks)
        loop = asyncio.get_running_loop()
        for t in out.timers:
            old = self._stale_timers.pop(t.peer, None)
            if old is not None:
                old.cancel()
            if t.seconds is not None:
                self._stale_timers[t.peer] = loop.call_later(t.seconds, self._stale_expired, t.peer)
        for s in out.shutdowns:
            self.peer_named(s.peer).shutdown_for(s.notification, s.restart_after)
        if out.dirty:
            self.schedule_process()

    def _stale_expired(self, name: str) -> None:
        self._stale_timers.pop(name, None)
        self._execute(self.rib.stale_expired(name))

    def peer_named(self, name: str) -> Peer:
        for p in self.peers:
            if p.cfg.name == name:
                return p
        raise KeyError(name)

    # ------------------------------------------------------------------ convergence

    def _check_converged(self) -> None:
        if self.converged_at is not None or not self.consumers:
            return
        for p in self.peers:
            if p.enabled and (p.state is not State.ESTABLISHED or not self.rib.eor_complete(p.cfg.name)):
                return
        self._converged("End-of-RIB from every peer")

    async def _convergence_deadline(self) -> None:
        await asyncio.sleep(self.config.convergence_timeout)
        self._converged(f"convergence timeout {self.config.convergence_timeout}s")

    def _converged(self, why: str) -> None:
        if self.converged_at is not None:
            return
        self.converged_at = time.time()
        if self.restarting:
            # RFC 4724: the restart is over; OPENs from now on carry no Restart State bit,
            # and `show status` says so.
            self.restarting = False
            for p in self.peers:
                p.refresh_session_config()
        self.process()
        while self.rib.dirty() and not self.stopping:  # once, at convergence: consumers see the whole table
            self.process()
        log.info("RIB converged (%s)", why)
        for c in self.consumers:
            c.rib_converged(self.rib)

    # ------------------------------------------------------------------ decision runs

    def schedule_process(self) -> None:
        if self._process_handle is None and not self.stopping:
            self._process_handle = asyncio.get_running_loop().call_soon(self.process)

    def process(self) -> None:
        """One decision run: consumers get the changes now, peers after the MRAI."""
        if self._process_handle is not None:
            self._process_handle.cancel()
            self._process_handle = None
        if self.stopping:
            return
        changed = self.rib.process(DECISION_CHUNK)
        for fam, dests in changed:
            for c in self.consumers:
                if fam in c.families:
                    c.rib_changed(fam, dests)
        if self.rib.dirty():
            self.schedule_process()  # the rest in the next turn: keepalives and the API go first
        if not self.rib.pending_out():
            return
        if self.config.mrai <= 0:
            self.drain()
        elif self._drain_handle is None:
            self._drain_handle = asyncio.get_running_loop().call_later(self.config.mrai, self.drain)

    def drain(self) -> None:
        """Send what is staged in every Adj-RIB-Out."""
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        if self.stopping:
            return
        for name, chunks in self.rib.drain().items():
            self.peer_named(name).send_raw(chunks)

    def peer_interfaces(self) -> dict[str, str]:
        """Neighbour name -> interface (for link-local next hops in the FIB)."""
        return {p.cfg.name: p.cfg.interface for p in self.peers if p.cfg.interface}


class _Inbound(asyncio.Protocol):
    """Listener protocol: find the neighbour, then hand the connection over.
    ``link``: the interface of a link-local listener (:meth:`Speaker._listen_on_links`)."""

    def __init__(self, speaker: Speaker, link: str | None = None) -> None:
        self.speaker = speaker
        self.link = link
        self.proto: _Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection
        sock = transport.get_extra_info("socket")
        peername = sock.getpeername()
        addr = peername[0].split("%")[0]
        scope = peername[3] if len(peername) >= 4 else 0
        peer = self.speaker.peer_for(addr, scope)
        if peer is None:
            # Anyone can connect: one line per address per minute, every refusal counted.
            self.speaker.refused_unknown += 1
            left_out = self.speaker._refusal_log.take(addr)
            if left_out is not None:
                more = f" ({left_out} more from it since the last line)" if left_out else ""
                log.info("refusing connection from unknown peer %s%s", addr, more)
            transport.abort()
            return
        if peer.cfg.unnumbered and peer.cfg.password and self.link != peer.cfg.interface:
            # Its key is on its interface's own listener only: this one never checked it.
            self.speaker.refused_unknown += 1
            if self.speaker._refusal_log.take(addr) is not None:
                log.info("%s: refusing connection from %s: not through the TCP-MD5 listener of %s", peer.cfg.name,
                         addr, peer.cfg.interface)
            transport.abort()
            return
        self.proto = _Protocol(peer)
        self.proto.transport = transport
        peer.accept(self.proto)

    def data_received(self, data: bytes) -> None:
        if self.proto is not None:
            self.proto.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.proto is not None:
            self.proto.connection_lost(exc)


__all__ = ["Speaker", "Source"]
