"""Shared helpers for the tenancy tests: a node, an Intent in a temp dir, fake interfaces."""
from __future__ import annotations

from l3fab.tenancy import Intent, NodeSettings

NODE = NodeSettings(router_id="192.0.2.1", fabric_asn=65000, locator="2001:db8:0:1::/64")


class FakeInterfaces:
    """The injectable ``interface_exists``: the names in ``present``."""

    def __init__(self, *present: str) -> None:
        self.present = set(present)

    def __call__(self, name: str) -> bool:
        return name in self.present


ALL_TAPS = FakeInterfaces(*(f"tap{i}" for i in range(50)), "vf0", "veth-a")


def new_intent(tmp_path, node: NodeSettings = NODE, interfaces=ALL_TAPS) -> Intent:
    return Intent.load(tmp_path / "intent.json", node, interface_exists=interfaces)


def reload(intent: Intent) -> Intent:
    return Intent.load(intent.path, intent.node, interface_exists=intent.interface_exists)
