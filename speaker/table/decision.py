"""The BGP decision process (RFC 4271 section 9.1.2.2) with ECMP multipath.

Steps, in order (the first that differs decides):

1. locally originated over learned (FRR's "weight" for local routes)
2. highest LOCAL_PREF
3. shortest AS_PATH (a set counts one; confederation segments none)
4. lowest ORIGIN (IGP < EGP < INCOMPLETE)
5. lowest MED, compared only between paths from the same neighbouring AS unless
   ``always_compare_med``; a missing MED is 0
6. eBGP over iBGP
7. lowest IGP cost to the next hop (all next hops cost the same here: the fabric has no IGP)
8. lowest BGP identifier (ORIGINATOR_ID when present, RFC 4456 section 9)
9. shortest CLUSTER_LIST (RFC 4456)
10. lowest peer address

Paths equal to the best through step 7 are multipath candidates (at most
``maximum_paths``).  eBGP multipath also needs the same neighbouring AS, or with
``multipath_relax`` just an equally long AS path (RFC 7938 fabrics, where leaves
see the same prefix from spines of one AS anyway, and hosts of different ASes).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from .path import Path


@dataclass(frozen=True)
class DecisionConfig:
    maximum_paths: int = 64
    multipath_relax: bool = False
    always_compare_med: bool = False


DEFAULT_DECISION = DecisionConfig()


def _neighbor_as(p: Path) -> int:
    fa = p.as_path.first_asn()
    return fa if fa is not None else 0


def _router_id(p: Path) -> int:
    rid = p.originator_id or p.source.router_id
    return int(ipaddress.IPv4Address(rid))


def _peer_address(p: Path) -> int:
    a = p.source.address
    if not a:
        return 0
    try:
        ip = ipaddress.ip_address(a.split("%")[0])
    except ValueError:
        return 0
    return int(ip) + (1 << 129 if ip.version == 6 else 0)


def _ecmp_tuple(p: Path, cfg: DecisionConfig) -> tuple[bool, int, int, int, bool]:
    """Steps 1-4 and 6: what must be equal for two paths to share the load."""
    return (p.source.is_local, p.local_pref, p.as_path.path_length(), p.origin, p.source.ibgp)


def compare(a: Path, b: Path, cfg: DecisionConfig = DEFAULT_DECISION) -> tuple[int, str]:
    """Negative when ``a`` is better, positive when ``b`` is; with the deciding step's name."""
    if a.source.is_local != b.source.is_local:
        return (-1 if a.source.is_local else 1), "local"
    if a.local_pref != b.local_pref:
        return (-1 if a.local_pref > b.local_pref else 1), "local-pref"
    la, lb = a.as_path.path_length(), b.as_path.path_length()
    if la != lb:
        return (-1 if la < lb else 1), "as-path"
    if a.origin != b.origin:
        return (-1 if a.origin < b.origin else 1), "origin"
    if (cfg.always_compare_med or _neighbor_as(a) == _neighbor_as(b)) and a.med != b.med:
        return (-1 if a.med < b.med else 1), "med"
    if a.source.ibgp != b.source.ibgp:
        return (-1 if not a.source.ibgp else 1), "ebgp"
    ra, rb = _router_id(a), _router_id(b)
    if ra != rb:
        return (-1 if ra < rb else 1), "router-id"
    ca, cb = len(a.cluster_list), len(b.cluster_list)
    if ca != cb:
        return (-1 if ca < cb else 1), "cluster-list"
    pa, pb = _peer_address(a), _peer_address(b)
    if pa != pb:
        return (-1 if pa < pb else 1), "peer-address"
    if a.path_id != b.path_id:
        return (-1 if a.path_id < b.path_id else 1), "path-id"
    return 0, "equal"


def _multipath_ok(best: Path, other: Path, cfg: DecisionConfig) -> bool:
    if _ecmp_tuple(best, cfg) != _ecmp_tuple(other, cfg):
        return False
    if best.med != other.med and (cfg.always_compare_med or _neighbor_as(best) == _neighbor_as(other)):
        return False
    if best.source.is_local:
        return False
    if not best.source.ibgp and not cfg.multipath_relax and _neighbor_as(best) != _neighbor_as(other):
        return False
    return True


def select(paths: Sequence[Path], cfg: DecisionConfig = DEFAULT_DECISION) -> tuple[Path | None, tuple[Path, ...], str]:
    """Best path, the multipath set (best first) and why the best won."""
    best = None
    reason = "only path"
    for p in paths:
        if best is None:
            best = p
            continue
        c, why = compare(p, best, cfg)
        if c < 0:
            best, reason = p, why
        elif len(paths) == 2:
            reason = why
    if best is None:
        return None, (), ""
    if cfg.maximum_paths <= 1 or len(paths) == 1:
        return best, (best,), reason
    multi = [best] + sorted((p for p in paths if p is not best and _multipath_ok(best, p, cfg)),
                            key=lambda p: (_router_id(p), _peer_address(p)))
    return best, tuple(multi[: cfg.maximum_paths]), reason
