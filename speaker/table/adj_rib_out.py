"""Adj-RIB-Out: what we last sent one peer, and what must be sent next.

Staged changes are packed into as few UPDATEs as the session allows: paths with the
same attributes and next hop share one UPDATE (many prefixes per message).
"""
from __future__ import annotations

from collections.abc import Iterable

from ..wire.attributes import MpNextHop, PathAttribute
from ..wire.constants import Family
from ..wire.context import CodecContext
from ..wire.nlri import Nlri, Prefix, VpnPrefix
from ..wire.update import end_of_rib, pack_announcements, pack_withdrawals
from .path import Key, Path


def wire_nlri(p: Path) -> Prefix | VpnPrefix:
    k = p.key
    return VpnPrefix(k.rd, k.prefix, p.labels) if type(k) is VpnPrefix else k


class AdjRibOut:
    def __init__(self) -> None:
        self.tables: dict[Family, dict[Key, Path]] = {}
        self._announce: dict[Family, dict[Key, Path]] = {}
        self._withdraw: dict[Family, set[Key]] = {}

    def stage(self, family: Family, key: Key, new: Path | None) -> None:
        table = self.tables.setdefault(family, {})
        old = table.get(key)
        if new is None:
            if old is not None:
                del table[key]
                self._announce.get(family, {}).pop(key, None)
                self._withdraw.setdefault(family, set()).add(key)
            return
        table[key] = new
        if old is not None and old.next_hop == new.next_hop and old.labels == new.labels \
                and old.attributes == new.attributes:
            return  # the wire form did not change (e.g. best moved between equal paths)
        self._withdraw.get(family, set()).discard(key)
        self._announce.setdefault(family, {})[key] = new

    def restage_all(self, families: Iterable[Family]) -> None:
        """Send everything again (route refresh, or a new session)."""
        for f in families:
            for key, p in self.tables.get(f, {}).items():
                self._announce.setdefault(f, {})[key] = p

    def pending(self) -> bool:
        return any(self._announce.values()) or any(self._withdraw.values())

    def flush(self, ctx: CodecContext) -> list[bytes]:
        out: list[bytes] = []
        for family, keys in self._withdraw.items():
            if keys:
                out += pack_withdrawals(family, list(keys), ctx)
        self._withdraw = {}
        for family, paths in self._announce.items():
            groups: dict[tuple[tuple[PathAttribute, ...], MpNextHop | None], list[Nlri]] = {}
            for p in paths.values():
                groups.setdefault((p.attributes, p.next_hop), []).append(wire_nlri(p))
            for (attrs, nh), nlri in groups.items():
                out += pack_announcements(family, attrs, nh, nlri, ctx)
        self._announce = {}
        return out

    def clear(self) -> None:
        self.tables.clear()
        self._announce.clear()
        self._withdraw.clear()

    def count(self, family: Family | None = None) -> int:
        if family is not None:
            return len(self.tables.get(family, ()))
        return sum(len(t) for t in self.tables.values())

    @staticmethod
    def end_of_rib(family: Family, ctx: CodecContext) -> bytes:
        return end_of_rib(family).encode(ctx)
