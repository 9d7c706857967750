"""Policy config validation: one ConfigError line naming the term and field at fault."""
from __future__ import annotations

import pytest
import yaml

from l3fab.speaker.config import ConfigError
from l3fab.speaker.policy import Action, parse_policy_config

PLS = {"host11-locator": ["2001:db8:0:11::/64"]}


def cfg_with_term(term: dict, prefix_lists=PLS) -> dict:
    ok = {"name": "first", "match": {"family": "ipv6"}, "action": "accept"}
    return {"prefix-lists": prefix_lists, "policies": {"from-host11": {"terms": [ok, term]}}}


def error(data, path="") -> str:
    with pytest.raises(ConfigError) as e:
        parse_policy_config(data, path)
    return str(e.value)


def test_yaml_document_from_the_docs_parses():
    doc = yaml.safe_load("""
prefix-lists:
  host11-locator:
    - 2001:db8:0:11::/64
    - {prefix: 10.0.0.0/8, ge: 24, le: 32}
policies:
  from-host11:
    default: reject
    terms:
      - name: locator
        match: {family: ipv6, prefix-list: host11-locator}
        action: accept
      - name: tag-and-continue
        match: {community: ["65000:666"]}
        set: {med: 50}
        action: next
""")
    cfg = parse_policy_config(doc)
    p = cfg.policy("from-host11")
    assert [t.name for t in p.terms] == ["locator", "tag-and-continue"]
    assert [t.action for t in p.terms] == [Action.ACCEPT, Action.NEXT]
    assert not p.default_accept
    assert str(cfg.prefix_lists["host11-locator"]) == "2001:db8:0:11::/64, 10.0.0.0/8 ge 24 le 32"
    assert parse_policy_config(None).policies == {}


@pytest.mark.parametrize("term, message", [
    ({"name": "x", "match": {"next-hop-in": "nope"}, "action": "accept"},
     "policies.from-host11.terms[1].match.next-hop-in: 'nope' is not a prefix-list or prefix"),
    ({"name": "x", "match": {"prefix-list": "nope"}, "action": "accept"},
     "policies.from-host11.terms[1].match.prefix-list: 'nope' is not a defined prefix-list (defined: host11-locator)"),
    ({"name": "x", "match": {"prefix-list": ["host11-locator", "typo"]}, "action": "accept"},
     "policies.from-host11.terms[1].match.prefix-list[1]: 'typo' is not a defined prefix-list"),
    ({"name": "x", "match": {"as-path-regex": "(65001"}, "action": "accept"},
     "policies.from-host11.terms[1].match.as-path-regex: '(65001' is not a valid regular expression"),
    ({"name": "x", "match": {"famliy": "ipv6"}, "action": "accept"},
     "policies.from-host11.terms[1].match.famliy: 'ipv6' is not a known setting"),
    ({"name": "x", "match": {"family": ["ipv6", "evpn"]}, "action": "accept"},
     "policies.from-host11.terms[1].match.family[1]: 'evpn' is not a family"),
    ({"name": "x", "match": {"community": [3900011]}, "action": "accept"},
     "policies.from-host11.terms[1].match.community[0]: 3900011 is a number: quote it"),
    ({"name": "x", "match": {"community": ["65000:70000"]}, "action": "accept"},
     "policies.from-host11.terms[1].match.community[0]: '65000:70000' is not a community"),
    ({"name": "x", "match": {"route-target": ["origin:65000:1"]}, "action": "accept"},
     "policies.from-host11.terms[1].match.route-target[0]: 'origin:65000:1' is not a route target"),
    ({"name": "x", "match": {"rd": "banana"}, "action": "accept"},
     "policies.from-host11.terms[1].match.rd: 'banana' is not a route distinguisher"),
    ({"name": "x", "match": {"large-community": "1:2"}, "action": "accept"},
     "policies.from-host11.terms[1].match.large-community: '1:2' is not a large community"),
    ({"name": "x", "match": {"as-path-length": {"ge": 4, "le": 2}}, "action": "accept"},
     "policies.from-host11.terms[1].match.as-path-length.le: 2 is below ge 4"),
    ({"name": "x", "match": {"as-path-contains": "AS65001"}, "action": "accept"},
     "policies.from-host11.terms[1].match.as-path-contains: 'AS65001' is not an AS number"),
    ({"name": "x", "match": {"origin": "bgp"}, "action": "accept"},
     "policies.from-host11.terms[1].match.origin: 'bgp' is not an origin (igp, egp, incomplete)"),
    ({"name": "x", "match": {"prefix": ["10.0.0.1/8"]}, "action": "accept"},
     "policies.from-host11.terms[1].match.prefix[0]: '10.0.0.1/8' has host bits set (the network is 10.0.0.0/8)"),
    ({"name": "x", "match": {"prefix": {"prefix": "10.0.0.0/8", "le": 33}}, "action": "accept"},
     "policies.from-host11.terms[1].match.prefix.le: 33 is not an integer in 8..32"),
    ({"name": "x", "match": {"prefix": {"prefix": "10.0.0.0/16", "ge": 8}}, "action": "accept"},
     "policies.from-host11.terms[1].match.prefix.ge: 8 is not an integer in 16..32"),
    ({"name": "x", "action": "permit"},
     "policies.from-host11.terms[1].action: 'permit' is not an action (accept, reject, next)"),
    ({"name": "x"}, "policies.from-host11.terms[1].action: None is required"),
    ({"name": "first", "action": "accept"},
     "policies.from-host11.terms[1].name: 'first' is already the name of terms[0]"),
    ({"name": "x", "action": "accept", "then": "accept"},
     "policies.from-host11.terms[1].then: 'accept' is not a known setting"),
    ({"name": "x", "set": {"local-pref": -1}, "action": "accept"},
     "policies.from-host11.terms[1].set.local-pref: -1 is not an integer in 0..4294967295"),
    ({"name": "x", "set": {"next-hop": "myself"}, "action": "accept"},
     "policies.from-host11.terms[1].set.next-hop: 'myself' is not an IP address, 'self' or 'unchanged'"),
    ({"name": "x", "set": {"communities": {"replace": ["1:1"], "add": ["1:2"]}}, "action": "accept"},
     "policies.from-host11.terms[1].set.communities.replace: ['1:1'] cannot be combined with add or remove"),
    ({"name": "x", "set": {"communities": {"delete": ["1:1"]}}, "action": "accept"},
     "policies.from-host11.terms[1].set.communities.delete: ['1:1'] is not a known setting"),
    ({"name": "x", "set": {"route-targets": {"add": ["65000"]}}, "action": "accept"},
     "policies.from-host11.terms[1].set.route-targets.add[0]: '65000' is not a route target"),
    ({"name": "x", "set": {"as-path-prepend": {"asn": 65001, "count": 0}}, "action": "accept"},
     "policies.from-host11.terms[1].set.as-path-prepend.count: 0 is not an integer in 1..32"),
    ({"name": "x", "set": {"as-path-prepend": "twice"}, "action": "accept"},
     "policies.from-host11.terms[1].set.as-path-prepend: 'twice' is not a mapping"),
    ({"name": "bad name!", "action": "accept"},
     "policies.from-host11.terms[1].name: 'bad name!' is not a term name"),
])
def test_term_errors_name_the_term_and_field(term, message):
    text = error(cfg_with_term(term))
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize("data, message", [
    ({"prefix-list": {}}, "prefix-list: {} is not a known setting (known: policies, prefix-lists)"),
    ({"prefix-lists": {"a": "10.0.0.0/8"}}, "prefix-lists.a: '10.0.0.0/8' is not a list of prefixes"),
    ({"prefix-lists": {"a": ["10.0.0.0/8", "ten"]}}, "prefix-lists.a[1]: 'ten' is not an IPv4 or IPv6 prefix"),
    ({"prefix-lists": {"a": [{"ge": 8}]}}, "prefix-lists.a[0].prefix: None is required"),
    ({"prefix-lists": {"a": [{"prefix": "10.0.0.0/8", "eq": 8}]}}, "prefix-lists.a[0].eq: 8 is not a known setting"),
    ({"prefix-lists": {"10.0.0.0": []}}, "prefix-lists.10.0.0.0: '10.0.0.0' looks like a prefix"),
    ({"policies": {"p": {"default": "deny"}}}, "policies.p.default: 'deny' is not accept or reject"),
    ({"policies": {"p": {"terms": {"name": "x"}}}}, "policies.p.terms: {'name': 'x'} is not a list"),
    ({"policies": {"p": {"rules": []}}}, "policies.p.rules: [] is not a known setting"),
    ({"policies": {"p": []}}, "policies.p: [] is not a mapping"),
    ({"policies": ["p"]}, "policies: ['p'] is not a mapping"),
])
def test_structure_errors(data, message):
    assert error(data).startswith(message)


def test_path_prefixes_field_names():
    assert error({"policies": {"p": {"default": "x"}}}, path="node").startswith("node.policies.p.default: 'x'")


def test_unquoted_community_reaches_us_as_a_number_and_is_refused():
    doc = yaml.safe_load("policies: {p: {terms: [{match: {community: [65000:11]}, action: accept}]}}")
    assert doc["policies"]["p"]["terms"][0]["match"]["community"] == [3900011]  # YAML 1.1 base 60
    assert "quote it" in error(doc)
