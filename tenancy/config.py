"""The ``tenancy:`` section of the node config: the node settings allocations derive
from (router id, fabric ASN, locator, table range) and where the intent is stored."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from l3fab.speaker.errors import ConfigError
from l3fab.speaker.fields import asn, check_keys, integer, ipv4_address, string

from .node import DEFAULT_TABLE_RANGE, NodeSettings

KEYS = {"fabric-asn", "locator", "state-file", "table-range"}
DEFAULT_STATE_FILE = "/var/lib/l3fab/intent.json"


@dataclass(frozen=True)
class TenancyConfig:
    node: NodeSettings
    state_file: str = DEFAULT_STATE_FILE

    @property
    def locator(self) -> str:
        return self.node.locator


def parse_tenancy(raw: Any, router_id: Any) -> TenancyConfig:
    """``router_id``: the node's (it gives the RDs)."""
    if not isinstance(raw, dict):
        raise ConfigError("tenancy", raw, "is not a mapping")
    check_keys("tenancy", raw, KEYS)
    for req in ("fabric-asn", "locator"):
        if req not in raw:
            raise ConfigError(f"tenancy.{req}", None, "is required")
    tr = raw.get("table-range", list(DEFAULT_TABLE_RANGE))
    if not isinstance(tr, list) or len(tr) != 2:
        raise ConfigError("tenancy.table-range", tr, "is not [first, last]")
    node = NodeSettings(ipv4_address("router-id", router_id), asn("tenancy.fabric-asn", raw["fabric-asn"]),
                        string("tenancy.locator", raw["locator"]),
                        (integer("tenancy.table-range[0]", tr[0], 1, 2**31 - 1),
                         integer("tenancy.table-range[1]", tr[1], 1, 2**31 - 1)))
    return TenancyConfig(node, string("tenancy.state-file", raw.get("state-file", DEFAULT_STATE_FILE)))
