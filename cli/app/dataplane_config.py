"""The ``dataplane:`` section of the node config: validated into :class:`DataplaneSettings`.

It only means something next to ``tenancy:`` (the dataplane serves tenant endpoints);
the application passes the tenancy locator in, so the dataplane needs no tenancy types.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from l3fab.speaker.errors import ConfigError
from l3fab.speaker.fields import boolean, check_keys, integer, number

from l3fab.dataplane.intent import DataplaneSettings

KEYS = {"enabled", "tunnel-source", "underlay-prefixes", "endpoint-mtu", "nftables", "rate-limits",
        "reconcile-interval"}


def parse_dataplane(raw: Any, fib_enabled: bool, locator: str | None) -> DataplaneSettings | None:
    """``locator``: the tenancy section's locator, or None when the node has no tenancy
    (then the section must be absent and the result is None)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("dataplane", raw, "is not a mapping")
    check_keys("dataplane", raw, KEYS)
    if locator is None:
        if raw:
            raise ConfigError("dataplane", "...", "needs a tenancy section (the dataplane serves tenant endpoints)")
        return None
    locator_net = ipaddress.IPv6Network(locator)
    src = raw.get("tunnel-source")
    if src is not None:
        try:
            addr = ipaddress.IPv6Address(str(src))
        except ValueError:
            raise ConfigError("dataplane.tunnel-source", src, "is not an IPv6 address") from None
        if addr not in locator_net:
            raise ConfigError("dataplane.tunnel-source", src, f"is not inside the locator {locator}")
        src = str(addr)
    prefixes = raw.get("underlay-prefixes", []) or []
    if not isinstance(prefixes, list):
        raise ConfigError("dataplane.underlay-prefixes", prefixes, "is not a list of IPv6 prefixes")
    norm = []
    for i, pfx in enumerate(prefixes):
        try:
            norm.append(str(ipaddress.IPv6Network(str(pfx), strict=True)))
        except ValueError:
            raise ConfigError(f"dataplane.underlay-prefixes[{i}]", pfx, "is not an IPv6 prefix") from None
    if norm and str(locator_net) not in norm:
        norm.insert(0, str(locator_net))
    mtu = raw.get("endpoint-mtu")
    return DataplaneSettings(
        enabled=boolean("dataplane.enabled", raw.get("enabled", fib_enabled)),
        tunnel_source=src,
        underlay_prefixes=tuple(norm),
        endpoint_mtu=None if mtu is None else integer("dataplane.endpoint-mtu", mtu, 1280, 65535),
        nftables=boolean("dataplane.nftables", raw.get("nftables", True)),
        rate_limits=boolean("dataplane.rate-limits", raw.get("rate-limits", True)),
        reconcile_interval=number("dataplane.reconcile-interval", raw.get("reconcile-interval", 30), 1, 3600),
    )
