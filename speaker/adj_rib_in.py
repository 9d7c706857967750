"""Adj-RIB-In: the routes one peer announced to us, per family, after RFC 7606 handling.

Storage is compact: each NLRI maps to one shared ``(attributes, next hop, labels)``
tuple, interned across UPDATEs, so 100,000 routes with a few attribute sets cost
little more than the dictionary itself.
"""
from __future__ import annotations

from collections.abc import Iterator

from .routes import RouteView, route_view
from .wire.constants import Family
from .wire.nlri import PathId, VpnPrefix
from .wire.update import Update


def _key(n):
    """RIB identity of an NLRI: labels belong to the path, not the destination."""
    t = type(n)
    if t is VpnPrefix:
        return VpnPrefix(n.rd, n.prefix) if n.labels else n
    if t is PathId:
        return PathId(n.path_id, _key(n.nlri))
    return n


class AdjRibIn:
    def __init__(self) -> None:
        self.tables: dict[Family, dict] = {}
        self._interned: dict = {}
        self.updates = 0
        self.faulty_updates = 0

    def _intern(self, path: tuple) -> tuple:
        return self._interned.setdefault(path, path)

    def apply(self, update: Update) -> tuple[int, int]:
        """Apply one UPDATE; returns (announced, withdrawn) NLRI counts."""
        self.updates += 1
        if update.faults:
            self.faulty_updates += 1
        announced = withdrawn = 0
        reach = update.reachable()
        if reach:
            attrs = update.path_attributes()
            for family, nh, nlri in reach:
                table = self.tables.get(family)
                if table is None:
                    table = self.tables[family] = {}
                if family.is_vpn:
                    # one shared path per label stack in this UPDATE (usually one)
                    by_labels: dict = {}
                    for n in nlri:
                        inner = n.nlri if type(n) is PathId else n
                        path = by_labels.get(inner.labels)
                        if path is None:
                            path = by_labels[inner.labels] = self._intern((attrs, nh, inner.labels))
                        table[_key(n)] = path
                else:
                    path = self._intern((attrs, nh, ()))
                    for n in nlri:
                        table[n] = path
                announced += len(nlri)
        for family, nlri in update.unreachable():
            table = self.tables.get(family)
            if table:
                pop = table.pop
                for n in nlri:
                    if pop(_key(n), None) is not None:
                        withdrawn += 1
        return announced, withdrawn

    def count(self, family: Family | None = None) -> int:
        if family is not None:
            return len(self.tables.get(family, ()))
        return sum(len(t) for t in self.tables.values())

    def counts(self) -> dict[str, int]:
        return {f.name: len(t) for f, t in self.tables.items()}

    def clear(self, family: Family | None = None) -> None:
        if family is None:
            self.tables.clear()
            self._interned.clear()
        else:
            self.tables.pop(family, None)

    def routes(self, family: Family) -> Iterator[RouteView]:
        for nlri, (attrs, nh, labels) in self.tables.get(family, {}).items():
            yield route_view(family, nlri, nh, labels, attrs)
