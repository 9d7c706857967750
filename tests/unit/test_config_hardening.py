"""Hostile or careless config and state files: no secret in an error, no control
characters in names, one-line errors instead of tracebacks, a safe default max-prefix
on a leaf's host-facing sessions, and a state-file writer that follows no link."""
from __future__ import annotations

import os

import pytest

from l3fab.speaker.config import HOST_MAX_PREFIX, config_warnings, load_config, parse_config
from l3fab.speaker.errors import ConfigError
from l3fab.tenancy import store
from l3fab.tenancy.errors import IntentError
from l3fab.tenancy.model import State

SECRET = "s3cret-Pa55"


def _node(**neighbor) -> dict:
    n = {"name": "leaf1", "address": "192.0.2.1", "remote-as": 65001, **neighbor}
    return {"router-id": "192.0.2.2", "asn": 65002, "neighbors": [n]}


@pytest.mark.parametrize("key", ["pasword", "passwd", "md5-key", "secret", "Password"])
def test_a_misspelled_password_is_named_but_never_printed(key):
    with pytest.raises(ConfigError) as e:
        parse_config(_node(**{key: SECRET}))
    msg = str(e.value)
    assert SECRET not in msg and f"neighbors[0].{key}" in msg and "\n" not in msg


def test_an_ordinary_unknown_key_still_shows_its_value():
    with pytest.raises(ConfigError) as e:
        parse_config(_node(colour="red"))
    assert str(e.value).startswith("neighbors[0].colour: 'red' is not a known setting")


def test_a_neighbour_without_address_or_interface_is_not_printed_whole():
    cfg = _node(password=SECRET)
    del cfg["neighbors"][0]["address"]
    with pytest.raises(ConfigError) as e:
        parse_config(cfg)
    assert SECRET not in str(e.value) and "needs an address or an interface" in str(e.value)


@pytest.mark.parametrize("bad", ["leaf1\n", "leaf\r1", "le\x1b[2Jaf", "leaf\x00", "a\u2028b", "", "x" * 65])
def test_neighbour_names_are_printable_text(bad):
    with pytest.raises(ConfigError) as e:
        parse_config(_node(name=bad))
    assert str(e.value).startswith("neighbors[0].name: ") and "\n" not in str(e.value)


def test_descriptions_refuse_control_characters_but_may_be_empty():
    assert parse_config(_node(description="")).neighbors[0].description == ""
    assert parse_config(_node(description="to leaf 1 (rack 3)")).neighbors[0].description == "to leaf 1 (rack 3)"
    with pytest.raises(ConfigError):
        parse_config(_node(description="forged\n2026-01-01 ERROR line"))


def test_interface_names_with_a_trailing_newline_are_refused():
    with pytest.raises(ConfigError) as e:
        parse_config({"router-id": "192.0.2.2", "asn": 65002,
                      "neighbors": [{"interface": "eth0\n", "remote-as": "external"}]})
    assert str(e.value).startswith("neighbors[0].interface: 'eth0\\n'")


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    p = tmp_path / "node.yaml"
    p.write_bytes(b"router-id: 192.0.2.2\nasn: 65002\nhostname: \xff\xfe\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "is not UTF-8 text" in str(e.value) and "\n" not in str(e.value)


def test_host_facing_neighbours_get_a_default_max_prefix_and_config_check_warns_about_others():
    cfg = parse_config({"router-id": "192.0.2.2", "asn": 65002, "role": "leaf", "neighbors": [
        {"name": "host11", "interface": "eth1", "remote-as": "external", "host-locator": "2001:db8:0:11::/64"},
        {"name": "host12", "interface": "eth2", "remote-as": "external", "host-locator": "2001:db8:0:12::/64",
         "max-prefix": 10},
        {"name": "spine1", "interface": "eth3", "remote-as": "external"}]})
    limits = [n.max_prefix.limit if n.max_prefix else None for n in cfg.neighbors]
    assert limits == [HOST_MAX_PREFIX, 10, None]
    warnings = config_warnings(cfg)
    assert len(warnings) == 1 and warnings[0].startswith("neighbors[2] (spine1): no max-prefix")


def test_a_deeply_nested_state_file_is_one_line(tmp_path):
    p = tmp_path / "intent.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(IntentError) as e:
        store.load(p)
    assert "state-file" in str(e.value) and "\n" not in str(e.value)


def test_the_state_writer_never_follows_a_planted_link(tmp_path, monkeypatch):
    """The temporary file is created with O_EXCL|O_NOFOLLOW: a symlink planted where it
    will be written is refused, and its target stays untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    monkeypatch.setattr(store.secrets, "token_hex", lambda n: "fixed")
    target = tmp_path / "intent.json"
    os.symlink(victim, tmp_path / f".intent.json.tmp-{os.getpid()}-fixed")
    with pytest.raises(IntentError):
        store.save(target, State())
    assert victim.read_text() == "precious" and not target.exists()


def test_policy_names_with_a_trailing_newline_are_refused():
    from l3fab.speaker.policy import parse_policy_config

    with pytest.raises(ConfigError) as e:
        parse_policy_config({"policies": {"from-host\n": {"terms": []}}})
    assert "from-host" in str(e.value) and "\n" not in str(e.value)


def test_send_hold_timer_notification_is_named():
    from l3fab.speaker.wire.constants import ErrorCode
    from l3fab.speaker.wire.notification import Notification

    assert Notification(ErrorCode.SEND_HOLD_TIMER_EXPIRED, 0).describe() == "8/0 (send hold timer expired)"


def test_session_limits_are_configurable_per_neighbour():
    n = parse_config(_node(**{"min-hold-time": 0, "send-hold-time": 600, "max-send-buffer": 1 << 20})).neighbors[0]
    assert (n.min_hold_time, n.send_hold_time, n.max_send_buffer) == (0, 600.0, 1 << 20)
    assert parse_config(_node()).neighbors[0].min_hold_time is None
    for key, bad in (("min-hold-time", 2), ("send-hold-time", 1), ("max-send-buffer", 10)):
        with pytest.raises(ConfigError) as e:
            parse_config(_node(**{key: bad}))
        assert str(e.value).startswith(f"neighbors[0].{key}: ")
