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


Resolution = tuple[bool, tuple[int, int] | None]
"""(covered by a connected prefix, the longest unicast route covering the next hop)."""


class NexthopTracker:
    """Decides whether a path's next hop is usable, and who depends on which next hop.

    Resolutions are cached per next hop, and indexed by the route that resolves them,
    so an underlay change re-resolves only the next hops it can affect: those that
    resolved through a route that went away, and those a new route could cover (the
    unresolved ones and the ones resolved through a shorter route).  The work of one
    change does not grow with the number of next hops (VPN SIDs) held.
    """

    def __init__(self) -> None:
        self.connected = UnderlayIndex()
        self.routes = UnderlayIndex()
        self._cache: dict[str, Resolution] = {}
        # (version, network, length) of the resolving route, or (version, -1, -1) for
        # next hops that nothing covers -> next hops (connected ones are not indexed)
        self._by_route: dict[tuple[int, int, int], set[str]] = defaultdict(set)
        # next hops whose longest covering route is a dependent path's own destination
        # (that path then depends on the next-longest route): rechecked on every change
        self._self_covered: set[str] = set()
        # Underlay changes are queued and indexed only when some next hop needs
        # resolving: a fabric of directly connected eBGP sessions never pays for it.
        self._pending: list[tuple[int, Prefix, bool]] = []  # (afi, unicast prefix, present)
        self._route_changes: list[tuple[int, int, int, bool]] = []  # (version, network, length, present)
        # next hop address -> {(family, key)}
        self.dependents: dict[str, set[tuple[Family, Key]]] = defaultdict(set)
        self._connected_set: set[tuple[int, int, int]] = set()

    # ---------------------------------------------------------------- resolution cache

    def _resolve(self, nh: str) -> Resolution:
        version, addr = _addr(nh)
        if self.connected.covering(version, addr) is not None:
            return True, None
        return False, self.routes.covering(version, addr)

    @staticmethod
    def _slot(nh: str, res: Resolution) -> tuple[int, int, int] | None:
        if res[0]:
            return None
        version = 6 if ":" in nh else 4
        cov = res[1]
        return (version, cov[0], cov[1]) if cov is not None else (version, -1, -1)

    def _store(self, nh: str, res: Resolution) -> None:
        old = self._cache.get(nh)
        if old is not None:
            slot = self._slot(nh, old)
            if slot is not None:
                group = self._by_route.get(slot)
                if group is not None:
                    group.discard(nh)
                    if not group:
                        del self._by_route[slot]
        self._cache[nh] = res
        slot = self._slot(nh, res)
        if slot is not None:
            self._by_route[slot].add(nh)

    def _drop(self, nh: str) -> None:
        old = self._cache.pop(nh, None)
        self._self_covered.discard(nh)
        if old is not None:
            slot = self._slot(nh, old)
            group = self._by_route.get(slot) if slot is not None else None
            if group is not None:
                group.discard(nh)
                if not group:
                    del self._by_route[slot]  # type: ignore[arg-type]  # slot is set when group is

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
        k = path.key
        self.dependents[nh].add((path.family, k))
        res = self._cache.get(nh)
        if res is None:
            res = self._resolve(nh)
            self._store(nh, res)
        connected, cov = res
        if connected:
            return True
        if cov is None:
            return False
        if type(k) is Prefix:  # a unicast path (VPN keys are VpnPrefix) cannot resolve through itself
            own = (int.from_bytes(k.packed, "big"), k.length)
            if own == cov:
                self._self_covered.add(nh)
                version, addr = _addr(nh)
                return self.routes.covering(version, addr, own) is not None
        return True

    # ---------------------------------------------------------------- underlay changes

    def set_connected(self, prefixes: set[tuple[int, int, int]]) -> set[str]:
        """Replace the connected prefixes ((version, network, length) triples); returns the
        next hops whose resolution changed."""
        old = set(self._connected_set)
        for version, network, length in old - prefixes:
            self.connected.remove(version, network, length)
        for version, network, length in prefixes - old:
            self.connected.add(version, network, length)
        self._connected_set = set(prefixes)
        return self._recheck(list(self._cache)) if old != prefixes else set()

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
        record = self._route_changes.append if self._cache else None
        for afi, key, present in pending:
            version = 4 if afi == 1 else 6
            net = int.from_bytes(key.packed, "big")
            if present:
                add(version, net, key.length)
            else:
                remove(version, net, key.length)
            if record is not None:
                record((version, net, key.length, present))

    def _candidates(self, changes: list[tuple[int, int, int, bool]]) -> set[str]:
        """Next hops whose resolution the route changes may have changed."""
        out = set(self._self_covered)
        by_route = self._by_route
        lengths = self.routes._lengths
        for version, net, length, present in changes:
            if not present:
                out |= by_route.get((version, net, length), set())
                continue
            width = 32 if version == 4 else 128
            # a new route can only take over next hops inside it that resolved through a
            # shorter route (its supernets) or through nothing
            inside = [by_route.get((version, -1, -1), set())]
            for shorter in lengths[version]:
                if shorter < length:
                    shift = width - shorter
                    sup = (net >> shift) << shift if shift < width else 0
                    group = by_route.get((version, sup, shorter))
                    if group:
                        inside.append(group)
            shift = width - length
            for group in inside:
                for nh in group:
                    _v, addr = _addr(nh)
                    if (addr >> shift) << shift == net if shift < width else True:
                        out.add(nh)
        return out

    def _recheck(self, nhs: Iterable[str]) -> set[str]:
        """Re-resolve ``nhs``; return those whose answer changed (self-covered ones always)."""
        changed: set[str] = set()
        for nh in nhs:
            old = self._cache.get(nh)
            if old is None:
                continue
            new = self._resolve(nh)
            if new != old:
                self._store(nh, new)
                changed.add(nh)
            elif nh in self._self_covered:
                changed.add(nh)
        return changed

    def recheck(self) -> dict[Family, set[Key]]:
        """After underlay updates: the (family -> keys) whose next hop changed state."""
        out: dict[Family, set[Key]] = defaultdict(set)
        if self._pending:
            self._apply_pending()
        changes, self._route_changes = self._route_changes, []
        if not self._cache or not changes:
            return out  # nothing depends on the underlay yet
        for nh in self._recheck(self._candidates(changes)):
            for fam, key in self.dependents.get(nh, ()):
                out[fam].add(key)
        return out

    def forget(self, nh: str, family: Family, key: Key) -> None:
        deps = self.dependents.get(nh)
        if deps is not None:
            deps.discard((family, key))
            if not deps:
                del self.dependents[nh]
                self._drop(nh)  # nothing depends on it any more: the cache stays bounded
