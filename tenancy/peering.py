"""Route exchange between tenants: tenant A imports tenant B's routes only when A
lists B *and* B lists A.  One side alone changes nothing."""
from __future__ import annotations

from typing import Iterable, Mapping, Protocol


class _HasPeers(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def peers(self) -> tuple[str, ...]: ...


def peering_effective(a: _HasPeers, b: _HasPeers) -> bool:
    """True when ``a`` and ``b`` list each other (and are not the same tenant)."""
    return a.name != b.name and b.name in a.peers and a.name in b.peers


def effective_peers(tenant: _HasPeers, tenants: Mapping[str, _HasPeers] | Iterable[_HasPeers]) -> tuple[str, ...]:
    """The names of the tenants ``tenant`` really exchanges routes with, sorted."""
    by_name = tenants if isinstance(tenants, Mapping) else {t.name: t for t in tenants}
    return tuple(sorted(p for p in tenant.peers if p in by_name and peering_effective(tenant, by_name[p])))
