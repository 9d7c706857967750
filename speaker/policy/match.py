"""Match conditions: the ``match:`` block of a policy term.

Each condition is a small frozen object with ``test(path) -> bool``.  A :class:`Match`
holds every condition a term gave; all of them must hold.  Within one condition a
list means any-of.  Values are parsed and compiled once, in :mod:`.parse`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..table.path import Path
from ..wire.attributes import LargeCommunity
from ..wire.constants import Family
from ..wire.extcommunity import ExtCommunity
from ..wire.nlri import VpnPrefix
from ..wire.rd import RouteDistinguisher
from .prefix_list import PrefixList


class Condition:
    """Base of all match conditions.  ``key`` is the config key it came from."""

    key = ""

    def test(self, path: Path) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class FamilyIn(Condition):
    families: frozenset[Family]
    key = "family"

    def test(self, path: Path) -> bool:
        return path.family in self.families


@dataclass(frozen=True, slots=True)
class PrefixIn(Condition):
    """The route's prefix (for VPN routes the prefix inside the RD) matches the list."""

    prefixes: PrefixList
    key = "prefix"

    def test(self, path: Path) -> bool:
        return self.prefixes.matches(path.prefix)


@dataclass(frozen=True, slots=True)
class NextHopIn(Condition):
    """The next hop's address lies inside one of the listed networks."""

    prefixes: PrefixList
    key = "next-hop-in"

    def test(self, path: Path) -> bool:
        nh = path.next_hop
        return nh is not None and self.prefixes.contains_address(nh.address)


@dataclass(frozen=True, slots=True)
class AnyOf(Condition):
    """The path carries at least one of ``values`` in the list ``values_of(path)`` gives:
    communities, large communities or extended communities (route targets)."""

    values: frozenset[object]
    values_of: Callable[[Path], tuple[object, ...]]

    @property
    def key(self) -> str:  # type: ignore[override]
        return _ANY_OF_KEYS[self.values_of]

    def test(self, path: Path) -> bool:
        return not self.values.isdisjoint(self.values_of(path))


def communities_of(path: Path) -> tuple[int, ...]:
    return path.communities


def large_communities_of(path: Path) -> tuple[LargeCommunity, ...]:
    return path.large_communities


def ext_communities_of(path: Path) -> tuple[ExtCommunity, ...]:
    return path.ext_communities


_ANY_OF_KEYS: dict[Callable[[Path], tuple[object, ...]], str] = {
    communities_of: "community", large_communities_of: "large-community", ext_communities_of: "route-target"}


@dataclass(frozen=True, slots=True)
class RdIn(Condition):
    """Only VPN routes have a route distinguisher; other routes never match."""

    rds: frozenset[RouteDistinguisher]
    key = "rd"

    def test(self, path: Path) -> bool:
        return type(path.key) is VpnPrefix and path.key.rd in self.rds


@dataclass(frozen=True, slots=True)
class AsPathRegex(Condition):
    """``re.search`` over the AS path as ``show`` prints it: ``"65001 65002 {65003 65004}"``."""

    patterns: tuple[re.Pattern[str], ...]
    key = "as-path-regex"

    def test(self, path: Path) -> bool:
        text = str(path.as_path)
        return any(p.search(text) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class AsPathContains(Condition):
    asns: frozenset[int]
    key = "as-path-contains"

    def test(self, path: Path) -> bool:
        return not self.asns.isdisjoint(path.as_path.asns())


@dataclass(frozen=True, slots=True)
class AsPathLength(Condition):
    """AS path length as best-path selection counts it (RFC 4271 9.1.2.2: a set counts one)."""

    ge: int
    le: int
    key = "as-path-length"

    def test(self, path: Path) -> bool:
        return self.ge <= path.as_path.path_length() <= self.le


@dataclass(frozen=True, slots=True)
class OriginIn(Condition):
    origins: frozenset[int]
    key = "origin"

    def test(self, path: Path) -> bool:
        return path.origin in self.origins


@dataclass(frozen=True, slots=True)
class SourceIn(Condition):
    """The neighbour the route came from, by its configured name (``local`` for own routes)."""

    names: frozenset[str]
    key = "source"

    def test(self, path: Path) -> bool:
        return path.source.name in self.names


@dataclass(frozen=True, slots=True)
class Match:
    """All of ``conditions`` must hold.  No conditions: every route matches."""

    conditions: tuple[Condition, ...] = ()

    def test(self, path: Path) -> bool:
        for c in self.conditions:
            if not c.test(path):
                return False
        return True

    def compiled(self) -> Callable[[Path], bool] | None:
        """The fastest equivalent of :meth:`test`; ``None`` when every path matches."""
        tests = [c.test for c in self.conditions]
        if not tests:
            return None
        if len(tests) == 1:
            return tests[0]
        if len(tests) == 2:
            first, second = tests
            return lambda path: first(path) and second(path)
        return self.test
