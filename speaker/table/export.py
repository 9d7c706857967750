"""What a best path looks like when sent to one peer (RFC 4271 section 9.1.3, RFC 4456).

- never back to the neighbour it came from, nor to an eBGP neighbour whose AS is
  already in the AS_PATH (it would drop it anyway);
- iBGP-learned paths go to iBGP peers only through route reflection: from a client
  to everyone, from a non-client to clients; ORIGINATOR_ID and CLUSTER_LIST are set;
- eBGP: our AS prepended; LOCAL_PREF, MED learned from another AS, ORIGINATOR_ID and
  CLUSTER_LIST removed; unicast next hop = ourselves; VPN next hop unchanged (the
  endpoint's SID must survive every hop), minus any link-local part, which only means
  something on the link it was received on;
- iBGP: LOCAL_PREF added where missing; next hop unchanged unless it is link-local.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ..wire.attributes import (
    AsPath,
    ClusterList,
    LocalPref,
    Med,
    MpNextHop,
    OriginatorId,
    PathAttribute,
    UnknownAttribute,
)
from ..wire.constants import IPV4_UNICAST, Family
from .path import Path


@dataclass(frozen=True)
class ExportContext:
    peer_name: str
    peer_as: int
    local_as: int
    router_id: str
    families: frozenset[Family]
    self_next_hop: MpNextHop | None
    ibgp: bool = False
    rr_client: bool = False
    cluster_id: str | None = None
    next_hop_self: bool = False  # also for iBGP / VPN (configured per neighbour)
    extended_next_hop: frozenset[Family] = frozenset()  # RFC 8950, as negotiated


def _strip_link_local(nh: MpNextHop | None) -> MpNextHop | None:
    if nh is None or nh.link_local is None:
        return nh
    return MpNextHop(nh.address)


def export_path(path: Path, ctx: ExportContext) -> Path | None:
    if path.family not in ctx.families or path.source.name == ctx.peer_name:
        return None
    src = path.source
    attrs: Sequence[PathAttribute] | None
    if ctx.ibgp:
        attrs = list(path.attributes)
        if src.ibgp and not (src.rr_client or ctx.rr_client):
            return None  # iBGP split horizon: no reflection between non-clients
        if src.ibgp:
            if path.originator_id is None:
                attrs.append(OriginatorId(src.router_id))
            cl = path.cluster_list
            attrs = [a for a in attrs if type(a) is not ClusterList]
            attrs.append(ClusterList((ctx.cluster_id or ctx.router_id,) + cl))
        if path.get(LocalPref) is None:
            attrs.append(LocalPref(100))
        nh = path.next_hop
        if nh is None or ctx.next_hop_self or nh.address.startswith("fe80:"):
            nh = ctx.self_next_hop
        else:
            nh = _strip_link_local(nh)
    else:
        cached = _EBGP.get(id(path.attributes))
        key = (ctx.local_as, ctx.peer_as, src.is_local)
        if cached is not None and cached[0] is path.attributes and cached[1] == key:
            attrs = cached[2]
        else:
            attrs = _ebgp_attributes(path, ctx, src.is_local)
            if len(_EBGP) > 50_000:
                _EBGP.clear()
            _EBGP[id(path.attributes)] = (path.attributes, key, attrs)
        if attrs is None:
            return None
        if path.family.is_vpn and path.next_hop is not None and not ctx.next_hop_self:
            nh = _strip_link_local(path.next_hop)
        else:
            nh = ctx.self_next_hop
    if nh is None:
        return None
    if path.family.afi == 2 and not nh.is_ipv6:
        # An IPv6 route over an IPv4 session: the IPv4-mapped form of our address
        # (RFC 4659 section 3.2.1.2, RFC 4798); a 4-octet next hop is invalid for AFI 2.
        nh = MpNextHop(f"::ffff:{nh.address}")
    if path.family == IPV4_UNICAST and nh.is_ipv6 and IPV4_UNICAST not in ctx.extended_next_hop:
        # RFC 8950 section 4: no IPv6 next hop for IPv4 unicast unless the peer announced
        # the extended next hop capability.  VPN-IPv4 is exempt: FRR accepts IPv6 next
        # hops there without announcing it, and the fabric's SIDs are IPv6.
        return None
    return tuple.__new__(Path, (path.family, path.key, nh, tuple(attrs), path.labels, path.source, path.path_id,
                                path.stale))


# eBGP attribute rewrites per attribute tuple: the paths of one UPDATE (and of one injected
# batch) share their attribute tuple, so the AS prepend and the filtering run once for all
# of them.  Keyed by identity and guarded by the object itself (kept alive in the entry).
# Entry: (the attribute tuple, (local AS, peer AS, source is local), the rewritten attributes).
_EBGP: dict[int, tuple[tuple[PathAttribute, ...], tuple[int, int, bool], tuple[PathAttribute, ...] | None]] = {}


def _ebgp_attributes(path: Path, ctx: ExportContext, src_local: bool) -> tuple[PathAttribute, ...] | None:
    """The attributes sent to an eBGP peer, or None when its AS is already in the path."""
    if ctx.peer_as in path.as_path.asns():
        return None
    out: list[PathAttribute] = []
    for a in path.attributes:
        t = type(a)
        if t is AsPath:
            out.append(cast(AsPath, a).prepend(ctx.local_as))
        elif t in (LocalPref, OriginatorId, ClusterList):
            continue
        elif t is Med and not src_local:
            continue
        elif t is UnknownAttribute:
            u = cast(UnknownAttribute, a)
            if u.transitive:
                out.append(u if src_local else u.passed_on())
        else:
            out.append(a)
    if path.get(AsPath) is None:
        out.append(AsPath.sequence(ctx.local_as))
    return tuple(out)
