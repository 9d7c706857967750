"""Next-hop reachability against the underlay, for every family (VPN included).

FRR does not track VPN next hops: a VPN route stays valid after its SID's locator
vanished.  l3fab does: a path whose next hop is not directly connected is valid
only while some underlay route (a connected prefix, or a valid IPv4/IPv6 unicast
best path other than the path's own destination) covers the next hop.  When the
underlay changes, the dependent destinations are re-decided and, where they lose
their only path, withdrawn downstream.
"""
from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from typing import cast

from ..wire.constants import Family
from ..wire.nlri import Prefix
from .path import Key, Path


def _addr(text: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(text.split("%")[0])
    return ip.version, int(ip)


class UnderlayIndex:
    """Longest-prefix lookups over a set of prefixes, per address family."""

    def __init__(self) -> None:
        # (version, length) -> {network int: count}
        self._sets: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
        self._lengths: dict[int, list[int]] = {4: [], 6: []}

    def add(self, version: int, network: int, length: int) -> None:
        s = self._sets[(version, length)]
        s[network] = s.get(network, 0) + 1
        if length not in self._lengths[version]:
            self._lengths[version].append(length)
            self._lengths[version].sort(reverse=True)

    def remove(self, version: int, network: int, length: int) -> None:
        s = self._sets.get((version, length))
        if s and network in s:
            s[network] -= 1
            if s[network] <= 0:
                del s[network]

    def covering(self, version: int, addr: int, exclude: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """The longest (network, length) covering ``addr``, skipping ``exclude``."""
        width = 32 if version == 4 else 128
        for length in self._lengths[version]:
            shift = width - length
            net = (addr >> shift) << shift if shift < width else 0
            s = self._sets.get((version, length))
            if s and net in s and (net, length) != exclude:
                return net, length
        return None


class NexthopTracker:
    """Decides whether a path's next hop is usable, and who depends on which next hop."""

    def __init__(self) -> None:
        self.connected = UnderlayIndex()
        self.routes = UnderlayIndex()
        # (next hop address, the path's own (network, length) or None) -> resolvable
        self._cache: dict[tuple[str, tuple[int, int] | None], bool] = {}
        # Underlay changes are queued and indexed only when some next hop needs
        # resolving: a fabric of directly connected eBGP sessions never pays for it.
        self._pending: list[tuple[int, Prefix, bool]] = []  # (afi, unicast prefix, present)
        # next hop address -> {(family, key)}
        self.dependents: dict[str, set[tuple[Family, Key]]] = defaultdict(set)
        self._connected_set: set[tuple[int, int, int]] = set()

    def valid(self, path: Path) -> bool:
        """Local paths, link-local next hops and the peer's own address need no resolution;
        anything else must be covered by a connected prefix or another valid unicast route."""
        next_hop = path.next_hop
        if next_hop is None:
            return True
        nh = next_hop.address
        if nh == path.source.address or nh[:5] == "fe80:" or path.source.name == "local":
            return True
        if self._pending:
            self._apply_pending()
        own = None
        k = path.key
        if type(k) is Prefix:  # a unicast path (VPN keys are VpnPrefix)
            own = (int.from_bytes(k.packed, "big"), k.length)
        self.dependents[nh].add((path.family, k))
        ck = (nh, own)
        r = self._cache.get(ck)
        if r is None:
            version, addr = _addr(nh)
            r = bool(self.connected.covering(version, addr) or self.routes.covering(version, addr, own))
            self._cache[ck] = r
        return r

    def set_connected(self, prefixes: set[tuple[int, int, int]]) -> set[str]:
        """Replace the connected prefixes ((version, network, length) triples)."""
        old = set(self._connected_set)
        for version, network, length in old - prefixes:
            self.connected.remove(version, network, length)
        for version, network, length in prefixes - old:
            self.connected.add(version, network, length)
        self._connected_set = set(prefixes)
        return self._recheck() if old != prefixes else set()

    def underlay_update(self, family: Family, key: Key, present: bool) -> None:
        self.underlay_changes(family, [(key, present)])

    def underlay_changes(self, family: Family, changes: Iterable[tuple[Key, bool]]) -> None:
        """A batch of ``(key, present)`` for one unicast family."""
        afi = family.afi
        unicast = cast("Iterable[tuple[Prefix, bool]]", changes)  # a unicast family's keys are prefixes
        self._pending.extend((afi, key, present) for key, present in unicast)

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, []
        add, remove = self.routes.add, self.routes.remove
        for afi, key, present in pending:
            version = 4 if afi == 1 else 6
            net = int.from_bytes(key.packed, "big")
            if present:
                add(version, net, key.length)
            else:
                remove(version, net, key.length)

    def _recheck(self) -> set[str]:
        """Re-resolve every cached next hop; return those whose answer changed."""
        if self._pending:
            self._apply_pending()
        changed: set[str] = set()
        for (nh, own), before in list(self._cache.items()):
            version, addr = _addr(nh)
            now = bool(self.connected.covering(version, addr) or self.routes.covering(version, addr, own))
            if now != before:
                self._cache[(nh, own)] = now
                changed.add(nh)
        return changed

    def recheck(self) -> dict[Family, set[Key]]:
        """After underlay updates: the (family -> keys) whose next hop changed state."""
        out: dict[Family, set[Key]] = defaultdict(set)
        if not self._cache:
            return out  # nothing depends on the underlay yet; changes stay queued
        if self._pending:
            self._apply_pending()
        for nh in self._recheck():
            for fam, key in self.dependents.get(nh, ()):
                out[fam].add(key)
        return out

    def forget(self, nh: str, family: Family, key: Key) -> None:
        deps = self.dependents.get(nh)
        if deps is not None:
            deps.discard((family, key))
            if not deps:
                del self.dependents[nh]
