"""What a term does: its ``set:`` operations and its decision (accept, reject, next).

Paths are frozen, so every set returns a new :class:`Path`.  ``next-hop: self`` and
``next-hop: unchanged`` depend on the session the route goes out on, which policy
does not know; they are recorded as a directive on the result for the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..table.path import Path
from ..wire.attributes import (
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LocalPref,
    Med,
    MpNextHop,
    Origin,
    PathAttribute,
)


class Action(Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    NEXT = "next"  # apply the sets and go on with the next term


class NextHopDirective(Enum):
    """A next hop only the caller can resolve."""

    SELF = "self"  # the local address of the session the route is sent on
    UNCHANGED = "unchanged"  # keep the next hop even where the caller would rewrite it


@dataclass(frozen=True)
class EvalContext:
    """What evaluation needs from outside the path: the local AS (for ``as-path-prepend``
    without an ``asn``)."""

    local_as: int = 0


DEFAULT_CONTEXT = EvalContext()


class SetOperation:
    """Base of the ``set:`` operations.  ``key`` is the config key it came from."""

    key = ""

    def apply(self, path: Path, ctx: EvalContext) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class SetAttribute(SetOperation):
    """Replace one attribute: ``LocalPref(200)``, ``Med(50)``, ``Origin(0)``."""

    attribute: PathAttribute

    @property
    def key(self) -> str:  # type: ignore[override]
        return _SET_KEYS[type(self.attribute)]

    def apply(self, path: Path, ctx: EvalContext) -> Path:
        return path.with_attribute(self.attribute)


_SET_KEYS = {LocalPref: "local-pref", Med: "med", Origin: "origin"}


@dataclass(frozen=True, slots=True)
class SetNextHop(SetOperation):
    """An explicit address.  (``self``/``unchanged`` are :class:`NextHopDirective`.)"""

    address: str
    key = "next-hop"

    def apply(self, path: Path, ctx: EvalContext) -> Path:
        return path.with_next_hop(MpNextHop(self.address))


@dataclass(frozen=True, slots=True)
class EditList(SetOperation):
    """``add`` / ``remove`` (or ``remove_all``) / ``replace`` on one list attribute.

    ``replace`` excludes the other two; otherwise removal comes first, then additions
    are appended in the configured order, without duplicates.  An empty result removes
    the attribute.  For route targets only route targets are touched; other extended
    communities (route origins, colours) are kept.
    """

    attribute: type  # Communities, LargeCommunities or ExtendedCommunities
    add: tuple = ()
    remove: frozenset = frozenset()
    remove_all: bool = False
    replace: tuple | None = None

    @property
    def key(self) -> str:  # type: ignore[override]
        return _EDIT_KEYS[self.attribute]

    def apply(self, path: Path, ctx: EvalContext) -> Path:
        current = path.get(self.attribute)
        values = current.communities if current is not None else ()
        rt_only = self.attribute is ExtendedCommunities
        if rt_only:
            kept_other = tuple(c for c in values if not c.is_route_target)
            values = tuple(c for c in values if c.is_route_target)
        if self.replace is not None:
            values = self.replace
        else:
            if self.remove_all:
                values = ()
            elif self.remove:
                values = tuple(c for c in values if c not in self.remove)
            if self.add:
                values = values + tuple(c for c in self.add if c not in values)
        if rt_only:
            values = kept_other + values
        if not values:
            return path.without(self.attribute)
        return path.with_attribute(self.attribute(tuple(dict.fromkeys(values))))


_EDIT_KEYS = {Communities: "communities", LargeCommunities: "large-communities",
              ExtendedCommunities: "route-targets"}


@dataclass(frozen=True, slots=True)
class AsPathPrepend(SetOperation):
    """Prepend ``asn`` (the local AS from the context when ``None``) ``count`` times."""

    count: int
    asn: int | None = None
    key = "as-path-prepend"

    def apply(self, path: Path, ctx: EvalContext) -> Path:
        asn = self.asn if self.asn is not None else ctx.local_as
        if not asn:
            raise ValueError("as-path-prepend without asn needs EvalContext.local_as")
        as_path = path.as_path
        for _ in range(self.count):
            as_path = as_path.prepend(asn)
        return path.with_attribute(as_path)
