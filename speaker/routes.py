"""Plain route records that cross from the table layer to the API and CLI."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .wire.attributes import (
    Aggregator,
    AsPath,
    AtomicAggregate,
    ClusterList,
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LocalPref,
    Med,
    MpNextHop,
    Origin,
    OriginatorId,
    PathAttribute,
    UnknownAttribute,
    community_str,
)
from .table.path import Path
from .wire.constants import Family
from .wire.nlri import Nlri, PathId, VpnPrefix


@dataclass(frozen=True)
class RouteView:
    """One path as an operator sees it (``l3fab show rib ... --json``)."""

    family: str
    prefix: str
    next_hop: str | None
    rd: str | None = None
    labels: tuple[int, ...] = ()
    path_id: int | None = None
    link_local_next_hop: str | None = None
    origin: str | None = None
    as_path: str = ""
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    ext_communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    originator_id: str | None = None
    cluster_list: tuple[str, ...] = ()
    atomic_aggregate: bool = False
    aggregator: str | None = None
    unknown_attributes: tuple[str, ...] = field(default=())
    source: str | None = None
    best: bool | None = None
    multipath: bool | None = None
    stale: bool = False
    valid: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        # every field is a scalar or a tuple of scalars: no deep copy needed (asdict is 10x slower)
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(RouteView))


def route_view(family: Family, nlri: Nlri, next_hop: MpNextHop | None, labels: tuple[int, ...],
               attributes: tuple[PathAttribute, ...], **extra: Any) -> RouteView:
    path_id = None
    if type(nlri) is PathId:
        path_id, nlri = nlri.path_id, nlri.nlri
    rd = None
    if type(nlri) is VpnPrefix:
        rd, pfx = str(nlri.rd), nlri.prefix
    else:
        pfx = nlri
    v: dict[str, Any] = dict(
        family=family.name, prefix=str(pfx), rd=rd, labels=tuple(labels), path_id=path_id,
        next_hop=next_hop.address if next_hop else None,
        link_local_next_hop=next_hop.link_local if next_hop else None,
    )
    unknown = []
    for a in attributes:
        # type(a) in every test (not once, in a variable): that is what narrows ``a`` for mypy
        if type(a) is Origin:
            v["origin"] = {0: "igp", 1: "egp", 2: "incomplete"}.get(a.origin, str(a.origin))
        elif type(a) is AsPath:
            v["as_path"] = str(a)
        elif type(a) is Med:
            v["med"] = a.med
        elif type(a) is LocalPref:
            v["local_pref"] = a.local_pref
        elif type(a) is Communities:
            v["communities"] = tuple(community_str(c) for c in a.communities)
        elif type(a) is ExtendedCommunities:
            v["ext_communities"] = tuple(str(c) for c in a.communities)
        elif type(a) is LargeCommunities:
            v["large_communities"] = tuple(str(c) for c in a.communities)
        elif type(a) is OriginatorId:
            v["originator_id"] = a.originator
        elif type(a) is ClusterList:
            v["cluster_list"] = a.cluster_ids
        elif type(a) is AtomicAggregate:
            v["atomic_aggregate"] = True
        elif type(a) is Aggregator:
            v["aggregator"] = f"{a.asn} {a.address}"
        elif type(a) is UnknownAttribute:
            unknown.append(f"type {a.code} flags 0x{a.attr_flags:02x} {a.raw[:32].hex()}")
    v["unknown_attributes"] = tuple(unknown)
    v.update(extra)
    return RouteView(**v)


def path_view(p: Path, **extra: Any) -> RouteView:
    """A table path as an operator sees it."""
    key = p.key
    wire = VpnPrefix(key.rd, key.prefix, p.labels) if type(key) is VpnPrefix else key
    nlri: Nlri = PathId(p.path_id, wire) if p.path_id else wire
    return route_view(p.family, nlri, p.next_hop, p.labels, p.attributes, **extra)


__all__ = ["RouteView", "route_view", "path_view"]
