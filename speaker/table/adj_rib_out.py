"""Adj-RIB-Out: what we last sent one peer, and what must be sent next.

Staged changes are packed into as few UPDATEs as the session allows: paths with the
same attributes and next hop share one UPDATE (many prefixes per message).

A route that no UPDATE of this session can carry (its path attributes do not fit in
4096 octets for a peer without extended messages, RFC 8654) is not advertised, as
BIRD does: it leaves ``tables`` (so ``show rib advertised`` does not list it), the
peer is told to withdraw whatever it held for that destination, the refusal is
logged once per session and counted, and every other route still flows.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from ..wire.attributes import MpNextHop, PathAttribute
from ..wire.constants import Family
from ..wire.context import CodecContext
from ..wire.nlri import Prefix, VpnPrefix
from ..wire.update import end_of_rib, pack_reachable, pack_withdrawals
from .path import Key, Path

log = logging.getLogger("l3fab.rib")


def wire_nlri(p: Path) -> Prefix | VpnPrefix:
    k = p.key
    return VpnPrefix(k.rd, k.prefix, p.labels) if type(k) is VpnPrefix else k


def _same_wire_form(a: Path, b: Path) -> bool:
    return a.next_hop == b.next_hop and a.labels == b.labels and a.attributes == b.attributes


class AdjRibOut:
    """``tables``: family -> destination -> the path advertised (or about to be, when
    the next :meth:`flush` sends it).  ``unsent``: the paths the table chose for this
    peer that no UPDATE could carry; ``refused``: how many times a route was refused
    (a counter, kept across sessions), ``last_refused`` the latest one and why."""

    def __init__(self, peer: str = "") -> None:
        self.peer = peer
        self.tables: dict[Family, dict[Key, Path]] = {}
        self.unsent: dict[Family, dict[Key, Path]] = {}
        self.refused = 0
        self.last_refused = ""  # the latest refusal: "<family> <prefix>: <why>"
        self._announce: dict[Family, dict[Key, Path]] = {}
        self._withdraw: dict[Family, set[Key]] = {}
        # Destinations staged for announcement whose previous path was already sent:
        # if the new one is refused, the peer must be told to withdraw the old one.
        self._replacing: dict[Family, set[Key]] = {}
        self._warned = False

    def stage(self, family: Family, key: Key, new: Path | None) -> None:
        unsent = self.unsent.get(family)
        if unsent and key in unsent:
            if new is not None and _same_wire_form(unsent[key], new):
                return  # still the route that cannot be sent: nothing to try again
            del unsent[key]  # the peer holds nothing for it (withdrawn when refused)
        table = self.tables.setdefault(family, {})
        old = table.get(key)
        if new is None:
            if old is not None:
                del table[key]
                self._announce.get(family, {}).pop(key, None)
                self._replacing.get(family, set()).discard(key)
                self._withdraw.setdefault(family, set()).add(key)
            return
        table[key] = new
        if old is not None and _same_wire_form(old, new):
            return  # the wire form did not change (e.g. best moved between equal paths)
        self._withdraw.get(family, set()).discard(key)
        pending = self._announce.setdefault(family, {})
        if old is not None and key not in pending:
            self._replacing.setdefault(family, set()).add(key)  # ``old`` went out in an earlier flush
        pending[key] = new

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
        retract: dict[Family, list[Key]] = {}
        for family, paths in self._announce.items():
            groups: dict[tuple[tuple[PathAttribute, ...], MpNextHop | None], list[Path]] = {}
            for p in paths.values():
                groups.setdefault((p.attributes, p.next_hop), []).append(p)
            replacing = self._replacing.get(family, set())
            for (attrs, nh), group in groups.items():
                packed = pack_reachable(family, attrs, nh, [wire_nlri(p) for p in group], ctx)
                out += packed.messages
                if packed.refused:
                    refused = [group[i] for i in packed.refused]
                    self._refuse(family, refused, packed.reason)
                    retract.setdefault(family, []).extend(p.key for p in refused if p.key in replacing)
        self._announce = {}
        self._replacing = {}
        for family, gone in retract.items():
            if gone:
                out += pack_withdrawals(family, gone, ctx)
        return out

    def _refuse(self, family: Family, paths: list[Path], reason: str) -> None:
        table = self.tables.get(family, {})
        unsent = self.unsent.setdefault(family, {})
        for p in paths:
            table.pop(p.key, None)
            unsent[p.key] = p
        self.refused += len(paths)
        self.last_refused = f"{family.name} {paths[0].key}: {reason}"
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        if log.isEnabledFor(level):
            first = paths[0].key
            more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
            log.log(level, "%s: not advertising %s %s%s: %s%s", self.peer or "Adj-RIB-Out", family.name, first, more,
                    reason, "" if level == logging.DEBUG else
                    " (further routes refused on this session are logged at debug level and counted)")

    def unsent_count(self, family: Family | None = None) -> int:
        """Routes chosen for this peer that are not advertised because no UPDATE can carry them."""
        if family is not None:
            return len(self.unsent.get(family, ()))
        return sum(len(t) for t in self.unsent.values())

    def clear(self) -> None:
        self.tables.clear()
        self.unsent.clear()
        self._announce.clear()
        self._withdraw.clear()
        self._replacing.clear()
        self._warned = False

    def count(self, family: Family | None = None) -> int:
        if family is not None:
            return len(self.tables.get(family, ()))
        return sum(len(t) for t in self.tables.values())

    @staticmethod
    def end_of_rib(family: Family, ctx: CodecContext) -> bytes:
        return end_of_rib(family).encode(ctx)
