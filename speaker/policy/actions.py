"""What a term does: its ``set:`` operations and its decision (accept, reject, next).

Paths are frozen: the sets of one term edit a :class:`Draft`, which becomes one new
:class:`Path`.  ``next-hop: self`` and
``next-hop: unchanged`` depend on the session the route goes out on, which policy
does not know; they are recorded as a directive on the result for the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar, cast

from ..table.path import Path
from ..wire.attributes import (
    AsPath,
    Communities,
    ExtendedCommunities,
    LargeCommunities,
    LocalPref,
    Med,
    MpNextHop,
    Origin,
    PathAttribute,
)

A = TypeVar("A", bound=PathAttribute)


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


_ATTRIBUTES = Path._fields.index("attributes")
_NEXT_HOP = Path._fields.index("next_hop")


class Draft:
    """The changes one term's sets make to a path, built into a new :class:`Path` once.

    ``Path.with_attribute`` per set would copy the path for every set of every route;
    the draft copies it once per term.
    """

    __slots__ = ("path", "changes", "next_hop")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changes: dict[type[PathAttribute], PathAttribute | None] = {}  # None: remove
        self.next_hop = path.next_hop

    def get(self, cls: type[A]) -> A | None:
        if cls in self.changes:
            return cast("A | None", self.changes[cls])  # put() files each attribute under its own type
        found: A | None = self.path.get(cls)
        return found

    def put(self, attr: PathAttribute) -> None:
        self.changes[type(attr)] = attr

    def remove(self, cls: type[PathAttribute]) -> None:
        self.changes[cls] = None

    def build(self) -> Path:
        changes = self.changes
        attributes = tuple(a for a in self.path.attributes if type(a) not in changes) + tuple(
            a for a in changes.values() if a is not None)
        values = list(self.path)
        values[_ATTRIBUTES] = attributes
        values[_NEXT_HOP] = self.next_hop
        return Path._make(values)


class SetOperation:
    """Base of the ``set:`` operations.  ``key`` is the config key it came from."""

    key = ""

    def apply(self, draft: Draft, ctx: EvalContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def apply_sets(path: Path, sets: tuple[SetOperation, ...], ctx: EvalContext) -> Path:
    """``path`` with ``sets`` applied in order, as one new :class:`Path`."""
    draft = Draft(path)
    for op in sets:
        op.apply(draft, ctx)
    return draft.build()


@dataclass(frozen=True, slots=True)
class SetAttribute(SetOperation):
    """Replace one attribute: ``LocalPref(200)``, ``Med(50)``, ``Origin(0)``."""

    attribute: PathAttribute

    @property
    def key(self) -> str:  # type: ignore[override]
        return _SET_KEYS[type(self.attribute)]

    def apply(self, draft: Draft, ctx: EvalContext) -> None:
        draft.put(self.attribute)


_SET_KEYS: dict[type[PathAttribute], str] = {LocalPref: "local-pref", Med: "med", Origin: "origin"}


@dataclass(frozen=True, slots=True)
class SetNextHop(SetOperation):
    """An explicit address.  (``self``/``unchanged`` are :class:`NextHopDirective`.)"""

    address: str
    key = "next-hop"

    def apply(self, draft: Draft, ctx: EvalContext) -> None:
        draft.next_hop = MpNextHop(self.address)


@dataclass(frozen=True, slots=True)
class EditList(SetOperation):
    """``add`` / ``remove`` (or ``remove_all``) / ``replace`` on one list attribute.

    ``replace`` excludes the other two; otherwise removal comes first, then additions
    are appended in the configured order, without duplicates.  An empty result removes
    the attribute.  For route targets only route targets are touched; other extended
    communities (route origins, colours) are kept.
    """

    attribute: type[Communities | LargeCommunities | ExtendedCommunities]
    add: tuple[Any, ...] = ()  # ints, LargeCommunity or ExtCommunity values, as ``attribute`` holds
    remove: frozenset[Any] = frozenset()
    remove_all: bool = False
    replace: tuple[Any, ...] | None = None

    @property
    def key(self) -> str:  # type: ignore[override]
        return _EDIT_KEYS[self.attribute]

    def apply(self, draft: Draft, ctx: EvalContext) -> None:
        current = draft.get(self.attribute)
        values: tuple[Any, ...] = current.communities if current is not None else ()
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
        if values:
            draft.put(self.attribute(tuple(dict.fromkeys(values))))
        else:
            draft.remove(self.attribute)


_EDIT_KEYS: dict[type[PathAttribute], str] = {Communities: "communities", LargeCommunities: "large-communities",
              ExtendedCommunities: "route-targets"}


@dataclass(frozen=True, slots=True)
class AsPathPrepend(SetOperation):
    """Prepend ``asn`` (the local AS from the context when ``None``) ``count`` times."""

    count: int
    asn: int | None = None
    key = "as-path-prepend"

    def apply(self, draft: Draft, ctx: EvalContext) -> None:
        asn = self.asn if self.asn is not None else ctx.local_as
        if not asn:
            raise ValueError("as-path-prepend without asn needs EvalContext.local_as")
        as_path = draft.get(AsPath) or AsPath()
        for _ in range(self.count):
            as_path = as_path.prepend(asn)
        draft.put(as_path)
