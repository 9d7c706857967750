"""Tenant-separation policies (ARCHITECTURE.md) built in the policy language, against
a good host and a rogue one."""
from __future__ import annotations

import pytest

from policypaths import HOST12, LOCATOR11, LOCATOR12, SID11, SID12, unicast, vpn
from l3fab.speaker.policy import parse_policy
from l3fab.speaker.policy.roles import (
    host_export,
    host_export_config,
    host_import,
    leaf_from_host,
    leaf_from_host_config,
)

ROGUE_SID = "2001:db8:0:12::666"  # host11 pretending to own a SID of host12


# ---------------------------------------------------------------- leaf, session to host11


@pytest.fixture
def leaf():
    return leaf_from_host(LOCATOR11)


def test_leaf_accepts_the_hosts_locator_and_its_vpn_routes(leaf):
    r = leaf.evaluate(unicast(LOCATOR11))
    assert (r.accepted, r.term) == (True, "own-locator")
    for path in (vpn("192.168.10.0/24", next_hop=SID11), vpn("2001:db8:100::/64", next_hop=SID11)):
        r = leaf.evaluate(path)
        assert (r.accepted, r.term) == (True, "vpn-next-hop-in-locator")
        assert r.path == path  # nothing changed on the way in


def test_leaf_rejects_what_a_rogue_host_announces(leaf):
    rogue = [
        unicast(LOCATOR12),  # another host's locator: would pull its SIDs' traffic
        unicast("2001:db8:0:11::/48"),  # a covering prefix
        unicast("2001:db8:0:11:8000::/65"),  # a more-specific inside its own locator
        unicast("0.0.0.0/0"),
        unicast("::/0"),
        vpn("192.168.10.0/24", next_hop=ROGUE_SID),  # a VPN route pointing at host12's SID
        vpn("192.168.10.0/24", next_hop="192.0.2.11"),  # an IPv4 next hop, not a SID
        vpn(LOCATOR11, next_hop=SID12),
    ]
    for path in rogue:
        r = leaf.evaluate(path)
        assert (r.accepted, r.term) == (False, None), path


def test_leaf_policy_is_the_same_language_as_yaml():
    cfg = leaf_from_host_config(LOCATOR11)
    assert cfg["terms"][0]["match"] == {"family": "ipv6", "prefix": [LOCATOR11]}
    assert parse_policy("leaf-from-host", cfg) == leaf_from_host(LOCATOR11)


def test_locator_must_be_an_ipv6_network():
    with pytest.raises(ValueError):
        leaf_from_host("10.0.0.0/8")
    with pytest.raises(ValueError):
        leaf_from_host("2001:db8:0:11::1/64")


# ---------------------------------------------------------------- host export


def test_host_export_sends_only_own_locator_and_own_vpn_routes():
    p = host_export(LOCATOR11)
    assert p.evaluate(unicast(LOCATOR11)).accepted
    assert p.evaluate(vpn("192.168.10.0/24", next_hop=SID11)).accepted
    # A route learned from another host (SID outside own locator) is not re-exported.
    assert not p.evaluate(vpn("192.168.20.0/24", next_hop=SID12, source=HOST12)).accepted
    assert not p.evaluate(unicast(LOCATOR12, source=HOST12)).accepted
    assert not p.evaluate(unicast("10.1.0.0/24")).accepted


def test_host_export_with_allowed_route_targets():
    p = host_export(LOCATOR11, ["65000:100", "target:65000:200"])
    assert host_export_config(LOCATOR11, ["65000:100"])["terms"][1]["match"]["route-target"] == ["65000:100"]
    assert p.evaluate(vpn("192.168.10.0/24", rts=("65000:100",))).accepted
    assert p.evaluate(vpn("192.168.10.0/24", rts=("65000:200", "65000:999"))).accepted
    r = p.evaluate(vpn("192.168.10.0/24", rts=("65000:300",)))  # another tenant's RT
    assert not r.accepted
    assert not p.evaluate(vpn("192.168.10.0/24", rts=())).accepted
    assert p.evaluate(unicast(LOCATOR11)).accepted
    with pytest.raises(ValueError):
        host_export(LOCATOR11, [])


# ---------------------------------------------------------------- host import


def test_host_import_rejects_claims_on_own_sids():
    p = host_import(LOCATOR11)
    # Someone else announcing a VPN route whose next hop is one of host11's SIDs.
    r = p.evaluate(vpn("192.168.99.0/24", next_hop="2001:db8:0:11::beef", source=HOST12))
    assert (r.accepted, r.term) == (False, "vpn-next-hop-in-own-locator")
    # A hijack of (part of) own locator in the underlay.
    r = p.evaluate(unicast("2001:db8:0:11::beef/128", source=HOST12))
    assert (r.accepted, r.term) == (False, "own-locator-from-outside")
    assert not p.evaluate(unicast(LOCATOR11, source=HOST12)).accepted


def test_host_import_accepts_other_hosts_routes():
    p = host_import(LOCATOR11)
    for path in (vpn("192.168.20.0/24", next_hop=SID12, source=HOST12), unicast(LOCATOR12, source=HOST12),
                 unicast("2001:db8::/32", source=HOST12), unicast("0.0.0.0/0", source=HOST12)):
        r = p.evaluate(path)
        assert (r.accepted, r.term) == (True, None), path
