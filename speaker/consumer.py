"""The seam between the speaker and what uses its Loc-RIB (BIRD's channels).

A consumer (the kernel FIB feed, the tenant VRF import) registers with the speaker
for some families.  After every decision run it receives the destinations whose
best path or multipath set changed, and it is told once when the RIB converged
after start (RFC 4724: End-of-RIB from every peer, or the deadline).  Consumers
must return quickly: kernel work is queued, never done in these calls.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from .table.rib import Destination
from .wire.constants import Family


class RibReader(Protocol):
    """Read access to the Loc-RIB."""

    def best(self, families: Iterable[Family]) -> Iterator[Destination]: ...


class LocRibConsumer(Protocol):
    name: str
    families: frozenset[Family]

    def rib_changed(self, family: Family, dests: Sequence[Destination]) -> None:
        """Destinations of ``family`` whose best path or multipath set changed
        (``best`` None: the destination is gone)."""
        ...

    def rib_converged(self, rib: RibReader) -> None:
        """The RIB converged after start; stale forwarding state may go now."""
        ...


__all__ = ["LocRibConsumer", "RibReader"]
