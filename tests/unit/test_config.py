"""Node config validation: one error naming the field and the value."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from l3fab.speaker.config import ConfigError, load_config, parse_config
from l3fab.speaker.wire.constants import IPV6_UNICAST, VPNV4

REPO = Path(__file__).resolve().parents[2]
BASE = {"router-id": "10.0.0.1", "asn": 65001,
        "neighbors": [{"address": "2001:db8::2", "remote-as": 65002}]}


def _with(**changes):
    cfg = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in changes.items():
        keys = path.split("__")
        target = cfg
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        target[keys[-1].replace("_", "-")] = value
    return cfg


def test_valid_config_parses_with_defaults():
    cfg = parse_config({
        "router-id": "10.0.0.1", "asn": "65000.10", "hostname": "h1",
        "neighbors": [
            {"name": "leaf1", "interface": "eth0", "remote-as": "external", "families": ["ipv6", "vpnv4"]},
            {"address": "fe80::1", "interface": "eth1", "remote-as": 65002, "password": "k",
             "ttl-security": True, "passive": True, "hold-time": 0},
        ]})
    assert cfg.asn == (65000 << 16) | 10
    leaf = cfg.neighbor("leaf1")
    assert leaf.unnumbered and leaf.families == (IPV6_UNICAST, VPNV4) and leaf.remote_as == "external"
    ll = cfg.neighbor("fe80::1")
    assert (ll.password, ll.ttl_security, ll.passive, ll.hold_time) == ("k", True, True, 0)


@pytest.mark.parametrize("cfg, field, value", [
    (_with(router_id="10.0.0.256"), "router-id", "10.0.0.256"),
    (_with(asn="sixty"), "asn", "sixty"),
    (_with(asn=0), "asn", "0"),
    (_with(neighbors__0__remote_as="foo"), "neighbors[0].remote-as", "foo"),
    (_with(neighbors__0__address="2001:db8::zz"), "neighbors[0].address", "2001:db8::zz"),
    (_with(neighbors__0__families=["ipv4", "evpn"]), "neighbors[0].families[1]", "evpn"),
    (_with(neighbors__0__hold_time=2), "neighbors[0].hold-time", "2"),
    (_with(neighbors__0__port=70000), "neighbors[0].port", "70000"),
    (_with(neighbors__0__passive="yes"), "neighbors[0].passive", "yes"),
    (_with(neighbors__0__interface="this-name-is-too-long"), "neighbors[0].interface", "this-name-is-too-long"),
    (_with(neighbors__0__colour="red"), "neighbors[0].colour", "red"),
    (_with(listen={"addresses": ["::", "nope"]}), "listen.addresses[1]", "nope"),
    ({"asn": 1}, "router-id", "None"),
])
def test_bad_fields_are_named_with_their_value(cfg, field, value):
    with pytest.raises(ConfigError) as e:
        parse_config(cfg)
    msg = str(e.value)
    assert msg.startswith(f"{field}: ") and value in msg and "\n" not in msg, msg


def test_link_local_needs_interface_and_duplicates_are_refused():
    with pytest.raises(ConfigError, match=r"^neighbors\[0\]\.address: 'fe80::1' is link-local"):
        parse_config(_with(neighbors__0__address="fe80::1"))
    dup = _with()
    dup["neighbors"].append({"address": "2001:db8::2", "remote-as": 65003})
    with pytest.raises(ConfigError, match=r"^neighbors\[1\]: '2001:db8::2' duplicates neighbors\[0\]"):
        parse_config(dup)


def test_password_is_not_echoed(tmp_path):
    with pytest.raises(ConfigError) as e:
        parse_config(_with(neighbors__0__password="x" * 81))
    assert "x" * 81 not in str(e.value) and "neighbors[0].password" in str(e.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("router-id: 10.0.0.1\nasn: [1\n")
    with pytest.raises(ConfigError, match="line 3|line 2"):
        load_config(p)


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "l3fab.cli.main", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_config_errors_are_one_line_with_exit_code_2(tmp_path):
    p = tmp_path / "node.yaml"
    p.write_text(yaml.safe_dump(_with(neighbors__0__remote_as="foo")))
    for args in (["config", "check", str(p)], ["run", "--config", str(p)]):
        r = _cli(*args)
        assert r.returncode == 2, r
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "neighbors[0].remote-as: 'foo'" in lines[0], r.stderr
        assert "Traceback" not in r.stderr
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(BASE))
    r = _cli("config", "check", str(ok))
    assert r.returncode == 0 and "OK" in r.stdout


def test_cli_without_daemon_says_so(tmp_path):
    r = _cli("show", "neighbors", "--socket", str(tmp_path / "none.sock"))
    assert r.returncode == 1
    assert "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1
