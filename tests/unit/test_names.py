"""The shared name validators (speaker.fields) and their users: a name is matched whole
and any control character is refused, in one line naming the field and the escaped
value (issue 10, finding 2: ``"web2\\n"`` passed every ``re.match(r"^...$")`` check)."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from l3fab.dataplane import nft
from l3fab.dataplane.model import DataplaneSpec, PortSpec
from l3fab.speaker import fields
from l3fab.speaker.errors import ConfigError
from l3fab.tenancy import validate
from l3fab.tenancy.errors import IntentError

CONTROL = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\ufeff"]
GOOD_NAMES = ["web2", "a", "0db", "x.y_z-1", "n" * 63]
GOOD_IFNAMES = ["tap0", "vf0:1", "eth0.100", "a@b", "i" * 15]


@pytest.mark.parametrize("ch", CONTROL, ids=[repr(c) for c in CONTROL])
@pytest.mark.parametrize("where", ["end", "start", "middle"])
def test_a_control_character_anywhere_is_refused_in_one_line(ch: str, where: str) -> None:
    value = {"end": f"web2{ch}", "start": f"{ch}web2", "middle": f"we{ch}b2"}[where]
    for check, path in ((fields.name, "endpoint.name"), (fields.ifname, "interface")):
        with pytest.raises(ConfigError) as err:
            check(path, value)
        text = str(err.value)
        assert text == f"{path}: {value!r} contains a control or non-printable character ({ch!r})"
        assert text.isprintable()  # one line, nothing a terminal would act on


def test_trailing_newline_is_what_re_match_with_dollar_let_through() -> None:
    # the old check, for the record: this is the hole
    assert re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", "web2\n")
    with pytest.raises(ConfigError, match=r"^endpoint\.name: 'web2\\n' contains a control"):
        fields.name("endpoint.name", "web2\n")


@pytest.mark.parametrize("value", GOOD_NAMES)
def test_good_names_pass_unchanged(value: str) -> None:
    assert fields.name("n", value) == value
    assert validate.name("n", value) == value


@pytest.mark.parametrize("value", GOOD_IFNAMES)
def test_good_interface_names_pass_unchanged(value: str) -> None:
    assert fields.ifname("i", value) == value
    assert validate.interface_name("i", value) == value


@pytest.mark.parametrize("value", ["", "-web", "web 2", "w/b", "n" * 64, "wéb", "web*", None, 5, ["web"]])
def test_bad_names_are_refused(value) -> None:
    with pytest.raises(ConfigError) as err:
        fields.name("tenant.name", value)
    assert str(err.value).startswith(f"tenant.name: {value!r} ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["", "i" * 16, "vm-*", 'vm"a', "a b", "a/b", "tap0\n", None])
def test_bad_interface_names_are_refused(value) -> None:
    """16 characters is one more than IFNAMSIZ - 1; '*' would be an nft wildcard."""
    with pytest.raises(ConfigError) as err:
        fields.ifname("endpoints[x].interface", value)
    assert str(err.value).startswith(f"endpoints[x].interface: {value!r} ")


def test_tenancy_raises_its_own_error_type() -> None:
    with pytest.raises(IntentError):
        validate.name("endpoint.name", "web2\n")
    with pytest.raises(IntentError):
        validate.interface_name("endpoints[x].interface", "i" * 16)


def test_a_huge_value_is_cut_in_the_message() -> None:
    with pytest.raises(ConfigError) as err:
        fields.name("endpoint.name", "x" * 100_000 + "\n")
    text = str(err.value)
    assert len(text) < 300 and "more)" in text and "\n" not in text


def test_printable_text_allows_spaces_and_letters_only() -> None:
    assert fields.printable("description", "rack 4, Zürich") == "rack 4, Zürich"
    with pytest.raises(ConfigError, match=r"contains a control or non-printable character \('\\x1b'\)"):
        fields.printable("description", "\x1b[2Jhi")


# ---------------------------------------------------------------- the dataplane's own check

PORT = PortSpec("web2", "blue", "tap0", 100, ipv4="10.0.0.5")
SPEC = DataplaneSpec(locator="2001:db8:0:1::/64", tunnel_source="2001:db8:0:1::1", ports=(PORT,))


@pytest.mark.parametrize("ch", CONTROL, ids=[repr(c) for c in CONTROL])
def test_nft_refuses_control_characters_before_rendering(ch: str) -> None:
    """dataplane/ may not import speaker/: nft.py keeps its own check, also whole-string."""
    for bad, field in ((replace(PORT, name=f"web2{ch}"), "ports.name"),
                       (replace(PORT, ifname=f"tap0{ch}"), "ports[web2].ifname")):
        with pytest.raises(ValueError) as err:
            nft.render(replace(SPEC, ports=(bad,)))
        assert str(err.value).startswith(f"{field}: ") and str(err.value).isprintable()
    with pytest.raises(ValueError, match=r"^guard\.trusted\[1\]: "):
        nft.render(SPEC, guard=nft.Guard(trusted=("lo", f"up0{ch}")))
