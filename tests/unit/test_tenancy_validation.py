"""Validation: every refusal is one line naming field and value, and leaves the
state in memory and on disk exactly as it was."""
from __future__ import annotations

import pytest
from tenancy_fixtures import NODE, FakeInterfaces, new_intent, reload

from l3fab.tenancy import IntentError, NodeSettings


@pytest.fixture
def intent(tmp_path):
    i = new_intent(tmp_path, interfaces=FakeInterfaces("tap0", "tap1", "tap2", "vf0", "veth-a"))
    i.create_tenant("blue", 100)
    i.create_tenant("v4", 200, families="ipv4-only")
    i.create_tenant("v6", 300, families="ipv6-only")
    i.add_endpoint("web0", "blue", "tap0", ipv4="10.0.0.5", ipv6="2001:db8:100::5")
    return i


REFUSALS = [
    # (change, exact message)
    (lambda i: i.add_endpoint("web1", "blue", "tap1", ipv4="10.0.0.5"),
     "endpoints[web1].ipv4: '10.0.0.5' is already used by endpoint 'web0' in tenant 'blue'"),
    (lambda i: i.add_endpoint("web1", "blue", "tap1", ipv6="2001:db8:100::5/128"),
     "endpoints[web1].ipv6: '2001:db8:100::5' is already used by endpoint 'web0' in tenant 'blue'"),
    (lambda i: i.add_endpoint("x", "v4", "tap1", ipv4="10.0.0.9", ipv6="2001:db8::9"),
     "endpoints[x].ipv6: '2001:db8::9' is not allowed: tenant 'v4' is ipv4-only"),
    (lambda i: i.add_endpoint("x", "v6", "tap1", ipv4="10.0.0.9"),
     "endpoints[x].ipv4: '10.0.0.9' is not allowed: tenant 'v6' is ipv6-only"),
    (lambda i: i.add_endpoint("x", "nope", "tap1", ipv4="10.0.0.9"),
     "endpoints[x].tenant: 'nope' is not a tenant"),
    (lambda i: i.create_tenant("red", 100),
     "tenants[red].vni: 100 is already used by tenant 'blue'"),
    (lambda i: i.add_endpoint("x", "blue", "tap9", ipv4="10.0.0.9"),
     "endpoints[x].interface: 'tap9' does not exist on this host"),
    (lambda i: i.add_endpoint("web0", "v4", "tap1", ipv4="10.0.0.9"),
     "endpoint.name: 'web0' already exists (tenant 'blue')"),
    (lambda i: i.add_endpoint("x", "v4", "tap0", ipv4="10.0.0.9"),
     "endpoints[x].interface: 'tap0' is already used by endpoint 'web0'"),
    (lambda i: i.delete_tenant("blue"),
     "tenants[blue]: 'blue' still has 1 endpoint(s) (web0); remove them first"),
    (lambda i: i.create_tenant("red", 400, peers=["green"]),
     "tenants[red].peers: 'green' is not a tenant"),
    (lambda i: i.set_peers("blue", ["green"]),
     "tenants[blue].peers: 'green' is not a tenant"),
    (lambda i: i.set_peers("blue", ["blue"]),
     "tenants[blue].peers: 'blue' is the tenant itself"),
    (lambda i: i.create_tenant("blue", 999),
     "tenant.name: 'blue' already exists"),
    (lambda i: i.create_tenant("red", 0),
     "tenants[red].vni: 0 is not a VNI (1-16777215)"),
    (lambda i: i.create_tenant("red", 16777216),
     "tenants[red].vni: 16777216 is not a VNI (1-16777215)"),
    (lambda i: i.create_tenant("red", 5, families="ipx"),
     "tenants[red].families: 'ipx' is not an address-family choice (ipv4-only, dual-stack, ipv6-only)"),
    (lambda i: i.create_tenant("bad name", 5),
     "tenant.name: 'bad name' is not a name (letters, digits, '_', '.', '-'; up to 63, first a letter or digit)"),
    (lambda i: i.delete_tenant("green"),
     "tenant.name: 'green' is not a tenant"),
    (lambda i: i.remove_endpoint("ghost"),
     "endpoint.name: 'ghost' is not an endpoint"),
    (lambda i: i.add_endpoint("x", "blue", "tap1"),
     "endpoints[x].ipv4: None and ipv6 are both missing: an endpoint needs at least one address"),
    (lambda i: i.add_endpoint("x", "blue", "tap1", ipv4="10.0.0.0/24"),
     "endpoints[x].ipv4: '10.0.0.0/24' is not a host address (/32)"),
    (lambda i: i.add_endpoint("x", "blue", "tap1", ipv4="2001:db8::1"),
     "endpoints[x].ipv4: '2001:db8::1' is not an IPv4 address"),
    (lambda i: i.add_endpoint("x", "blue", "tap1", ipv4="169.254.0.1"),
     "endpoints[x].ipv4: '169.254.0.1' cannot be an endpoint address (unspecified, multicast, loopback or link-local)"),
    (lambda i: i.add_endpoint("x", "blue", "tap1", ipv6="2001:db8::/64"),
     "endpoints[x].ipv6: '2001:db8::/64' is not a host address (/128)"),
    (lambda i: i.add_endpoint("x", "blue", "a-very-long-interface", ipv4="10.0.0.9"),
     "endpoints[x].interface: 'a-very-long-interface' is not an interface name "
     "(1-15 characters: letters, digits, '_', '.', ':', '@', '-')"),
    (lambda i: i.add_endpoint("x", "blue", "tap1", ipv4="10.0.0.9", rate_limit="100mbps"),
     "endpoints[x].rate-limit: '100mbps' is ambiguous: tc reads mbps as bytes per second; write bits, e.g. 100mbit"),
    (lambda i: i.add_endpoint("x", "blue", "tap1", ipv4="10.0.0.9", rate_limit="fast"),
     "endpoints[x].rate-limit: 'fast' is not a rate such as 100mbit or 1gbit"),
    # issue 10 finding 2: a final newline (or any control character) is refused, never saved
    (lambda i: i.add_endpoint("web2\n", "blue", "tap1", ipv4="10.0.0.9"),
     "endpoint.name: 'web2\\n' contains a control or non-printable character ('\\n')"),
    (lambda i: i.add_endpoint("web2", "blue", "tap1\n", ipv4="10.0.0.9"),
     "endpoints[web2].interface: 'tap1\\n' contains a control or non-printable character ('\\n')"),
    (lambda i: i.add_endpoint("web2", "blue\n", "tap1", ipv4="10.0.0.9"),
     "endpoints[web2].tenant: 'blue\\n' contains a control or non-printable character ('\\n')"),
    (lambda i: i.add_endpoint("web2", "blue", "tap1", ipv4="10.0.0.9\n"),
     "endpoints[web2].ipv4: '10.0.0.9\\n' contains a control or non-printable character ('\\n')"),
    (lambda i: i.create_tenant("red\x1b[31m", 5),
     "tenant.name: 'red\\x1b[31m' contains a control or non-printable character ('\\x1b')"),
    (lambda i: i.create_tenant("red", "5\n"),
     "tenants[red].vni: '5\\n' contains a control or non-printable character ('\\n')"),
    (lambda i: i.create_tenant("red", 5, peers=["blue\u2028"]),
     "tenants[red].peers: 'blue\\u2028' contains a control or non-printable character ('\\u2028')"),
    (lambda i: i.set_peers("blue\r", []),
     "tenant.name: 'blue\\r' contains a control or non-printable character ('\\r')"),
    # issue 10 finding 11: a rate tc cannot shape is refused, not saved to fail in tc later
    (lambda i: i.add_endpoint("x", "blue", "tap1", ipv4="10.0.0.9", rate_limit="99999999999999999999gbit"),
     "endpoints[x].rate-limit: '99999999999999999999gbit' is above 500000000000 bit/s (500gbit), the fastest "
     "rate tc can shape (its tbf queue limit overflows)"),
]


@pytest.mark.parametrize("change, message", REFUSALS, ids=[m.split(":")[0] + " " + m.split(" ", 2)[-1][:30]
                                                          for _, m in REFUSALS])
def test_refusal_names_field_and_value_and_changes_nothing(intent, change, message):
    before_memory = intent.to_dict()
    before_state = intent.state
    before_disk = intent.path.read_bytes()
    with pytest.raises(IntentError) as err:
        change(intent)
    text = str(err.value)
    assert text == message
    assert "\n" not in text
    assert intent.state is before_state
    assert intent.to_dict() == before_memory
    assert intent.path.read_bytes() == before_disk
    assert reload(intent).to_dict() == before_memory


def test_overlapping_addresses_across_tenants_are_allowed(intent):
    intent.create_tenant("red", 500)
    e = intent.add_endpoint("red0", "red", "tap1", ipv4="10.0.0.5", ipv6="2001:db8:100::5")
    assert (e.ipv4, e.ipv6) == ("10.0.0.5", "2001:db8:100::5")
    assert set(intent.endpoint("web0").sids).isdisjoint(e.sids)


def test_families_decide_which_addresses_an_endpoint_may_have(intent):
    assert intent.add_endpoint("a", "v4", "tap1", ipv4="10.1.0.1").sid6 is None
    assert intent.add_endpoint("b", "v6", "tap2", ipv6="2001:db8:1::1").sid4 is None
    dual = intent.add_endpoint("c", "blue", "vf0", ipv4="10.2.0.1")  # dual-stack tenant, IPv4 only: fine
    assert (dual.ipv4, dual.ipv6) == ("10.2.0.1", None)
    assert [t.families for t in intent.tenants()] == ["dual-stack", "ipv4-only", "ipv6-only"]
    assert (intent.tenant("v4").ipv4, intent.tenant("v4").ipv6) == (True, False)


def test_family_aliases_are_accepted(tmp_path):
    i = new_intent(tmp_path)
    assert i.create_tenant("a", 1, families="ipv4").families == "ipv4-only"
    assert i.create_tenant("b", 2, families="IPv6").families == "ipv6-only"
    assert i.create_tenant("c", 3, families="dual").families == "dual-stack"


def test_deleting_a_tenant_still_listed_as_a_peer_is_refused(intent):
    intent.set_peers("blue", ["v4"])
    with pytest.raises(IntentError, match=r"^tenants\[v4\]: 'v4' is still listed as a peer by tenant 'blue'; "):
        intent.delete_tenant("v4")
    intent.set_peers("blue", [])
    intent.delete_tenant("v4")
    assert [t.name for t in intent.tenants()] == ["blue", "v6"]


def test_unknown_lookups_are_one_line_errors(intent):
    with pytest.raises(IntentError, match=r"^tenant: 'x' is not a tenant$"):
        intent.tenant("x")
    with pytest.raises(IntentError, match=r"^endpoint: 'x' is not an endpoint$"):
        intent.endpoint("x")
    with pytest.raises(IntentError, match=r"^tenant: 'x' is not a tenant$"):
        intent.endpoints("x")


def test_interface_check_defaults_to_sysfs(tmp_path):
    from l3fab.tenancy import Intent
    i = Intent.load(tmp_path / "s.json", NODE)
    i.create_tenant("blue", 100)
    assert i.add_endpoint("lo-ep", "blue", "lo", ipv4="10.0.0.1").interface == "lo"
    with pytest.raises(IntentError, match=r"^endpoints\[x\]\.interface: 'no-such-if0' does not exist on this host$"):
        i.add_endpoint("x", "blue", "no-such-if0", ipv4="10.0.0.2")


def test_rate_limit_is_parsed_to_bits_per_second(intent):
    e = intent.add_endpoint("x", "blue", "tap1", ipv4="10.0.0.9", rate_limit="100mbit")
    assert e.rate_limit == 100_000_000
    assert e.to_dict()["rate_limit_text"] == "100mbit"
    assert intent.add_endpoint("y", "blue", "tap2", ipv4="10.0.0.10", rate_limit="1.5gbit").rate_limit == 1_500_000_000


@pytest.mark.parametrize("kwargs, message", [
    (dict(router_id="x", fabric_asn=65000, locator="2001:db8::/64"), "router-id: 'x' is not an IPv4 address"),
    (dict(router_id="192.0.2.1", fabric_asn=0, locator="2001:db8::/64"),
     "fabric-asn: 0 is not an AS number (1-4294967295)"),
    (dict(router_id="192.0.2.1", fabric_asn=65000, locator="2001:db8::1/64"),
     "locator: '2001:db8::1/64' is not an IPv6 prefix (host bits clear)"),
    (dict(router_id="192.0.2.1", fabric_asn=65000, locator="10.0.0.0/8"),
     "locator: '10.0.0.0/8' is not an IPv6 prefix (host bits clear)"),
    (dict(router_id="192.0.2.1", fabric_asn=65000, locator="2001:db8::/64", table_range=(100, 300)),
     "table-range: '100-300' includes the kernel's reserved table 253"),
    (dict(router_id="192.0.2.1", fabric_asn=65000, locator="2001:db8::/64", table_range=(5, 1)),
     "table-range: (5, 1) is not a range LOW-HIGH of table ids (1-4294967295)"),
])
def test_node_settings_errors(kwargs, message):
    with pytest.raises(IntentError) as err:
        NodeSettings(**kwargs)
    assert str(err.value) == message
