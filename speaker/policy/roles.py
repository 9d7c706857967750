"""The tenant-separation policies of ARCHITECTURE.md, written in the policy language.

Each role has a ``*_config`` function that returns the policy body exactly as an
operator would write it under ``policies:`` (so ``l3fab show`` and docs can print
it), and a function that parses that body into the same :class:`Policy` a YAML file
would give.  Locators are the hosts' SRv6 locators (IPv6 prefixes); SIDs, and so the
next hops of a host's VPN routes, lie inside them.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable

from .parse import parse_policy
from .policy import Policy

VPN_FAMILIES = ["vpnv4", "vpnv6"]


def _locator(locator: object) -> str:
    net = ipaddress.ip_network(str(locator), strict=True)
    if net.version != 6:
        raise ValueError(f"locator {locator} is not an IPv6 prefix")
    return str(net)


def leaf_from_host_config(locator: object) -> dict[str, Any]:
    """A leaf's import policy on the session to one host."""
    loc = _locator(locator)
    return {
        "description": f"from the host with locator {loc}",
        "default": "reject",
        "terms": [
            {"name": "own-locator", "match": {"family": "ipv6", "prefix": [loc]}, "action": "accept"},
            {"name": "vpn-next-hop-in-locator",
             "match": {"family": VPN_FAMILIES, "next-hop-in": [loc]}, "action": "accept"},
        ],
    }


def host_export_config(locator: object, allowed_route_targets: Iterable[str] | None = None) -> dict[str, Any]:
    """A host's export policy: its locator, and VPN routes whose next hop (SID) is its own.

    With ``allowed_route_targets``, a VPN route must also carry one of them.
    """
    loc = _locator(locator)
    vpn_match: dict[str, Any] = {"family": VPN_FAMILIES, "next-hop-in": [loc]}
    if allowed_route_targets is not None:
        rts = [str(rt) for rt in allowed_route_targets]
        if not rts:
            raise ValueError("allowed_route_targets is empty: no VPN route could be exported")
        vpn_match["route-target"] = rts
    return {
        "description": f"to the leaves from the host with locator {loc}",
        "default": "reject",
        "terms": [
            {"name": "own-locator", "match": {"family": "ipv6", "prefix": [loc]}, "action": "accept"},
            {"name": "own-vpn-routes", "match": vpn_match, "action": "accept"},
        ],
    }


def host_import_config(locator: object) -> dict[str, Any]:
    """A host's import policy: nobody else may claim a SID inside this host's locator.

    VPN routes with a next hop inside the own locator are rejected (the caller puts
    exceptions for its own, known SIDs in front), and so are unicast routes for the
    own locator or anything inside it.  Everything else is accepted.
    """
    loc = _locator(locator)
    return {
        "description": f"into the host with locator {loc}",
        "default": "accept",
        "terms": [
            {"name": "vpn-next-hop-in-own-locator",
             "match": {"family": VPN_FAMILIES, "next-hop-in": [loc]}, "action": "reject"},
            {"name": "own-locator-from-outside",
             "match": {"family": "ipv6", "prefix": [{"prefix": loc, "le": 128}]}, "action": "reject"},
        ],
    }


def leaf_from_host(locator: object, name: str = "leaf-from-host") -> Policy:
    return parse_policy(name, leaf_from_host_config(locator))


def host_export(locator: object, allowed_route_targets: Iterable[str] | None = None,
                name: str = "host-export") -> Policy:
    return parse_policy(name, host_export_config(locator, allowed_route_targets))


def host_import(locator: object, name: str = "host-import") -> Policy:
    return parse_policy(name, host_import_config(locator))
