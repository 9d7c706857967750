"""The speaker's API methods, one function per request (registered by :func:`bgp_handlers`).

Views of large tables (Loc-RIB, Adj-RIB-In/Out) are answered as a
:class:`~speaker.api.Stream` built from a snapshot of the destination list: the event
loop runs between chunks, so sessions keep their keepalives while a million routes
are listed.  Large announcements are validated and applied in chunks for the same
reason.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from .api import Handler, Params, Stream, chunked
from .errors import ApiError
from .origination import LocalRoute, parse_route, parse_route_key
from .peer import Peer
from .routes import RouteView, path_view
from .server import Speaker
from .session.events import State
from .session.negotiated import Negotiated
from .table.adj_rib_in import AdjRibIn
from .table.path import Key
from .table.rib import Destination
from .wire.constants import SUPPORTED_FAMILIES, Family
from .wire.nlri import VpnPrefix
from .wire.route_refresh import RouteRefresh

BULK_CHUNK = 5_000  # routes validated or applied between two turns of the event loop


def _family(text: Any) -> Family:
    try:
        return Family.parse(str(text))
    except ValueError as e:
        raise ApiError(f"family: {e}") from None


def _families(params: Params, default: list[Family]) -> list[Family]:
    return [_family(params["family"])] if params.get("family") else default


def _limit(params: Params) -> int | None:
    v = params.get("limit")
    if v is None or v == "" or v == 0:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ApiError(f"limit: {v!r} is not a non-negative integer")
    return v


def _routes(params: Params) -> list[Any]:
    routes = params.get("routes")
    if not isinstance(routes, list):
        raise ApiError(f"routes: {routes!r} is not a list of route objects")
    return routes


def find_peer(speaker: Speaker, key: str) -> Peer:
    for p in speaker.peers:
        if key in (p.cfg.name, p.cfg.address, p.cfg.interface, p.discovered_address, p.cfg.description):
            return p
    known = ", ".join(p.cfg.name for p in speaker.peers) or "none configured"
    raise ApiError(f"neighbor: {key!r} is not a configured neighbour (known: {known})")


def _caps(neg: Negotiated) -> dict[str, Any]:
    return {
        "four_octet_as": neg.four_octet_as,
        "route_refresh": neg.route_refresh,
        "enhanced_route_refresh": neg.enhanced_route_refresh,
        "extended_message": neg.extended_message,
        "extended_next_hop": sorted(f.name for f in neg.extended_next_hop),
        "addpath_receive": sorted(f.name for f in neg.addpath_receive),
        "graceful_restart": bool(neg.peer_graceful_restart),
    }


def neighbor_view(speaker: Speaker, p: Peer) -> dict[str, Any]:
    s = p.session
    neg = s.negotiated
    pr = speaker.rib.peers[p.cfg.name]
    fams = sorted(neg.families) if neg else []
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
        "received": {f.name: pr.rib_in.count(f) for f in fams},
        "received_pre_policy": pr.rib_in_pre.counts() if pr.rib_in_pre is not None else None,
        # routes of families the session did not negotiate: counted, never stored (RFC 4760 7)
        "ignored_families": dict(sorted(pr.ignored_families.items())),
        "advertised": {f.name: pr.rib_out.count(f) for f in fams},
        "end_of_rib_received": sorted(f.name for f in pr.eor_received),
        "stale": pr.stale_count(),
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
        "import_policy": speaker.import_policy_name(p.cfg),
        "export_policy": speaker.export_policy_name(p.cfg),
        "max_prefix": p.cfg.max_prefix.limit if p.cfg.max_prefix else None,
    }


def status(speaker: Speaker, params: Params) -> dict[str, Any]:
    return {"router_id": speaker.config.router_id, "asn": speaker.config.asn, "role": speaker.config.role,
            "uptime": time.time() - speaker.started,
            "neighbors": len(speaker.peers),
            "established": sum(p.state is State.ESTABLISHED for p in speaker.peers),
            "listen_port": speaker.listen_port, "restarting": speaker.restarting,
            "converged": speaker.converged_at is not None,
            "loc_rib": dict(speaker.rib.counts())}


def neighbors(speaker: Speaker, params: Params) -> list[dict[str, Any]]:
    return [neighbor_view(speaker, p) for p in speaker.peers]


def neighbor(speaker: Speaker, params: Params) -> dict[str, Any]:
    return neighbor_view(speaker, find_peer(speaker, str(params.get("neighbor", ""))))


def _prefix_text(key: Key) -> str:
    return str(key.prefix if type(key) is VpnPrefix else key)


def _loc_rib_rows(speaker: Speaker, fams: list[Family], prefix: str | None, limit: int | None,
                  local_only: bool = False) -> Iterator[dict[str, Any]]:
    n = 0
    valid = speaker.rib.valid
    for fam in fams:
        snapshot: list[Destination] = list(speaker.rib.ribs[fam].dests.values())
        for d in snapshot:
            if prefix and _prefix_text(d.key) != prefix:
                continue
            best = d.best
            multi = d.multipath
            for p in d.paths:
                if local_only:
                    if not p.source.is_local:
                        continue
                    row = path_view(p, source="local")
                else:
                    row = path_view(p, source=p.source.name, best=p is best, multipath=p in multi,
                                    stale=p.stale, valid=valid(p))
                yield row.to_dict()
                n += 1
                if limit and n >= limit:
                    return


def rib(speaker: Speaker, params: Params) -> Stream:
    fams = _families(params, list(SUPPORTED_FAMILIES))
    prefix = params.get("prefix") or None
    return Stream(chunked(_loc_rib_rows(speaker, fams, str(prefix) if prefix else None, _limit(params))))


def local_routes(speaker: Speaker, params: Params) -> Stream:
    fams = _families(params, list(SUPPORTED_FAMILIES))
    return Stream(chunked(_loc_rib_rows(speaker, fams, None, None, local_only=True)))


def _adj_in_rows(table: AdjRibIn, fams: list[Family], limit: int | None) -> Iterator[dict[str, Any]]:
    n = 0
    for f in fams:
        for r in list(table.tables.get(f, {}).values()):
            yield path_view(r).to_dict()
            n += 1
            if limit and n >= limit:
                return


def rib_received(speaker: Speaker, params: Params, pre_policy: bool = False) -> Stream:
    p = find_peer(speaker, str(params.get("neighbor", "")))
    pr = speaker.rib.peers[p.cfg.name]
    table = pr.rib_in_pre if pre_policy else pr.rib_in
    if table is None:
        raise ApiError(f"neighbor: {p.cfg.name!r} does not keep pre-policy routes (set keep-pre-policy)")
    fams = _families(params, sorted(table.tables))
    return Stream(chunked(_adj_in_rows(table, fams, _limit(params))))


def rib_advertised(speaker: Speaker, params: Params) -> Stream:
    p = find_peer(speaker, str(params.get("neighbor", "")))
    out = speaker.rib.peers[p.cfg.name].rib_out
    fams = _families(params, sorted(out.tables))
    rows = (path_view(x).to_dict() for f in fams for x in list(out.tables.get(f, {}).values()))
    return Stream(chunked(rows))


def rib_received_count(speaker: Speaker, params: Params) -> dict[str, int]:
    p = find_peer(speaker, str(params.get("neighbor", "")))
    return speaker.rib.peers[p.cfg.name].rib_in.counts()


async def _parse_all(specs: list[Any]) -> list[LocalRoute]:
    """Every route validated before any is applied; the loop runs between chunks."""
    routes = []
    for start in range(0, len(specs), BULK_CHUNK):
        routes += [parse_route(s, f"routes[{start + i}]") for i, s in enumerate(specs[start:start + BULK_CHUNK])]
        await asyncio.sleep(0)
    return routes


async def announce(speaker: Speaker, params: Params) -> dict[str, int]:
    routes = await _parse_all(_routes(params))
    for start in range(0, len(routes), BULK_CHUNK):
        speaker.announce(routes[start:start + BULK_CHUNK])
        if len(routes) > BULK_CHUNK:
            speaker.process()  # decide and send this chunk before the next
            await asyncio.sleep(0)
    return {"announced": len(routes)}


def withdraw(speaker: Speaker, params: Params) -> dict[str, int]:
    keys = [parse_route_key(s, f"routes[{i}]") for i, s in enumerate(_routes(params))]
    return {"withdrawn": speaker.withdraw(keys)}


def route_refresh(speaker: Speaker, params: Params) -> dict[str, bool]:
    p = find_peer(speaker, str(params.get("neighbor", "")))
    fam = _family(params.get("family", "ipv4"))
    neg = p.session.negotiated
    if p.state is not State.ESTABLISHED or neg is None:
        raise ApiError(f"neighbor: {p.cfg.name!r} is {p.state.value}, not Established")
    if not neg.route_refresh:
        raise ApiError(f"neighbor: {p.cfg.name!r} did not announce the route refresh capability")
    if fam not in neg.families:
        raise ApiError(f"family: {fam.name!r} was not negotiated with {p.cfg.name!r}")
    p.send(RouteRefresh(fam))
    return {"sent": True}


def reset(speaker: Speaker, params: Params) -> dict[str, str]:
    p = find_peer(speaker, str(params.get("neighbor", "")))
    p.enabled = True
    p.reset(str(params.get("message", "")))
    return {"reset": p.cfg.name}


def bgp_handlers(speaker: Speaker) -> dict[str, Handler]:
    """The speaker's methods, bound to ``speaker``."""
    return {
        "status": partial(status, speaker),
        "neighbors": partial(neighbors, speaker),
        "neighbor": partial(neighbor, speaker),
        "rib": partial(rib, speaker),
        "rib_received": partial(rib_received, speaker),
        "rib_received_pre": partial(rib_received, speaker, pre_policy=True),
        "rib_advertised": partial(rib_advertised, speaker),
        "rib_received_count": partial(rib_received_count, speaker),
        "local_routes": partial(local_routes, speaker),
        "announce": partial(announce, speaker),
        "withdraw": partial(withdraw, speaker),
        "route_refresh": partial(route_refresh, speaker),
        "reset": partial(reset, speaker),
    }


__all__ = ["bgp_handlers", "find_peer", "neighbor_view", "RouteView"]
