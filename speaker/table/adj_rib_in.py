"""Adj-RIB-In: the paths one peer announced to us, after import policy.

:func:`update_paths` turns a decoded UPDATE into :class:`Path` objects and the keys
it withdraws (RFC 7606 treat-as-withdraw included).  Attribute tuples are shared
between all paths of one UPDATE and interned across UPDATEs, so 100,000 routes with
a few attribute sets cost little more than the dictionaries themselves.  The
interner forgets the sets no route uses any more (:meth:`AttributeInterner.collect`):
a peer that sends a new MED in every UPDATE costs memory for the routes it holds,
not for every UPDATE it ever sent.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple, cast, final

from ..wire.attributes import PathAttribute
from ..wire.constants import Family
from ..wire.nlri import Nlri, PathId, VpnPrefix
from ..wire.update import Update
from .path import Key, Path, Source

Attributes = tuple[PathAttribute, ...]
Slot = Key | tuple[Key, int]  # an Adj-RIB-In's dictionary key: see _slot
Announced = list[tuple[Family, list[Path]]]
Withdrawn = list[tuple[Family, Key, int]]

if TYPE_CHECKING:
    @final
    class VpnPathId(NamedTuple):
        """For the type checker only: a :class:`PathId` as a VPN family's decoder makes
        it, around a VpnPrefix (``PathId.nlri`` is typed for every family)."""

        path_id: int
        nlri: VpnPrefix
else:
    VpnPathId = PathId  # the same class at run time: testing for it costs nothing extra


def nlri_key(n: Nlri) -> tuple[Key, int]:
    """(RIB key, path id) of an NLRI: labels belong to the path, not the destination."""
    path_id = 0
    if type(n) is PathId:
        path_id, n = n.path_id, n.nlri
    if type(n) is VpnPrefix and n.labels:
        n = VpnPrefix(n.rd, n.prefix)
    return n, path_id


class AttributeInterner:
    """One shared tuple per distinct attribute set, bounded by the routes that use them.

    Interning costs one dictionary lookup per UPDATE; nothing is counted per route.
    Instead, sets no route refers to any more are dropped in batches: the owner calls
    :meth:`collect` with every live Adj-RIB-In table when :meth:`due` says so, that is
    when, since the last collection, more new sets were interned than there were routes
    then (plus ``slack``), or more routes were dropped (reported with :meth:`dropped`)
    than half of them (plus ``slack``).  A collection walks the live routes once, so its
    cost is paid for by the inserts or drops that made it due (amortised O(1) each), and
    the interner never holds more than about twice the live routes plus ``slack`` sets
    beyond those in use.
    """

    def __init__(self, slack: int = 256) -> None:
        self._seen: dict[Attributes, Attributes] = {}
        self.slack = slack
        self._insert_limit = slack  # len(_seen) above this: a collection is due
        self._drop_limit = slack  # routes dropped since the last collection above this: likewise
        self._dropped = 0
        self.collections = 0

    def __call__(self, attrs: Attributes) -> Attributes:
        return self._seen.setdefault(attrs, attrs)

    def __len__(self) -> int:
        return len(self._seen)

    def dropped(self, n: int) -> None:
        """``n`` routes left the Adj-RIBs-In (withdrawn, swept, the session went down)."""
        self._dropped += n

    def due(self) -> bool:
        return len(self._seen) > self._insert_limit or self._dropped > self._drop_limit

    def collect(self, tables: Iterable[Mapping[Slot, Path]]) -> int:
        """Keep only the sets the paths in ``tables`` (every live Adj-RIB-In table, before and
        after import policy) refer to; return how many were dropped.  Liveness is by
        identity: an interned tuple a path still holds is the very object in the interner."""
        routes = 0
        live: set[int] = set()
        add = live.add
        for t in tables:
            routes += len(t)
            for p in t.values():
                add(id(p.attributes))
        seen = self._seen
        dead = [a for a in seen if id(a) not in live]
        for a in dead:
            del seen[a]
        self._dropped = 0
        self._insert_limit = len(seen) + routes + self.slack
        self._drop_limit = routes // 2 + self.slack
        self.collections += 1
        return len(dead)

    def clear(self) -> None:
        self._seen.clear()
        self._dropped = 0
        self._insert_limit = self._drop_limit = self.slack


def update_paths(update: Update, source: Source, intern: AttributeInterner) -> tuple[Announced, Withdrawn]:
    """What one UPDATE means for the table: ``(announced, withdrawn)``.

    ``announced`` is a list of ``(family, [Path, ...])`` groups (all paths of a group share
    attributes and next hop); ``withdrawn`` a list of ``(family, key, path id)``, RFC 7606
    treat-as-withdraw included.
    """
    announced: Announced = []
    reach = update.reachable()
    if reach:
        attrs = intern(update.path_attributes())
        new = tuple.__new__  # NamedTuple construction without its Python-level __new__
        for family, nh, nlri in reach:
            paths: list[Path]
            if family.is_vpn:
                paths = []
                append = paths.append
                # A VPN family's NLRI are VpnPrefix, bare or in a PathId (a cast per group,
                # none per route: casting is a function call).
                for n in cast("tuple[VpnPrefix | VpnPathId, ...]", nlri):
                    path_id = 0
                    if type(n) is VpnPathId:
                        path_id, n = n.path_id, n.nlri
                    key = new(VpnPrefix, (n.rd, n.prefix, ()))
                    append(new(Path, (family, key, nh, attrs, n.labels, source, path_id, False)))
            else:
                paths = [new(Path, (family, n.nlri, nh, attrs, (), source, n.path_id, False)) if type(n) is PathId
                         else new(Path, (family, n, nh, attrs, (), source, 0, False)) for n in nlri]
            announced.append((family, paths))
    withdrawn: Withdrawn = [(family, *nlri_key(n)) for family, nlri in update.unreachable() for n in nlri]
    return announced, withdrawn


def _slot(key: Key, path_id: int) -> Slot:
    """Dictionary key in an Adj-RIB-In: the destination, or (destination, path id) with ADD-PATH."""
    return key if not path_id else (key, path_id)


class AdjRibIn:
    """Per peer: family -> {destination (or (destination, path id)): Path}."""

    def __init__(self) -> None:
        self.tables: dict[Family, dict[Slot, Path]] = {}
        self.updates = 0
        self.faulty_updates = 0

    def put(self, path: Path) -> Path | None:
        t = self.tables.get(path.family)
        if t is None:
            t = self.tables[path.family] = {}
        k = _slot(path.key, path.path_id)
        old = t.get(k)
        t[k] = path
        return old

    def put_many(self, family: Family, paths: list[Path]) -> None:
        t = self.tables.get(family)
        if t is None:
            t = self.tables[family] = {}
        for p in paths:
            t[p.key if not p.path_id else (p.key, p.path_id)] = p

    def pop(self, family: Family, key: Key, path_id: int = 0) -> Path | None:
        t = self.tables.get(family)
        return t.pop(_slot(key, path_id), None) if t else None

    def get(self, family: Family, key: Key, path_id: int = 0) -> Path | None:
        t = self.tables.get(family)
        return t.get(_slot(key, path_id)) if t else None

    def count(self, family: Family | None = None) -> int:
        if family is not None:
            return len(self.tables.get(family, ()))
        return sum(len(t) for t in self.tables.values())

    def counts(self) -> dict[str, int]:
        return {f.name: len(t) for f, t in self.tables.items()}

    def clear(self, family: Family | None = None) -> None:
        if family is None:
            self.tables.clear()
        else:
            self.tables.pop(family, None)

    def paths(self, family: Family) -> Iterator[Path]:
        return iter(list(self.tables.get(family, {}).values()))
