"""Prefix lists: which prefixes a policy term means, compiled for per-route lookup.

An entry is a network with an optional length range, as in FRR's ``ip prefix-list``:
``10.0.0.0/8`` alone matches exactly 10.0.0.0/8; ``{prefix: 10.0.0.0/8, ge: 24, le: 32}``
matches any prefix inside 10.0.0.0/8 whose length is 24 to 32.

Matching runs for every route received, so a list is compiled into one dict per
distinct entry length, keyed by the entry's network bits as an int.  A lookup shifts
the route's address once per distinct length (a handful, not one per entry) and does
a dict lookup: the cost does not grow with the number of entries.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from functools import lru_cache

from ..wire.constants import Afi
from ..wire.nlri import Prefix

_WIDTH: dict[int, int] = {Afi.IPV4: 32, Afi.IPV6: 128}


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    """One prefix-list entry: ``prefix`` and the lengths ``ge``..``le`` it matches."""

    prefix: Prefix
    ge: int
    le: int

    @classmethod
    def exact(cls, prefix: Prefix) -> "PrefixEntry":
        return cls(prefix, prefix.length, prefix.length)

    def __str__(self) -> str:
        n = self.prefix.length
        if self.ge == self.le == n:
            return str(self.prefix)
        return f"{self.prefix} ge {self.ge} le {self.le}"


def _int(prefix: Prefix) -> int:
    return int.from_bytes(prefix.packed, "big")


@lru_cache(maxsize=65536)
def address_int(text: str) -> tuple[int, int] | None:
    """``(afi, address as int)`` for an IPv4/IPv6 address string; ``None`` if it is not one.

    Next hops repeat across many routes, so the conversion is cached.
    """
    for family, afi in ((socket.AF_INET, Afi.IPV4), (socket.AF_INET6, Afi.IPV6)):
        try:
            return afi, int.from_bytes(socket.inet_pton(family, text), "big")
        except (OSError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class PrefixList:
    """A named, ordered set of :class:`PrefixEntry`.  Inline lists have the name ``""``."""

    name: str
    entries: tuple[PrefixEntry, ...]
    # afi -> ((length, shift, {network bits: ((ge, le), ...)}), ...) sorted by length
    _ranges: dict[int, tuple[tuple[int, int, dict[int, tuple[tuple[int, int], ...]]], ...]] = field(
        init=False, repr=False, compare=False)
    # afi -> ((shift, {network bits}), ...): the networks alone, for address containment
    _networks: dict[int, tuple[tuple[int, frozenset[int]], ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ranges: dict[int, dict[int, dict[int, list[tuple[int, int]]]]] = {}
        for e in self.entries:
            p = e.prefix
            shift = _WIDTH[p.afi] - p.length
            by_len = ranges.setdefault(p.afi, {}).setdefault(p.length, {})
            by_len.setdefault(_int(p) >> shift, []).append((e.ge, e.le))
        compiled = {
            afi: tuple((n, _WIDTH[afi] - n, {k: tuple(v) for k, v in nets.items()})
                       for n, nets in sorted(by_len.items()))
            for afi, by_len in ranges.items()
        }
        networks = {afi: tuple((shift, frozenset(nets)) for _, shift, nets in table)
                    for afi, table in compiled.items()}
        object.__setattr__(self, "_ranges", compiled)
        object.__setattr__(self, "_networks", networks)

    def __add__(self, other: "PrefixList") -> "PrefixList":
        return PrefixList(self.name or other.name, self.entries + other.entries)

    def matches(self, prefix: Prefix) -> bool:
        """True if some entry matches ``prefix`` (its network covers it, length in range)."""
        table = self._ranges.get(prefix.afi)
        if table is None:
            return False
        length = prefix.length
        value = int.from_bytes(prefix.packed, "big")
        for n, shift, nets in table:
            if n > length:
                return False
            found = nets.get(value >> shift)
            if found is not None:
                for ge, le in found:
                    if ge <= length <= le:
                        return True
        return False

    def contains_address(self, text: str) -> bool:
        """True if the address ``text`` lies inside one of the entries' networks.

        ``ge``/``le`` describe prefix lengths and do not apply to an address.
        """
        parsed = address_int(text)
        if parsed is None:
            return False
        table = self._networks.get(parsed[0])
        if table is None:
            return False
        value = parsed[1]
        for shift, nets in table:
            if value >> shift in nets:
                return True
        return False

    def __str__(self) -> str:
        return ", ".join(str(e) for e in self.entries)
