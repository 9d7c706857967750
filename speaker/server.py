"""The speaker: listeners, one :class:`Peer` per neighbour, originated routes, API handlers."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time

from .config import NodeConfig
from .netutil import local_link_locals, set_gtsm, set_md5
from .origination import LocalRoute, RouteSpecError, encode_for_peer, encode_withdrawals, parse_route, parse_route_key, self_next_hop
from .peer import Peer, _Protocol
from .session.events import State
from .session.negotiated import Negotiated
from .wire.constants import Family
from .wire.route_refresh import SUBTYPE_BORR, SUBTYPE_EORR, SUBTYPE_REQUEST, RouteRefresh
from .wire.update import Update, end_of_rib

log = logging.getLogger("l3fab.speaker")


class ApiError(Exception):
    """A request the API refuses: the message names the field and value."""


class Speaker:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.peers: list[Peer] = [Peer(self, config, n) for n in config.neighbors]
        self.local_routes: dict[Family, dict] = {}
        self.started = time.time()
        self._servers: list[asyncio.base_events.Server] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
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
        for p in self.peers:
            p.start()

    async def stop(self) -> None:
        for srv in self._servers:
            srv.close()
        for p in self.peers:
            await p.stop("l3fab shutting down")
        await asyncio.sleep(0.05)  # let the Cease notifications flush

    @property
    def listen_port(self) -> int:
        for srv in self._servers:
            for s in srv.sockets:
                return s.getsockname()[1]
        return self.config.listen_port

    # ------------------------------------------------------------------ peer events

    def peer_for(self, address: str, scope: int) -> Peer | None:
        for p in self.peers:
            if p.matches(address, scope):
                return p
        return None

    def on_established(self, peer: Peer, neg: Negotiated) -> None:
        log.info("%s: established (AS %s, id %s, families %s)", peer.cfg.name, neg.peer_as, neg.peer_id,
                 ", ".join(sorted(f.name for f in neg.families)))
        self._send_table(peer, neg, sorted(neg.families), eor=True)

    def on_session_down(self, peer: Peer, reason: str) -> None:
        log.warning("%s: session down: %s", peer.cfg.name, reason)

    def on_update(self, peer: Peer, update: Update) -> None:
        pass

    def on_route_refresh(self, peer: Peer, rr: RouteRefresh) -> None:
        neg = peer.session.negotiated
        if neg is None or rr.subtype != SUBTYPE_REQUEST or rr.family not in neg.families:
            return
        log.info("%s: route refresh for %s", peer.cfg.name, rr.family.name)
        if neg.enhanced_route_refresh:
            peer.send(RouteRefresh(rr.family, SUBTYPE_BORR))
        self._send_table(peer, neg, [rr.family], eor=not neg.enhanced_route_refresh)
        if neg.enhanced_route_refresh:
            peer.send(RouteRefresh(rr.family, SUBTYPE_EORR))

    def _self_nh(self, peer: Peer):
        ll = None
        if peer.cfg.interface:
            lls = sorted(local_link_locals(peer.cfg.interface))
            ll = lls[0] if lls else None
        return self_next_hop(peer.local_address, ll)

    def _send_table(self, peer: Peer, neg: Negotiated, families, eor: bool) -> None:
        routes = [r for f in families for r in self.local_routes.get(f, {}).values()]
        chunks = encode_for_peer(routes, neg, self._self_nh(peer))
        if eor:
            chunks += [end_of_rib(f).encode(neg.codec) for f in families]
        if chunks:
            peer.send_raw(chunks)

    # ------------------------------------------------------------------ origination

    def announce(self, specs: list[dict]) -> int:
        routes = [parse_route(s, f"routes[{i}]") for i, s in enumerate(specs)]
        for r in routes:
            self.local_routes.setdefault(r.family, {})[r.key] = r
        for p in self.peers:
            neg = p.session.negotiated
            if p.state is State.ESTABLISHED and neg is not None:
                chunks = encode_for_peer(routes, neg, self._self_nh(p))
                if chunks:
                    p.send_raw(chunks)
        return len(routes)

    def withdraw(self, specs: list[dict]) -> int:
        gone: list[LocalRoute] = []
        for i, s in enumerate(specs):
            family, key = parse_route_key(s, f"routes[{i}]")
            old = self.local_routes.get(family, {}).pop(key, None)
            if old is not None:
                gone.append(old)
        for p in self.peers:
            neg = p.session.negotiated
            if p.state is State.ESTABLISHED and neg is not None and gone:
                p.send_raw(encode_withdrawals(gone, neg))
        return len(gone)

    # ------------------------------------------------------------------ API views

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
        }

    def handle(self, method: str, params: dict):
        """Dispatch one API request; raises :class:`ApiError` for bad input."""
        if method == "status":
            return {"router_id": self.config.router_id, "asn": self.config.asn, "uptime": time.time() - self.started,
                    "neighbors": len(self.peers), "established": sum(p.state is State.ESTABLISHED for p in self.peers),
                    "listen_port": self.listen_port,
                    "local_routes": {f.name: len(t) for f, t in self.local_routes.items()}}
        if method == "neighbors":
            return [self.neighbor_view(p) for p in self.peers]
        if method == "neighbor":
            return self.neighbor_view(self.find_peer(str(params.get("neighbor", ""))))
        if method == "rib_received":
            p = self.find_peer(str(params.get("neighbor", "")))
            fams = [_family(params["family"])] if params.get("family") else sorted(p.rib_in.tables)
            limit = params.get("limit")
            out = []
            for f in fams:
                for r in p.rib_in.routes(f):
                    out.append(r.to_dict())
                    if limit and len(out) >= int(limit):
                        return out
            return out
        if method == "rib_received_count":
            p = self.find_peer(str(params.get("neighbor", "")))
            return p.rib_in.counts()
        if method == "announce":
            return {"announced": self.announce(_routes(params))}
        if method == "withdraw":
            return {"withdrawn": self.withdraw(_routes(params))}
        if method == "local_routes":
            from .routes import route_view

            fams = [_family(params["family"])] if params.get("family") else sorted(self.local_routes)
            return [route_view(r.family, r.nlri, r.next_hop, getattr(r.nlri, "labels", ()), r.attributes).to_dict()
                    for f in fams for r in self.local_routes.get(f, {}).values()]
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
            p.reset(str(params.get("message", "")))
            return {"reset": p.cfg.name}
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
