"""lab/clos-topology.clab.yml: valid for containerlab, parsed into the model, rendered.

The schema check reads containerlab's own ``clab.schema.json`` from ``../shared/containerlab``
next to the repository (CI always has it; elsewhere the test skips and says why).
"""
from __future__ import annotations

import copy
import ipaddress
import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer import Typer
from typer.testing import CliRunner

from l3fab.cli.render import app as render_app
from l3fab.lab import render
from l3fab.lab.topology import DEFAULT_LAB, TopologyError, load, parse
from l3fab.cli.app.daemon import load_app_config
from l3fab.speaker.config import load_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO.parent / "shared" / "containerlab" / "clab.schema.json"
RAW = yaml.safe_load(DEFAULT_LAB.read_text())
TOPO = load()


def mutated(change) -> dict:
    data = copy.deepcopy(RAW)
    change(data)
    return data


def nodes(data: dict) -> dict:
    return data["topology"]["nodes"]


def label(node: str, key: str, value):
    """A change for :func:`mutated`: set one ``l3fab.*`` label of one node."""
    return lambda d: nodes(d)[node]["labels"].update({f"l3fab.{key}": value})


# ---------------------------------------------------------------- containerlab's schema


@pytest.fixture(scope="module")
def validator():
    if not SCHEMA.exists():
        reason = f"containerlab schema not found at {SCHEMA} (shared/ is not beside this clone)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set, so the schema check must run, but: {reason}")
        pytest.skip(reason)
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft7Validator  # the schema declares draft-07; refs are all internal
    # Structure only: a few of its patterns use Go's \p{L}/\p{N} classes, which Python's re
    # lacks (they are only compiled for fields this lab does not use, e.g. mgmt-ipv6).
    cls.check_schema(schema, format_checker=None)
    return cls(schema)


def test_lab_file_is_valid_for_containerlab(validator):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(RAW)]
    assert errors == []


@pytest.mark.parametrize("change, where", [
    (lambda d: d["topology"]["links"][0].update(mtu="jumbo"), ["topology", "links", 0]),
    (lambda d: d.update({"x-l3fab": {"tenants": []}}), []),
    (lambda d: nodes(d)["leaf1"].update(kind="sonic"), ["topology", "nodes", "leaf1"]),
    (label("host1", "asn", ""), ["topology", "nodes", "host1"]),
    (lambda d: nodes(d)["spine1"].update(binds="generated/spine1/frr.conf"), ["topology", "nodes", "spine1"]),
], ids=["mtu-string", "unknown-top-level-key", "unknown-kind", "empty-label", "binds-not-a-list"])
def test_schema_rejects_a_broken_copy(validator, change, where):
    errors = list(validator.iter_errors(mutated(change)))
    assert errors, "the broken copy was accepted"
    assert any(list(e.absolute_path)[:len(where)] == where for e in errors), [e.message for e in errors]


# ---------------------------------------------------------------- the model


def test_clos_shape():
    assert [n.name for n in TOPO.spines] == ["spine1", "spine2"]
    assert [n.name for n in TOPO.leaves] == ["leaf1", "leaf2", "leaf3", "leaf4"]
    assert [n.name for n in TOPO.hosts] == ["host1", "host2", "host3", "host4"]
    assert {n.kind for n in TOPO.spines + TOPO.leaves} == {"sonic-vs"}
    assert {(n.kind, n.engine) for n in TOPO.hosts} == {("linux", "l3fab")}
    assert {n.engine for n in TOPO.spines + TOPO.leaves} == {"frr"}
    # RFC 7938: spines share an ASN, every leaf and host has its own; hosts private 4-byte
    assert {n.asn for n in TOPO.spines} == {65000}
    assert len({n.asn for n in TOPO.leaves + TOPO.hosts}) == 8
    assert all(4200000000 <= n.asn <= 4294967294 for n in TOPO.hosts)
    assert TOPO.fabric_asn == 65000
    # every spine to every leaf
    for s in TOPO.spines:
        assert sorted(a.peer for a in s.neighbors) == ["leaf1", "leaf2", "leaf3", "leaf4"]


def test_hosts_are_dual_homed_to_their_rack():
    for h in TOPO.hosts:
        leaves = [TOPO.node(a.peer) for a in h.uplinks]
        assert len(leaves) == 2 and {leaf.rack for leaf in leaves} == {h.rack}, h.name
    host1 = TOPO.node("host1")
    assert [(a.ifname, a.peer, a.peer_port.ifname, a.peer_asn) for a in host1.uplinks] == [
        ("eth1", "leaf1", "Ethernet8", 65101), ("eth2", "leaf2", "Ethernet8", 65102)]
    assert [a.peer for a in TOPO.node("leaf1").downlinks] == ["host1", "host2"]


def test_sonic_ports_and_mtu():
    leaf1 = TOPO.node("leaf1")
    assert [(p.clab, p.ifname) for p in leaf1.ports] == [
        ("eth1", "Ethernet0"), ("eth2", "Ethernet4"), ("eth3", "Ethernet8"), ("eth4", "Ethernet12")]
    assert [(a.ifname, a.peer, a.peer_port.ifname) for a in leaf1.uplinks] == [
        ("Ethernet0", "spine1", "Ethernet0"), ("Ethernet4", "spine2", "Ethernet0")]
    fabric = [lk for lk in TOPO.links if "endpoint" not in {TOPO.node(p.node).role for p in lk.endpoints}]
    assert len(fabric) == 16 and {lk.mtu for lk in fabric} == {9100}


def test_endpoints_and_tenants():
    assert [(t.name, t.vni) for t in TOPO.tenants] == [("A", 100), ("B", 200)]
    assert len(TOPO.endpoints) == 8
    for h in TOPO.hosts:
        eps = TOPO.endpoints_of(h.name)
        assert sorted(e.tenant for e in eps) == ["A", "B"]
        a, b = sorted(eps, key=lambda e: e.tenant)
        assert (a.ipv4, a.ipv6) == (b.ipv4, b.ipv6)  # tenant B reuses tenant A's addresses
        assert a.host_port.ifname != b.host_port.ifname
    e = TOPO.endpoint("ep-b3")
    assert (e.host, e.host_port.ifname, e.port.ifname, e.tenant, e.vni, e.ipv4, e.ipv6, e.mtu) == (
        "host3", "epb", "eth1", "B", 200, "10.0.0.3", "fd00::3", 1500)
    assert TOPO.node("ep-b3").neighbors == ()


def test_addresses_are_consistent():
    for h in TOPO.hosts:
        assert ipaddress.IPv6Network(h.locator).prefixlen == 64
    loopbacks = [n.loopback for n in TOPO.spines + TOPO.leaves]
    assert len(set(loopbacks)) == 6 and all(lb.endswith("/128") for lb in loopbacks)
    assert len({n.router_id for n in TOPO.nodes if n.router_id}) == 10


BAD = [
    (label("leaf1", "asn", "sixty"),
     "topology.nodes.leaf1.labels.l3fab.asn: 'sixty' is not an AS number"),
    (label("leaf2", "router-id", "10.255.1.300"),
     "topology.nodes.leaf2.labels.l3fab.router-id: '10.255.1.300' is not an IPv4 address"),
    (label("spine1", "loopback", "2001:db8:ffff::/64"),
     "topology.nodes.spine1.labels.l3fab.loopback: '2001:db8:ffff::/64' is not a /128"),
    (label("host1", "locator", "2001:db8:0:1::1/64"),
     "topology.nodes.host1.labels.l3fab.locator: '2001:db8:0:1::1/64' is not an IPv6 prefix"),
    (label("host2", "locator", "2001:db8:0:1::/64"),
     "topology.nodes.host2.labels.l3fab.locator: '2001:db8:0:1::/64' is already used by host1"),
    (label("spine2", "asn", 65001),
     "topology.nodes.spine2.labels.l3fab.asn: 65001 differs from spine1's 65000"),
    (label("leaf2", "asn", 65101),
     "topology.nodes.leaf2.labels.l3fab.asn: 65101 is already used by leaf1"),
    (label("leaf3", "role", "tor"),
     "topology.nodes.leaf3.labels.l3fab.role: 'tor' is not one of spine, leaf, host, endpoint"),
    (label("leaf3", "engine", "bird"),
     "topology.nodes.leaf3.labels.l3fab.engine: 'bird' is not one of frr, l3fab for a leaf"),
    (label("ep-a1", "tenant", "C"),
     "topology.nodes.ep-a1.labels.l3fab.tenant: 'C' is not a tenant"),
    (label("ep-a1", "ipv4", "10.0.0.999"),
     "topology.nodes.ep-a1.labels.l3fab.ipv4: '10.0.0.999' is not an IPv4 address"),
    (label("ep-a2", "ipv6", "fd00::1"),
     "topology.nodes.ep-a2.labels.l3fab.ipv6: 'fd00::1' is already used by ep-a1 in tenant 'A'"),
    (label("ep-a1", "ipv4", "169.254.0.1"),
     "topology.nodes.ep-a1.labels.l3fab.ipv4: '169.254.0.1' is not usable by an endpoint"),
    (lambda d: d["topology"]["defaults"]["labels"].update({"l3fab.tenants": "A:100 B:100"}),
     "topology.defaults.labels.l3fab.tenants: 'B:100' reuses VNI 100 of tenant 'A'"),
    (lambda d: d["topology"]["defaults"]["labels"].pop("l3fab.fabric-asn"),
     "topology.defaults.labels.l3fab.fabric-asn: None is required"),
    (lambda d: nodes(d)["host4"]["labels"].pop("l3fab.asn"),
     "topology.nodes.host4.labels.l3fab.asn: None is required"),
    (lambda d: nodes(d)["leaf1"].update(kind="ceos"),
     "topology.nodes.leaf1.kind: 'ceos' is not a supported kind (sonic-vs, linux)"),
    (lambda d: nodes(d)["host1"].update(group="servers"),
     "topology.nodes.host1.group: 'servers' is not defined under topology.groups"),
    (lambda d: d["topology"]["links"][0].update(endpoints=["spine1:eth1", "leaf9:eth1"]),
     "topology.links[0].endpoints[1]: 'leaf9:eth1' names node 'leaf9', which is not under topology.nodes"),
    (lambda d: d["topology"]["links"][0].update(endpoints=["spine1:Ethernet0", "leaf1:eth1"]),
     "topology.links[0].endpoints[0]: 'spine1:Ethernet0' is not ethN"),
    (lambda d: d["topology"]["links"][1].update(endpoints=["spine1:eth1", "leaf2:eth1"]),
     "topology.links[1].endpoints[0]: 'spine1:eth1' is already used by topology.links[0]"),
    (lambda d: d["topology"]["links"][0].update(endpoints=["spine1:eth1", "host1:eth9"]),
     "topology.links[0].endpoints: ['spine1:eth1', 'host1:eth9'] is not a spine-leaf, leaf-host or host-endpoint link"),
    (lambda d: d["topology"]["links"][0].update(mtu="jumbo"),
     "topology.links[0].mtu: 'jumbo' is not an MTU (1280-65535)"),
    (lambda d: d["topology"]["links"].append({"endpoints": ["host2:epc", "ep-a1:eth2"]}),
     "topology.nodes.ep-a1: 'ep-a1' is an endpoint with 2 links"),
    (lambda d: d["topology"]["links"].__setitem__(
        slice(None), [lk for lk in d["topology"]["links"] if "host3:eth1" not in lk["endpoints"]
                      and "host3:eth2" not in lk["endpoints"]]),
     "topology.nodes.host3: 'host3' is a host with no link to a leaf"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_bad_input_is_one_line_naming_field_and_value(change, message):
    with pytest.raises(TopologyError) as exc:
        parse(mutated(change))
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(TopologyError, match=r"^lab: '.*missing.yml' cannot be read"):
        load(tmp_path / "missing.yml")
    bad = tmp_path / "bad.clab.yml"
    bad.write_text("name: x\ntopology: [\n")
    with pytest.raises(TopologyError, match=r"^lab: '.*bad.clab.yml' is not valid YAML at line"):
        load(bad)


def test_node_lookup_error():
    with pytest.raises(TopologyError, match=r"^node: 'leaf9' is not a node of this lab \(spine1, "):
        TOPO.node("leaf9")


# ---------------------------------------------------------------- rendering: l3fab


@pytest.mark.parametrize("name", ["host1", "host2", "host3", "host4"])
def test_rendered_host_yaml_is_accepted_by_the_speaker(tmp_path, name):
    path = tmp_path / "l3fab.yaml"
    path.write_text(render.render_l3fab(TOPO, name))
    app = load_app_config(path)
    cfg = app.node
    node = TOPO.node(name)
    assert (cfg.router_id, cfg.asn, cfg.role, cfg.multipath_relax) == (node.router_id, node.asn, "host", True)
    assert [(n.name, n.interface, n.remote_as, n.ttl_security, n.unnumbered) for n in cfg.neighbors] == [
        (a.peer, a.ifname, a.peer_asn, True, True) for a in node.uplinks]
    assert {f.name for n in cfg.neighbors for f in n.families} >= {"vpnv4", "vpnv6"}
    assert app.tenancy.locator == node.locator and app.tenancy.node.fabric_asn == 65000
    assert app.tenancy.state_file == render.STATE_FILE


def test_rendered_yaml_for_l3fab_leaves_and_spines(tmp_path):
    topo = parse(mutated(lambda d: d["topology"]["kinds"]["sonic-vs"]["labels"].update({"l3fab.engine": "l3fab"})))
    for name in ("leaf1", "spine2"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(render.render_l3fab(topo, name))
        cfg = load_config(path)
        node = topo.node(name)
        assert cfg.role == node.role and [str(n.nlri) for n in cfg.networks] == [node.loopback]
        assert all(n.ttl_security for n in cfg.neighbors)
    leaf = load_config(tmp_path / "leaf1.yaml")
    by_name = {n.name: n for n in leaf.neighbors}
    assert by_name["host1"].host_locator == "2001:db8:0:1::/64"
    assert by_name["host1"].max_prefix.limit == render.HOST_MAX_VPN
    assert by_name["spine1"].host_locator is None
    assert set(render.files_for(topo, "leaf1")) == {"l3fab.yaml", "config_db.json", "apply.sh"}


def test_endpoint_renders_no_bgp():
    with pytest.raises(render.RenderError, match="^node 'ep-a1' is a tenant endpoint"):
        render.render_l3fab(TOPO, "ep-a1")
    with pytest.raises(render.RenderError, match="^node 'ep-a1' is a tenant endpoint"):
        render.render_frr(TOPO, "ep-a1")


# ---------------------------------------------------------------- rendering: FRR


def _block(text: str, start: str) -> list[str]:
    lines = text.splitlines()
    i = lines.index(start)
    out = []
    for line in lines[i + 1:]:
        if line.strip() in ("exit-address-family", "exit"):
            break
        out.append(line.strip())
    return out


def test_leaf_frr_config():
    text = render.render_frr(TOPO, "leaf1")
    assert "router bgp 65101" in text and " bgp router-id 10.255.1.1" in text
    for line in (" timers bgp 3 9", " bgp bestpath as-path multipath-relax", " no bgp network import-check",
                 " no bgp default ipv4-unicast", "no zebra nexthop kernel enable"):
        assert line in text.splitlines()
    sessions = {"Ethernet0": 65000, "Ethernet4": 65000, "Ethernet8": 4200000001, "Ethernet12": 4200000002}
    for ifname, asn in sessions.items():
        assert f" neighbor {ifname} interface remote-as {asn}" in text
        assert f" neighbor {ifname} ttl-security hops 1" in text
        assert f" neighbor {ifname} advertisement-interval 0" in text
    unicast = _block(text, " address-family ipv6 unicast")
    assert "network 2001:db8:ffff:1::1/128" in unicast and "maximum-paths 64" in unicast
    assert "neighbor Ethernet8 prefix-list HOST-host1-LOCATOR in" in unicast
    assert "neighbor Ethernet12 prefix-list HOST-host2-LOCATOR in" in unicast
    assert not any("Ethernet0 prefix-list" in line for line in unicast)
    assert "ipv6 prefix-list HOST-host1-LOCATOR seq 10 permit 2001:db8:0:1::/64" in text
    assert "ipv6 prefix-list HOST-host1-SIDS seq 10 permit 2001:db8:0:1::/64 le 128" in text
    assert "route-map HOST-host1-VPN6-IN permit 10\n match ipv6 next-hop prefix-list HOST-host1-SIDS\n" in text
    for afi in ("ipv4", "ipv6"):
        vpn = _block(text, f" address-family {afi} vpn")
        for ifname in sessions:
            assert f"neighbor {ifname} activate" in vpn
            assert f"neighbor {ifname} attribute-unchanged next-hop" in vpn
        assert "neighbor Ethernet8 maximum-prefix 4096 restart 1" in vpn
        assert ("neighbor Ethernet8 route-map HOST-host1-VPN6-IN in" in vpn) == (afi == "ipv6")


def test_spine_frr_config_is_pure_transit():
    text = render.render_frr(TOPO, "spine2")
    assert "router bgp 65000" in text
    assert "prefix-list" not in text and "route-map" not in text and "maximum-prefix" not in text
    for ifname, asn in (("Ethernet0", 65101), ("Ethernet4", 65102), ("Ethernet8", 65103), ("Ethernet12", 65104)):
        assert f" neighbor {ifname} interface remote-as {asn}" in text
        for afi in ("ipv4", "ipv6"):
            assert f"neighbor {ifname} attribute-unchanged next-hop" in _block(text, f" address-family {afi} vpn")


def test_max_prefix_label_overrides_the_default():
    topo = parse(mutated(label("host2", "max-prefix", 250)))
    text = render.render_frr(topo, "leaf1")
    assert "neighbor Ethernet12 maximum-prefix 250 restart 1" in _block(text, " address-family ipv6 vpn")
    assert "neighbor Ethernet8 maximum-prefix 4096 restart 1" in _block(text, " address-family ipv6 vpn")


def test_frr_host_template_announces_only_its_locator():
    text = render.render_frr(TOPO, "host3")
    unicast = _block(text, " address-family ipv6 unicast")
    assert "network 2001:db8:0:3::/64" in unicast
    assert "neighbor eth1 prefix-list OWN-LOCATOR out" in unicast
    assert " neighbor eth2 interface remote-as 65104" in text


# ---------------------------------------------------------------- generated files and binds


def test_config_db_for_sonic():
    db = json.loads(render.render_config_db(TOPO, "leaf2"))
    assert db["DEVICE_METADATA"]["localhost"]["docker_routing_config_mode"] == "split"
    assert db["PORT"] == {p: {"admin_status": "up", "mtu": "9100"}
                          for p in ("Ethernet0", "Ethernet4", "Ethernet8", "Ethernet12")}
    assert set(db["INTERFACE"]) == set(db["PORT"])
    assert all(v == {"ipv6_use_link_local_only": "enable"} for v in db["INTERFACE"].values())
    assert "Loopback0|2001:db8:ffff:1::2/128" in db["LOOPBACK_INTERFACE"]
    with pytest.raises(render.RenderError):
        render.render_config_db(TOPO, "host1")


def test_endpoint_and_intent_commands():
    assert render.endpoint_commands(TOPO, "ep-a2") == [
        ["ip", "link", "set", "dev", "eth1", "up"],
        ["ip", "address", "add", "10.0.0.2/32", "dev", "eth1"],
        ["ip", "route", "add", "169.254.0.1/32", "dev", "eth1"],
        ["ip", "route", "add", "default", "via", "169.254.0.1", "dev", "eth1"],
        ["ip", "-6", "address", "add", "fd00::2/128", "dev", "eth1"],
        ["ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth1"]]
    assert render.intent_commands(TOPO, "host2") == [
        ["l3fab", "tenant", "create", "A", "--vni", "100"],
        ["l3fab", "tenant", "create", "B", "--vni", "200"],
        ["l3fab", "endpoint", "add", "ep-a2", "--tenant", "A", "--interface", "epa", "--ipv4", "10.0.0.2",
         "--ipv6", "fd00::2"],
        ["l3fab", "endpoint", "add", "ep-b2", "--tenant", "B", "--interface", "epb", "--ipv4", "10.0.0.2",
         "--ipv6", "fd00::2"]]
    script = render.render_intent(TOPO, "host2")
    assert "l3fab endpoint show ep-b2 >/dev/null 2>&1 || l3fab endpoint add ep-b2" in script


def test_every_bind_source_is_generated(tmp_path):
    """The clab file binds exactly the files `l3fab render all` writes, into /etc/l3fab."""
    written = render.write_all(TOPO, tmp_path / "generated")
    produced = {p.relative_to(tmp_path).as_posix() for p in written}
    bound = set()
    for node in TOPO.nodes:
        for bind in node.binds:
            src, dst, *_ = bind.split(":")
            assert dst == f"{render.CONTAINER_DIR}/{Path(src).name}", bind
            assert src.startswith(f"generated/{node.name}/"), bind
            bound.add(src)
    assert bound == produced
    assert os.access(tmp_path / "generated" / "leaf1" / "apply.sh", os.X_OK)


# ---------------------------------------------------------------- CLI


def cli():
    app = Typer()
    app.add_typer(render_app, name="render")
    return app


def test_cli_render_frr_prints_the_config():
    r = CliRunner().invoke(cli(), ["render", "frr", "--role", "spine", "--node", "spine1"])
    assert r.exit_code == 0, r.output
    assert r.stdout == render.render_frr(TOPO, "spine1")


@pytest.mark.parametrize("args, message", [
    (["frr", "--role", "leaf", "--node", "spine1"],
     "error: --role: 'leaf' does not match node 'spine1', which is a spine"),
    (["frr", "--role", "router", "--node", "leaf1"], "error: --role: 'router' is not one of leaf, spine, host"),
    (["frr", "--role", "leaf", "--node", "leaf9"], "error: --node: 'leaf9' is not a node of this lab"),
    (["l3fab", "--node", "ep-a1"], "error: --node: node 'ep-a1' is a tenant endpoint"),
    (["frr", "--role", "leaf", "--node", "leaf1", "--lab", "/nonexistent.clab.yml"],
     "error: --lab: '/nonexistent.clab.yml' cannot be read"),
])
def test_cli_errors_are_one_line_exit_2(args, message):
    r = CliRunner().invoke(cli(), ["render", *args])
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), r.output


def test_cli_render_all_and_l3fab(tmp_path):
    r = CliRunner().invoke(cli(), ["render", "all", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "leaf3" / "frr.conf").read_text() == render.render_frr(TOPO, "leaf3")
    assert (tmp_path / "ep-b4" / "endpoint.sh").exists()
    r = CliRunner().invoke(cli(), ["render", "l3fab", "--node", "host4"])
    assert r.exit_code == 0 and r.stdout == render.render_l3fab(TOPO, "host4")
