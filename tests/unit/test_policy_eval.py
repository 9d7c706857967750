"""Policy evaluation: every match condition, every set, and the accept/reject/next flow."""
from __future__ import annotations

import pytest

from policypaths import HOST11, HOST12, SID11, SID12, unicast, vpn
from l3fab.speaker.policy import EvalContext, NextHopDirective, parse_policy, parse_policy_config
from l3fab.speaker.table.path import Path
from l3fab.speaker.wire.attributes import (
    AsPath,
    AsSegment,
    AS_SET,
    AS_SEQUENCE,
    Communities,
    ExtCommunity,
    ExtendedCommunities,
    LargeCommunities,
    LargeCommunity,
    LocalPref,
    Med,
    Origin,
    parse_community,
)
from l3fab.speaker.wire.extcommunity import TYPE_FOUR_OCTET_AS, route_target
from l3fab.speaker.wire.rd import RouteDistinguisher

C = parse_community


def policy(terms, default="reject", prefix_lists=None):
    cfg = parse_policy_config({"prefix-lists": prefix_lists or {},
                               "policies": {"p": {"default": default, "terms": terms}}})
    return cfg.policies["p"]


def accepts(match: dict, path: Path, prefix_lists=None) -> bool:
    """Whether a one-term accept policy with ``match`` accepts ``path``."""
    return policy([{"name": "t", "match": match, "action": "accept"}],
                  prefix_lists=prefix_lists).evaluate(path).accepted


# ---------------------------------------------------------------- flow


def test_example_from_the_issue():
    p = parse_policy_config({
        "prefix-lists": {"host11-locator": ["2001:db8:0:11::/64", {"prefix": "10.0.0.0/8", "ge": 24, "le": 32}]},
        "policies": {"from-host11": {"default": "reject", "terms": [
            {"name": "locator", "match": {"family": "ipv6", "prefix-list": "host11-locator"}, "action": "accept"},
            {"name": "vpn-sid-in-locator", "match": {"family": ["vpnv4", "vpnv6"], "next-hop-in": "host11-locator"},
             "set": {"local-pref": 200, "communities": {"add": ["65000:11"]}}, "action": "accept"},
            {"name": "tag-and-continue", "match": {"community": ["65000:666"]}, "set": {"med": 50},
             "action": "next"},
        ]}}}).policies["from-host11"]
    r = p.evaluate(unicast("2001:db8:0:11::/64"))
    assert (r.accepted, r.term) == (True, "locator")
    r = p.evaluate(vpn("192.168.1.0/24", next_hop=SID11))
    assert (r.accepted, r.term) == (True, "vpn-sid-in-locator")
    assert r.path.local_pref == 200 and r.path.communities == (C("65000:11"),)
    r = p.evaluate(vpn("192.168.1.0/24", next_hop=SID12, communities=(C("65000:666"),)))
    assert (r.accepted, r.term, r.decided_by) == (False, None, "default")
    assert r.path.med == 50  # the 'next' term ran before the default rejected


def test_first_deciding_term_wins_and_next_carries_sets_on():
    p = policy([
        {"name": "tag", "set": {"med": 7, "local-pref": 300}, "action": "next"},
        {"name": "deny-long", "match": {"as-path-length": {"ge": 3}}, "action": "reject"},
        {"name": "all", "set": {"med": 8}, "action": "accept"},
        {"name": "never", "action": "reject"},
    ])
    r = p.evaluate(unicast("10.0.0.0/24"))
    assert (r.accepted, r.term, r.path.med, r.path.local_pref) == (True, "all", 8, 300)
    r = p.evaluate(unicast("10.0.0.0/24", as_path=(1, 2, 3)))
    assert (r.accepted, r.term) == (False, "deny-long")


def test_default_accept_and_empty_policy():
    path = unicast("10.0.0.0/24")
    assert policy([], default="accept").evaluate(path).accepted
    r = policy([]).evaluate(path)
    assert not r.accepted and r.path is path


def test_the_input_path_is_never_modified():
    path = unicast("10.0.0.0/24")
    r = policy([{"set": {"local-pref": 5}, "action": "accept"}]).evaluate(path)
    assert r.path.local_pref == 5 and path.local_pref == 100 and path.get(LocalPref) is None


# ---------------------------------------------------------------- match conditions


def test_family():
    assert accepts({"family": "ipv6"}, unicast("2001:db8::/32"))
    assert not accepts({"family": "ipv6"}, unicast("10.0.0.0/8"))
    assert accepts({"family": ["vpnv4", "vpnv6"]}, vpn("10.0.0.0/8"))
    assert not accepts({"family": ["vpnv6"]}, vpn("10.0.0.0/8"))


def test_prefix_inside_the_rd_for_vpn_routes():
    m = {"prefix": [{"prefix": "192.168.0.0/16", "le": 32}]}
    assert accepts(m, vpn("192.168.1.0/24"))
    assert accepts(m, unicast("192.168.1.0/24"))
    assert not accepts(m, vpn("10.0.0.0/24"))


def test_prefix_list_and_inline_prefix_must_both_hold():
    pls = {"big": [{"prefix": "10.0.0.0/8", "le": 32}]}
    m = {"prefix-list": "big", "prefix": ["10.1.0.0/16"]}
    assert accepts(m, unicast("10.1.0.0/16"), pls)
    assert not accepts(m, unicast("10.2.0.0/16"), pls)
    assert accepts({"prefix-list": ["big"]}, unicast("10.2.0.0/16"), pls)


def test_next_hop_in_list_or_inline():
    pls = {"loc11": ["2001:db8:0:11::/64"]}
    assert accepts({"next-hop-in": "loc11"}, vpn("10.0.0.0/24", next_hop=SID11), pls)
    assert not accepts({"next-hop-in": "loc11"}, vpn("10.0.0.0/24", next_hop=SID12), pls)
    assert accepts({"next-hop-in": ["loc11", "2001:db8:0:12::/64"]}, vpn("10.0.0.0/24", next_hop=SID12), pls)
    no_nh = Path(unicast("10.0.0.0/24").family, unicast("10.0.0.0/24").key, None)
    assert not accepts({"next-hop-in": "::/0"}, no_nh)


def test_route_target_in_either_as_encoding():
    assert accepts({"route-target": ["65000:100"]}, vpn("10.0.0.0/24", rts=("65000:100",)))
    assert accepts({"route-target": ["target:65000:100", "65000:200"]}, vpn("10.0.0.0/24", rts=("65000:200",)))
    assert not accepts({"route-target": ["65000:100"]}, vpn("10.0.0.0/24", rts=("65000:101",)))
    four_octet = ExtCommunity(TYPE_FOUR_OCTET_AS, 2, (65000).to_bytes(4, "big") + (100).to_bytes(2, "big"))
    path = vpn("10.0.0.0/24", rts=()).with_attribute(ExtendedCommunities((four_octet,)))
    assert str(four_octet) == "target:65000:100"
    assert accepts({"route-target": ["65000:100"]}, path)


def test_rd_only_matches_vpn_routes():
    assert accepts({"rd": ["65000:100"]}, vpn("10.0.0.0/24", rd="65000:100"))
    assert not accepts({"rd": ["65000:100"]}, vpn("10.0.0.0/24", rd="65000:101"))
    assert accepts({"rd": "192.0.2.1:7"}, vpn("10.0.0.0/24", rd="192.0.2.1:7"))
    assert not accepts({"rd": ["65000:100"]}, unicast("10.0.0.0/24"))
    type2 = vpn("10.0.0.0/24")
    type2 = Path(type2.family, type2.key._replace(rd=RouteDistinguisher(2, 65000, 100)), type2.next_hop)
    assert accepts({"rd": ["65000:100"]}, type2)


def test_community_and_well_known_names():
    tagged = unicast("10.0.0.0/24", extra=(Communities((C("65000:1"), C("no-export"))),))
    assert accepts({"community": ["65000:1"]}, tagged)
    assert accepts({"community": ["NO-EXPORT"]}, tagged)
    assert not accepts({"community": ["65000:2", "blackhole"]}, tagged)
    assert not accepts({"community": ["65000:1"]}, unicast("10.0.0.0/24"))


def test_large_community():
    path = unicast("10.0.0.0/24", extra=(LargeCommunities((LargeCommunity(4200000000, 1, 2),)),))
    assert accepts({"large-community": "4200000000:1:2"}, path)
    assert not accepts({"large-community": ["4200000000:1:3"]}, path)


def test_as_path_regex_contains_and_length():
    path = unicast("10.0.0.0/24", as_path=(65001, 65002, 65003))
    assert accepts({"as-path-regex": "^65001 "}, path)
    assert accepts({"as-path-regex": ["^1$", "65003$"]}, path)
    assert not accepts({"as-path-regex": "^65002"}, path)
    assert accepts({"as-path-contains": 65002}, path)
    assert accepts({"as-path-contains": [1, "65003"]}, path)
    assert not accepts({"as-path-contains": [1, 2]}, path)
    assert accepts({"as-path-length": {"le": 3}}, path)
    assert not accepts({"as-path-length": {"le": 2}}, path)
    assert accepts({"as-path-length": 3}, path) and not accepts({"as-path-length": {"eq": 2}}, path)
    with_set = unicast("10.0.0.0/24").with_attribute(
        AsPath((AsSegment(AS_SEQUENCE, (1, 2)), AsSegment(AS_SET, (3, 4, 5)))))
    assert accepts({"as-path-length": 3}, with_set)  # a set counts one (RFC 4271 9.1.2.2)
    assert accepts({"as-path-regex": r"\{3 4 5\}$"}, with_set)


def test_origin_and_source():
    path = unicast("10.0.0.0/24")
    assert accepts({"origin": "igp"}, path)
    assert not accepts({"origin": ["egp", "incomplete"]}, path)
    assert accepts({"source": "host11"}, path)
    assert accepts({"source": ["host12", "host11"]}, path)
    assert not accepts({"source": "host12"}, path)
    assert accepts({"source": "host12"}, unicast("10.0.0.0/24", source=HOST12))


def test_all_conditions_must_hold():
    m = {"family": "vpnv4", "source": "host11", "route-target": ["65000:100"]}
    assert accepts(m, vpn("10.0.0.0/24"))
    assert not accepts(m, vpn("10.0.0.0/24", source=HOST12))
    assert not accepts(m, vpn("10.0.0.0/24", rts=("65000:9",)))
    assert not accepts(m, vpn("2001:db8::/48"))


# ---------------------------------------------------------------- sets


def apply(sets: dict, path: Path, ctx: EvalContext | None = None):
    p = policy([{"name": "s", "set": sets, "action": "accept"}])
    return p.evaluate(path, ctx) if ctx else p.evaluate(path)


def test_set_scalars():
    r = apply({"local-pref": 250, "med": 0, "origin": "incomplete"}, unicast("10.0.0.0/24"))
    assert (r.path.local_pref, r.path.get(Med), r.path.origin) == (250, Med(0), 2)
    assert sum(isinstance(a, Origin) for a in r.path.attributes) == 1


def test_set_next_hop_address_and_directives():
    r = apply({"next-hop": "2001:db8::99"}, vpn("10.0.0.0/24"))
    assert r.path.next_hop.address == "2001:db8::99" and r.next_hop is None
    r = apply({"next-hop": "self"}, vpn("10.0.0.0/24"))
    assert r.next_hop is NextHopDirective.SELF and r.path.next_hop.address == SID11
    assert apply({"next-hop": "unchanged"}, vpn("10.0.0.0/24")).next_hop is NextHopDirective.UNCHANGED
    p = policy([{"set": {"next-hop": "self"}, "action": "next"},
                {"set": {"next-hop": "192.0.2.1"}, "action": "accept"}])
    r = p.evaluate(unicast("10.0.0.0/24"))
    assert r.next_hop is None and r.path.next_hop.address == "192.0.2.1"  # the later address wins


def test_communities_add_remove_replace():
    path = unicast("10.0.0.0/24", extra=(Communities((C("65000:1"), C("65000:2"))),))
    assert apply({"communities": {"add": ["65000:3", "65000:1"]}}, path).path.communities == (
        C("65000:1"), C("65000:2"), C("65000:3"))
    assert apply({"communities": {"remove": ["65000:1"], "add": ["no-export"]}}, path).path.communities == (
        C("65000:2"), C("no-export"))
    assert apply({"communities": {"replace": ["65000:9"]}}, path).path.communities == (C("65000:9"),)
    gone = apply({"communities": {"remove": "all"}}, path).path
    assert gone.get(Communities) is None
    assert apply({"communities": {"replace": []}}, path).path.get(Communities) is None
    assert apply({"communities": {"add": ["65000:5"]}}, unicast("10.0.0.0/24")).path.communities == (C("65000:5"),)


def test_large_communities_edit():
    path = unicast("10.0.0.0/24", extra=(LargeCommunities((LargeCommunity(1, 2, 3),)),))
    r = apply({"large-communities": {"remove": ["1:2:3"], "add": ["4:5:6"]}}, path)
    assert r.path.large_communities == (LargeCommunity(4, 5, 6),)


def test_route_targets_edit_keeps_other_extended_communities():
    origin = ExtCommunity.parse("origin:65000:1")
    path = vpn("10.0.0.0/24", rts=("65000:100", "65000:200"))
    path = path.with_attribute(ExtendedCommunities(path.ext_communities + (origin,)))
    r = apply({"route-targets": {"remove": "all", "add": ["65000:300"]}}, path)
    assert set(r.path.ext_communities) == {origin, route_target("65000:300")}
    r = apply({"route-targets": {"remove": ["target:65000:100"]}}, path)
    assert r.path.route_targets == (route_target("65000:200"),) and origin in r.path.ext_communities
    r = apply({"route-targets": {"replace": ["65000:1"]}}, vpn("10.0.0.0/24", rts=("65000:100",)))
    assert r.path.ext_communities == (route_target("65000:1"),)


def test_as_path_prepend_with_local_as_from_the_context():
    path = unicast("10.0.0.0/24", as_path=(65011,))
    assert apply({"as-path-prepend": 2}, path, EvalContext(local_as=65100)).path.as_path.asns() == [
        65100, 65100, 65011]
    assert apply({"as-path-prepend": {"asn": 65200, "count": 3}}, path).path.as_path.asns() == [
        65200, 65200, 65200, 65011]
    with pytest.raises(ValueError, match="local_as"):
        apply({"as-path-prepend": 1}, path)


def test_parse_policy_reads_one_body():
    p = parse_policy("solo", {"terms": [{"match": {"source": "host11"}, "action": "accept"}]})
    assert p.name == "solo" and p.terms[0].name == "term-1"
    assert p.evaluate(unicast("10.0.0.0/24", source=HOST11)).accepted
    assert not p.evaluate(unicast("10.0.0.0/24", source=HOST12)).accepted


def test_later_terms_see_what_earlier_next_terms_set():
    p = policy([
        {"name": "tag", "match": {"source": "host11"}, "set": {"communities": {"add": ["65000:1"]}}, "action": "next"},
        {"name": "tagged", "match": {"community": ["65000:1"]}, "set": {"as-path-prepend": 1}, "action": "accept"},
    ])
    r = p.evaluate(unicast("10.0.0.0/24", source=HOST11), EvalContext(local_as=65100))
    assert (r.accepted, r.term) == (True, "tagged")
    assert r.path.as_path.asns() == [65100, 65011] and r.path.communities == (C("65000:1"),)
    assert not p.evaluate(unicast("10.0.0.0/24", source=HOST12)).accepted
