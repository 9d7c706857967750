"""Paths: what the table layer stores and policy evaluates.

A :class:`Path` is one route to one destination from one source, immutable.  Its
``attributes`` never hold NEXT_HOP, MP_REACH_NLRI or MP_UNREACH_NLRI: the next hop is
the separate ``next_hop`` field and the destination is ``key``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from ..wire.attributes import (
    AsPath,
    ClusterList,
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    LocalPref,
    Med,
    MpNextHop,
    Origin,
    OriginatorId,
    PathAttribute,
)
from ..wire.constants import Family
from ..wire.extcommunity import ExtCommunity
from ..wire.nlri import Prefix, VpnPrefix

Key = Prefix | VpnPrefix  # VpnPrefix keys carry no labels: (rd, prefix)
A = TypeVar("A", bound=PathAttribute)


@dataclass(frozen=True)
class Source:
    """Where a path came from.  ``name`` is the neighbour name, or ``"local"``."""

    name: str
    address: str | None = None
    asn: int = 0
    router_id: str = "0.0.0.0"
    ibgp: bool = False
    rr_client: bool = False
    local_as: int = 0

    @property
    def is_local(self) -> bool:
        return self.name == "local"


LOCAL = Source("local")


class Path(NamedTuple):
    """Immutable and cheap to create (a tuple): one is made for every received route."""

    family: Family
    key: Key
    next_hop: MpNextHop | None
    attributes: tuple[PathAttribute, ...] = ()
    labels: tuple[int, ...] = ()
    source: Source = LOCAL
    path_id: int = 0
    stale: bool = False  # RFC 4724: kept across a peer restart, until End-of-RIB

    # ---------------------------------------------------------------- attribute access

    def get(self, cls: type[A]) -> A | None:
        """The attribute of exactly type ``cls``, or None."""
        for a in self.attributes:
            if type(a) is cls:
                return a
        return None

    def with_attribute(self, attr: PathAttribute) -> "Path":
        """A copy with ``attr`` replacing any attribute of the same type."""
        kept = tuple(a for a in self.attributes if type(a) is not type(attr))
        return self._replace(attributes=kept + (attr,))

    def without(self, cls: type[PathAttribute]) -> "Path":
        return self._replace(attributes=tuple(a for a in self.attributes if type(a) is not cls))

    def with_next_hop(self, nh: MpNextHop | None) -> "Path":
        return self._replace(next_hop=nh)

    @property
    def as_path(self) -> AsPath:
        return self.get(AsPath) or AsPath()

    @property
    def local_pref(self) -> int:
        lp = self.get(LocalPref)
        return lp.local_pref if lp is not None else 100

    @property
    def med(self) -> int:
        m = self.get(Med)
        return m.med if m is not None else 0

    @property
    def origin(self) -> int:
        o = self.get(Origin)
        return o.origin if o is not None else 2

    @property
    def communities(self) -> tuple[int, ...]:
        c = self.get(Communities)
        return c.communities if c is not None else ()

    @property
    def ext_communities(self) -> tuple[ExtCommunity, ...]:
        c = self.get(ExtendedCommunities)
        return c.communities if c is not None else ()

    @property
    def route_targets(self) -> tuple[ExtCommunity, ...]:
        return tuple(c for c in self.ext_communities if c.is_route_target)

    @property
    def large_communities(self) -> tuple[LargeCommunity, ...]:
        c = self.get(LargeCommunities)
        return c.communities if c is not None else ()

    @property
    def originator_id(self) -> str | None:
        o = self.get(OriginatorId)
        return o.originator if o is not None else None

    @property
    def cluster_list(self) -> tuple[str, ...]:
        c = self.get(ClusterList)
        return c.cluster_ids if c is not None else ()

    @property
    def prefix(self) -> Prefix:
        return self.key.prefix if type(self.key) is VpnPrefix else self.key
