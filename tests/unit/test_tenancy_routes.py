"""What the host originates for its endpoints, and which VRFs import a received route."""
from __future__ import annotations

import pytest
from tenancy_fixtures import new_intent

from l3fab.speaker.origination import LocalRoute, parse_route
from l3fab.speaker.wire.constants import IPV6_UNICAST, VPNV4, VPNV6
from l3fab.speaker.wire.extcommunity import ExtCommunity
from l3fab.tenancy import NodeSettings, decide_import, peering_effective
from l3fab.tenancy.model import TenantSpec

OTHER_SID = "2001:db8:0:2::100"  # another host's locator


@pytest.fixture
def intent(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("blue", 100)
    i.create_tenant("red", 200)
    i.create_tenant("green", 300, families="ipv4-only")
    i.add_endpoint("web0", "blue", "tap0", ipv4="10.0.0.5", ipv6="2001:db8:100::5")
    i.add_endpoint("db0", "green", "tap1", ipv4="10.0.0.5")
    return i


# ---------------------------------------------------------------- peering


def test_peering_is_effective_only_when_both_sides_list_each_other(intent):
    intent.set_peers("blue", ["red"])
    assert intent.tenant("blue").effective_peers == ()
    assert not peering_effective(intent.tenant("blue"), intent.tenant("red"))
    intent.set_peers("red", ["blue"])
    assert peering_effective(intent.tenant("blue"), intent.tenant("red"))
    assert peering_effective(intent.tenant("red"), intent.tenant("blue"))
    assert (intent.tenant("blue").effective_peers, intent.tenant("red").effective_peers) == (("red",), ("blue",))
    assert intent.tenant("green").effective_peers == ()


def test_a_tenant_never_peers_with_itself():
    t = TenantSpec("a", 1, peers=("a",))
    assert not peering_effective(t, t)


# ---------------------------------------------------------------- origination


def test_originated_routes_are_typed_route_records(intent):
    parsed = intent.originated_routes()
    assert all(type(r) is LocalRoute for r in parsed)
    assert [(p.family, str(p.nlri.prefix if p.family.is_vpn else p.nlri)) for p in parsed] == [
        (IPV6_UNICAST, "2001:db8:0:1::/64"),
        (VPNV4, "10.0.0.5/32"),  # db0 (sorted by endpoint name)
        (VPNV4, "10.0.0.5/32"),  # web0
        (VPNV6, "2001:db8:100::5/128"),
    ]
    locator = parsed[0]
    assert locator.next_hop is None  # next-hop-self on each session
    db0, web0_v4, web0_v6 = parsed[1:]
    assert (str(db0.nlri.rd), db0.nlri.labels, db0.next_hop.address) == ("192.0.2.1:300", (300,), "2001:db8:0:1::102")
    assert (str(web0_v4.nlri.rd), web0_v4.nlri.labels, web0_v4.next_hop.address) == ("192.0.2.1:100", (100,),
                                                                                       "2001:db8:0:1::100")
    assert web0_v6.next_hop.address == "2001:db8:0:1::101"
    ext = [a for a in web0_v6.attributes if type(a).__name__ == "ExtendedCommunities"][0]
    assert [str(c) for c in ext.communities] == ["target:65000:100"]


def test_origination_for_large_vnis_and_a_4_octet_fabric_asn_still_parses(tmp_path):
    i = new_intent(tmp_path, node=NodeSettings("192.0.2.1", 4200000000, "2001:db8:0:1::/64"))
    i.create_tenant("big", 16777215)
    i.create_tenant("small", 7)
    i.add_endpoint("a", "big", "tap0", ipv4="10.0.0.1")
    i.add_endpoint("b", "small", "tap1", ipv6="2001:db8::1")
    a, b = i.originated_routes()[1:]
    assert (str(a.nlri.rd), a.nlri.labels) == ("192.0.2.1:65535", (0,))
    assert [str(c) for c in a.attributes[-1].communities] == [f"target:{4200000000 & 0xFFFF}:16777215"]
    assert [(c.type, str(c)) for c in b.attributes[-1].communities] == [(0x02, "target:4200000000:7")]


def test_without_endpoints_only_the_locator_is_originated(tmp_path):
    assert new_intent(tmp_path).originated_routes() == [parse_route({"prefix": "2001:db8:0:1::/64"})]


# ---------------------------------------------------------------- import


def test_route_goes_into_the_tenant_with_its_route_target(intent):
    policy = intent.import_policy()
    d = policy.decide(["target:65000:100"], "192.0.2.2:100", OTHER_SID)
    assert (d.vrfs, d.accepted) == (("blue",), True)
    assert policy.decide([ExtCommunity.parse("target:65000:300")], "192.0.2.2:300", OTHER_SID).vrfs == ("green",)


def test_route_without_a_local_tenant_rt_is_imported_nowhere_never_into_default(intent):
    policy = intent.import_policy()
    for rts in ([], ["target:65000:999"], ["target:65001:100"], ["origin:65000:100"], ["65000:100:bad"]):
        d = policy.decide(rts, "192.0.2.2:1", OTHER_SID)
        assert (d.vrfs, d.reason) == ((), "no route target of a local tenant")


def test_peering_imports_across_tenants_only_when_effective(intent):
    intent.set_peers("blue", ["red"])
    assert intent.import_policy().decide(["target:65000:200"], "192.0.2.2:200", OTHER_SID).vrfs == ("red",)
    intent.set_peers("red", ["blue"])
    policy = intent.import_policy()
    assert policy.decide(["target:65000:200"], "192.0.2.2:200", OTHER_SID).vrfs == ("blue", "red")
    assert policy.decide(["target:65000:100"], "192.0.2.2:100", OTHER_SID).vrfs == ("blue", "red")
    assert policy.decide(["target:65000:300"], "192.0.2.2:300", OTHER_SID).vrfs == ("green",)


def test_next_hop_inside_own_locator_without_local_sid_is_rejected(intent):
    d = intent.import_policy().decide(["target:65000:100"], "192.0.2.2:100", "2001:db8:0:1::dead")
    assert not d.accepted
    assert d.reason == "next hop 2001:db8:0:1::dead is inside this host's locator 2001:db8:0:1::/64 but no local SID"


def test_own_route_coming_back_is_not_imported(intent):
    policy = intent.import_policy()
    d = policy.decide(["target:65000:100"], "192.0.2.1:100", "2001:db8:0:1::100")
    assert (d.vrfs, d.reason) == ((), "own route: next hop 2001:db8:0:1::100 is the SID of local endpoint 'web0'")
    d = policy.decide(["target:65000:100"], "192.0.2.1:100", OTHER_SID)
    assert (d.vrfs, d.reason) == ((), "own route: RD 192.0.2.1:100 is tenant 'blue''s on this host")


def test_a_freed_sid_counts_as_unknown(intent):
    intent.remove_endpoint("web0")
    d = intent.import_policy().decide(["target:65000:100"], "192.0.2.2:100", "2001:db8:0:1::100")
    assert not d.accepted and "but no local SID" in d.reason


@pytest.mark.parametrize("next_hop, reason", [
    ("192.0.2.7", "next hop 192.0.2.7 is not an IPv6 SID"),
    ("::ffff:192.0.2.7", "next hop ::ffff:192.0.2.7 is not an IPv6 SID"),
    ("garbage", "next hop 'garbage' is not an IP address"),
])
def test_next_hop_must_be_an_ipv6_sid(intent, next_hop, reason):
    d = intent.import_policy().decide(["target:65000:100"], "192.0.2.2:100", next_hop)
    assert (d.vrfs, d.reason) == ((), reason)


def test_one_shot_decide_import_matches_the_policy(intent):
    d = decide_import(intent.node, intent.tenants(), intent.endpoints(), ["target:65000:100"], "192.0.2.2:100",
                      OTHER_SID)
    assert d.to_dict() == {"vrfs": ["blue"], "reason": "route target"}
