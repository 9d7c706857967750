"""Loc-RIB: destinations, their candidate paths, and the selected best/multipath set.

Changes are level-triggered: :meth:`LocRib.add`/:meth:`remove` only mark a
destination dirty; :meth:`LocRib.process` re-runs the decision for dirty
destinations and returns what changed, so a burst of UPDATEs costs one decision
per destination.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from ..wire.constants import Family
from .decision import DEFAULT_DECISION, DecisionConfig, select
from .path import Key, Path


class Destination:
    """One prefix (or RD + prefix) and its candidate paths.

    ``paths`` is a tuple: destinations have few paths (at most one per peer and path
    id), and a tuple of one costs far less than a dictionary.
    """

    __slots__ = ("key", "paths", "best", "multipath", "reason", "old_best")

    def __init__(self, key: Key, paths: tuple[Path, ...] = ()) -> None:
        self.key = key
        self.paths: tuple[Path, ...] = paths
        self.best: Path | None = None
        self.multipath: tuple[Path, ...] = ()
        self.reason = ""
        self.old_best: Path | None = None  # the best before the last change process() reported

    def find(self, source: str, path_id: int = 0) -> Path | None:
        for p in self.paths:
            if p.source.name == source and p.path_id == path_id:
                return p
        return None


class LocRib:
    def __init__(self, family: Family, cfg: DecisionConfig = DEFAULT_DECISION,
                 valid: Callable[[Path], bool] | None = None) -> None:
        self.family = family
        self.cfg = cfg
        self.valid = valid or (lambda p: True)
        self.dests: dict[Key, Destination] = {}
        self.dirty: set[Key] = set()

    def __len__(self) -> int:
        return len(self.dests)

    def add(self, path: Path) -> None:
        key = path.key
        d = self.dests.get(key)
        if d is None:
            self.dests[key] = Destination(key, (path,))
        else:
            name, pid = path.source.name, path.path_id
            d.paths = tuple(p for p in d.paths if p.source.name != name or p.path_id != pid) + (path,)
        self.dirty.add(key)

    def add_many(self, paths: list[Path]) -> None:
        """:meth:`add` for a batch (one UPDATE's worth), with the common case inlined."""
        dests = self.dests
        dirty = self.dirty
        for path in paths:
            key = path.key
            d = dests.get(key)
            if d is None:
                dests[key] = Destination(key, (path,))
            else:
                name, pid = path.source.name, path.path_id
                d.paths = tuple(p for p in d.paths if p.source.name != name or p.path_id != pid) + (path,)
            dirty.add(key)

    def remove(self, source: str, key: Key, path_id: int = 0) -> None:
        d = self.dests.get(key)
        if d is None:
            return
        kept = tuple(p for p in d.paths if p.source.name != source or p.path_id != path_id)
        if len(kept) != len(d.paths):
            d.paths = kept
            self.dirty.add(key)

    def remove_source(self, source: str, keys: Iterable[Key] | None = None) -> None:
        """Drop every path of ``source`` (for ``keys`` if given, e.g. its Adj-RIB-In)."""
        for key in (keys if keys is not None else list(self.dests)):
            d = self.dests.get(key)
            if d is None:
                continue
            kept = tuple(p for p in d.paths if p.source.name != source)
            if len(kept) != len(d.paths):
                d.paths = kept
                self.dirty.add(key)

    def touch(self, keys: Iterable[Key]) -> None:
        """Re-run the decision for ``keys`` (e.g. their next hops' reachability changed)."""
        for k in keys:
            if k in self.dests:
                self.dirty.add(k)

    def process(self, limit: int | None = None) -> list[Destination]:
        """Re-decide dirty destinations (at most ``limit`` of them; the rest stay dirty);
        return those whose best or multipath set changed (``old_best`` holds the previous
        best; a destination left without paths has ``best`` None and is no longer in
        :attr:`dests`)."""
        changes: list[Destination] = []
        if not self.dirty:
            return changes
        dirty: Iterable[Key]
        if limit is None or len(self.dirty) <= limit:
            dirty, self.dirty = self.dirty, set()
        else:
            pop = self.dirty.pop
            dirty = [pop() for _ in range(limit)]
        valid = self.valid
        cfg = self.cfg
        best: Path | None
        multi: tuple[Path, ...]
        for key in dirty:
            d = self.dests.get(key)
            if d is None:
                continue
            paths = d.paths
            if len(paths) == 1:
                p = paths[0]
                if valid(p):
                    best, multi, reason = p, (p,), "only path"
                else:
                    best, multi, reason = None, (), ""
            else:
                cands = [p for p in paths if valid(p)]
                best, multi, reason = select(cands, cfg)
            if best is not d.best or multi != d.multipath:
                d.old_best = d.best
                d.best, d.multipath, d.reason = best, multi, reason
                changes.append(d)
            if not paths:
                del self.dests[key]
        return changes

    def best_paths(self) -> Iterator[Destination]:
        """The destinations that have a best path."""
        for d in self.dests.values():
            if d.best is not None:
                yield d
