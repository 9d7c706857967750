"""dataplane.nft without a kernel: the rendered ruleset, its hash, reading nft's
output, the apply decisions (against a fake nft) and one-line errors."""
from __future__ import annotations

import json
import re
import stat
from dataclasses import replace

import pytest

from l3fab.dataplane import nft
from l3fab.dataplane.model import DataplaneSpec, PortSpec

A = PortSpec("web-1", "blue", "vm-a", 100, ipv4="10.0.0.5", ipv6="fd00::5/128")
B = PortSpec("1db", "red", "tap-b", 101, ipv4="10.0.0.6/32")
C = PortSpec("v6only", "red", "vf0:1", 101, ipv6="2001:db8:100::7")
SPEC = DataplaneSpec(locator="2001:db8:0:1::/64", tunnel_source="2001:db8:0:1::1",
                     underlay_prefixes=("2001:db8::/32", "198.51.100.0/24", "2001:db8:0:1::/64"),
                     ports=(A, B, C))


def block(text: str, kind: str, name: str) -> str:
    """The body of ``set name { ... }`` / ``map`` / ``chain`` in rendered text."""
    m = re.search(rf"^\t{kind} {re.escape(name)} \{{\n(.*?)^\t\}}", text, re.MULTILINE | re.DOTALL)
    assert m, f"no {kind} {name} in:\n{text}"
    return m.group(1)


def elements(text: str, kind: str, name: str) -> list[str]:
    m = re.search(r"elements = \{ (.*?) \}", block(text, kind, name), re.DOTALL)
    return [e.strip() for e in m.group(1).split(",")] if m else []


# ---------------------------------------------------------------- render


def test_endpoint_interfaces_are_an_explicit_set_never_a_wildcard() -> None:
    text = nft.render(SPEC)
    assert sorted(elements(text, "set", "endpoints")) == ['"tap-b"', '"vf0:1"', '"vm-a"']
    assert "*" not in text
    assert block(text, "set", "endpoints").startswith("\t\ttype ifname\n")


def test_each_endpoint_may_use_only_its_own_addresses() -> None:
    text = nft.render(SPEC)
    assert sorted(elements(text, "set", "sources4")) == ['"tap-b" . 10.0.0.6', '"vm-a" . 10.0.0.5']
    assert sorted(elements(text, "set", "sources6")) == ['"vf0:1" . 2001:db8:100::7', '"vm-a" . fd00::5']
    rules = block(text, "chain", "prerouting")
    assert "type filter hook prerouting priority raw; policy accept;" in rules
    assert "iifname . ip saddr != @sources4 counter name iifname map @spoofed drop" in rules
    assert "iifname . ip6 saddr != @sources6 counter name iifname map @spoofed drop" in rules
    # ND/MLD from :: and fe80::/10 comes before the source check; router advertisements never.
    nd = rules.index("ip6 saddr { ::, fe80::/10 }")
    assert nd < rules.index("@sources6")
    assert "nd-neighbor-solicit" in rules and "mld2-listener-report" in rules
    assert "nd-router-advert" not in text


def test_underlay_space_is_the_prefixes_and_the_locator_merged_by_family() -> None:
    text = nft.render(SPEC)
    assert elements(text, "set", "underlay6") == ["2001:db8::/32"]  # locator inside the aggregate
    assert elements(text, "set", "underlay4") == ["198.51.100.0/24"]
    alone = nft.render(replace(SPEC, underlay_prefixes=()))
    assert elements(alone, "set", "underlay6") == ["2001:db8:0:1::/64"]
    assert elements(alone, "set", "underlay4") == []
    assert "flags interval" in block(alone, "set", "underlay4")
    rules = block(text, "chain", "prerouting")
    assert rules.index("@sources6") < rules.index("ip6 daddr @underlay6 counter name iifname map @underlay drop")


def test_host_and_forward_chains() -> None:
    text = nft.render(SPEC)
    host = block(text, "chain", "input")
    assert "type filter hook input priority filter; policy accept;" in host
    assert host.strip().splitlines()[-1].strip() == "counter name iifname map @host drop"
    forward = block(text, "chain", "forward")
    assert "iifname @endpoints counter name iifname map @accepted" in forward
    assert "drop" not in forward


def test_named_counters_per_endpoint() -> None:
    text = nft.render(SPEC)
    for port in SPEC.ports:
        for kind in nft.COUNTER_KINDS:
            name = nft.counter_name(port.name, kind)
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_./-]*", name), name  # nft takes no quotes here
            assert f"\tcounter {name} {{ packets 0 bytes 0 }}\n" in text
            assert f'"{port.ifname}" : "{name}"' in elements(text, "map", kind)
    assert nft.counter_name("1db", "spoofed") == "spoofed.1db"


def test_counter_start_values_are_rendered_but_do_not_change_the_hash() -> None:
    start = {"web-1": {"spoofed": {"packets": 5, "bytes": 420}}, "gone": {"host": {"packets": 1, "bytes": 1}}}
    text = nft.render(SPEC, start)
    assert "\tcounter spoofed.web-1 { packets 5 bytes 420 }\n" in text
    assert "gone" not in text
    assert nft.installed_digest(text) == nft.installed_digest(nft.render(SPEC)) == nft.digest(SPEC)


def test_hash_depends_on_content_not_on_order() -> None:
    assert nft.digest(SPEC) == nft.digest(replace(SPEC, ports=(C, A, B)))
    assert nft.digest(SPEC) == nft.digest(replace(SPEC, ports=(replace(A, ipv4="10.0.0.5/32"), B, C)))
    for other in (replace(SPEC, ports=(replace(A, ipv4="10.0.0.9"), B, C)),
                  replace(SPEC, ports=(A, B)),
                  replace(SPEC, ports=(replace(A, ifname="vm-z"), B, C)),
                  replace(SPEC, underlay_prefixes=("2001:db8::/33",))):
        assert nft.digest(other) != nft.digest(SPEC)
    assert nft.render(SPEC).startswith(f'table inet l3fab {{\n\tcomment "l3fab sha256:{nft.digest(SPEC)}"\n')


BAD = [
    (replace(A, name="web 1"), "ports.name: 'web 1' is not an endpoint name"),
    (replace(A, name="-web"), "ports.name: '-web' is not an endpoint name"),
    (replace(A, name="x" * 64), f"ports.name: '{'x' * 64}' is not an endpoint name"),
    (replace(A, ifname="vm-*"), "ports[web-1].ifname: 'vm-*' is not an interface name"),
    (replace(A, ifname='vm"a'), "ports[web-1].ifname: 'vm\"a' is not an interface name"),
    (replace(A, ifname="a" * 16), f"ports[web-1].ifname: '{'a' * 16}' is not an interface name"),
    (replace(A, ipv4="fd00::5"), "ports[web-1].ipv4: 'fd00::5' is not an IPv4 address"),
    (replace(A, ipv4="10.0.0.5/24"), "ports[web-1].ipv4: '10.0.0.5/24' is not a host address (/32)"),
    (replace(A, ipv6="fd00::/64"), "ports[web-1].ipv6: 'fd00::/64' is not a host address (/128)"),
    (replace(A, ipv6="nonsense"), "ports[web-1].ipv6: 'nonsense' is not an IPv6 address"),
]


@pytest.mark.parametrize("port,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_port_is_one_line_naming_field_and_value(port: PortSpec, message: str) -> None:
    with pytest.raises(ValueError) as err:
        nft.render(replace(SPEC, ports=(port, B)))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_duplicates_and_bad_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^ports\[web-1\]\.name: 'web-1' appears twice$"):
        nft.render(replace(SPEC, ports=(A, replace(B, name="web-1"))))
    with pytest.raises(ValueError, match=r"^ports\[1db\]\.ifname: 'vm-a' is already endpoint 'web-1''s$"):
        nft.render(replace(SPEC, ports=(A, replace(B, ifname="vm-a"))))
    with pytest.raises(ValueError, match=r"^underlay_prefixes\[1\]: 'nope' is not an IP prefix$"):
        nft.render(replace(SPEC, underlay_prefixes=("2001:db8::/32", "nope")))
    with pytest.raises(ValueError, match=r"^locator: '2001:db8::/200' is not an IP prefix$"):
        nft.render(replace(SPEC, locator="2001:db8::/200"))


# ---------------------------------------------------------------- reading nft output

LISTING = """table inet l3fab {
\tcomment "l3fab sha256:00ff"
\tcounter accepted.web-1 {
\t\tpackets 0 bytes 0
\t}
\tchain prerouting {
\t\tcomment "l3fab sha256:not-this-one"
\t}
}
"""


def test_installed_digest_is_the_table_comment() -> None:
    assert nft.installed_digest(LISTING) == "00ff"
    assert nft.installed_digest(LISTING.replace("l3fab sha256:00ff", "hand made")) is None
    assert nft.installed_digest("table inet l3fab {\n\tchain c {\n\t}\n}\n") is None
    assert nft.installed_digest("") is None


def test_parse_counters_keeps_only_our_table_and_kinds() -> None:
    def counter(name: str, table: str = "l3fab", family: str = "inet", p: int = 1) -> dict:
        return {"counter": {"family": family, "name": name, "table": table, "handle": 1, "packets": p,
                            "bytes": 100 * p}}

    listing = {"nftables": [{"metainfo": {"version": "1.0.6"}},
                            counter("spoofed.web-1", p=3), counter("host.a.b.c", p=2),
                            counter("spoofed.x", table="other"), counter("spoofed.y", family="ip"),
                            counter("weird"), counter("other.web-1")]}
    assert nft.parse_counters(json.dumps(listing)) == {
        "web-1": {"spoofed": {"packets": 3, "bytes": 300}},
        "a.b.c": {"host": {"packets": 2, "bytes": 200}},
    }


# ---------------------------------------------------------------- apply against a fake nft


class FakeNft:
    """Stands in for :func:`dataplane.nft._run`: one table text (or None), calls recorded."""

    def __init__(self, installed: str | None = None, counters: dict | None = None) -> None:
        self.installed = installed
        self.counter_values = counters or {}
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def __call__(self, args, *, nft: str, netns: str | None, input: str | None = None) -> str:
        self.calls.append((tuple(args), input))
        if args == ["-j", "list", "tables"]:
            tables = [{"table": {"family": "ip", "name": "l3fab", "handle": 9}}]
            if self.installed is not None:
                tables.append({"table": {"family": "inet", "name": "l3fab", "handle": 1}})
            return json.dumps({"nftables": tables})
        if args == ["-t", "list", "table", "inet", "l3fab"]:
            assert self.installed is not None
            return self.installed
        if args == ["-j", "list", "counters", "table", "inet", "l3fab"]:
            return json.dumps({"nftables": [
                {"counter": {"family": "inet", "table": "l3fab", "name": nft_name, "packets": p, "bytes": b}}
                for nft_name, (p, b) in self.counter_values.items()]})
        if args == ["-f", "-"]:
            assert input.startswith("table inet l3fab\ndelete table inet l3fab\n")
            rest = input.split("delete table inet l3fab\n", 1)[1]
            self.installed = rest or None
            return ""
        raise AssertionError(f"unexpected nft call {args}")

    def transactions(self) -> list[str]:
        return [text for args, text in self.calls if args == ("-f", "-")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNft:
    f = FakeNft()
    monkeypatch.setattr(nft, "_run", f)
    return f


def test_first_apply_installs_in_one_transaction(fake: FakeNft) -> None:
    result = nft.apply(SPEC)
    assert (result.action, result.changed, result.digest) == ("replaced", True, nft.digest(SPEC))
    assert fake.transactions() == ["table inet l3fab\ndelete table inet l3fab\n" + nft.render(SPEC)]


def test_same_hash_means_no_transaction(fake: FakeNft) -> None:
    nft.apply(SPEC)
    fake.calls.clear()
    result = nft.apply(replace(SPEC, ports=(C, B, A)))
    assert (result.action, result.changed) == ("unchanged", False)
    assert fake.transactions() == []
    assert [args for args, _ in fake.calls] == [("-j", "list", "tables"), ("-t", "list", "table", "inet", "l3fab")]


def test_changed_spec_replaces_and_carries_counter_values(fake: FakeNft) -> None:
    nft.apply(SPEC)
    fake.counter_values = {"spoofed.web-1": (4, 400), "accepted.1db": (9, 900)}
    smaller = replace(SPEC, ports=(A, C))
    assert nft.apply(smaller).action == "replaced"
    (text,) = fake.transactions()[1:]
    assert "\tcounter spoofed.web-1 { packets 4 bytes 400 }\n" in text
    assert "1db" not in text
    assert nft.installed_digest(fake.installed) == nft.digest(smaller)


def test_a_hand_edited_table_without_our_hash_is_replaced(fake: FakeNft) -> None:
    fake.installed = "table inet l3fab {\n\tchain prerouting {\n\t}\n}\n"
    assert nft.apply(SPEC).action == "replaced"
    assert len(fake.transactions()) == 1


def test_no_ports_removes_the_table_or_does_nothing(fake: FakeNft) -> None:
    empty = replace(SPEC, ports=())
    assert nft.apply(empty).action == "absent"
    assert fake.transactions() == []
    nft.apply(SPEC)
    assert nft.apply(empty).action == "removed"
    assert fake.transactions()[-1] == "table inet l3fab\ndelete table inet l3fab\n"
    assert fake.installed is None
    assert nft.counters() == {}
    assert nft.remove() is False


def test_bad_spec_fails_before_nft_runs(fake: FakeNft) -> None:
    with pytest.raises(ValueError):
        nft.apply(replace(SPEC, ports=(replace(A, ipv4="nope"),)))
    assert fake.calls == []


def test_counters_read_back(fake: FakeNft) -> None:
    assert nft.counters() == {}
    nft.apply(SPEC)
    fake.counter_values = {"host.v6only": (2, 160)}
    assert nft.counters() == {"v6only": {"host": {"packets": 2, "bytes": 160}}}


# ---------------------------------------------------------------- running nft


def test_nft_failure_is_one_line_with_the_first_error_line(tmp_path) -> None:
    fake_nft = tmp_path / "nft"
    fake_nft.write_text("#!/bin/sh\necho '/dev/stdin:3:5-9: Error: syntax error' >&2\necho 'detail' >&2\nexit 1\n")
    fake_nft.chmod(fake_nft.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(nft.NftError) as err:
        nft.remove(nft=str(fake_nft))
    assert str(err.value) == "nft -j list tables: /dev/stdin:3:5-9: Error: syntax error"
    with pytest.raises(nft.NftError, match=r"^nft -j list tables: .*No such file"):
        nft.counters(nft=str(tmp_path / "missing"))


def test_netns_prefixes_ip_netns_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class Done:
        returncode, stdout, stderr = 0, '{"nftables": []}', ""

    def run(argv, **kwargs):
        seen.append(argv)
        return Done()

    monkeypatch.setattr(nft.subprocess, "run", run)
    assert nft.counters(netns="blue") == {}
    assert nft.is_installed(nft="/usr/sbin/nft") is False
    assert seen == [["ip", "netns", "exec", "blue", "nft", "-j", "list", "tables"],
                    ["/usr/sbin/nft", "-j", "list", "tables"]]


# ---------------------------------------------------------------- strangers (issue 10, finding 18)

GUARD = nft.Guard(trusted=("lo", "up0"), host_addresses=("10.255.2.1", "2001:db8:0:1::1", "fd10::1"))
HANDLED = replace(SPEC, ports=(replace(A, handle4="169.254.0.7"), B, C))


def test_unknown_interfaces_are_kept_from_protected_destinations() -> None:
    text = nft.render(HANDLED, guard=GUARD)
    assert sorted(elements(text, "set", "trusted")) == ['"lo"', '"up0"']
    # underlay and locator, the host's addresses, the gateway and the End.DX4 handles
    assert sorted(elements(text, "set", "protected4")) == ["10.255.2.1/32", "169.254.0.1/32", "169.254.0.7/32",
                                                           "198.51.100.0/24"]
    assert sorted(elements(text, "set", "protected6")) == ["2001:db8::/32", "fd10::1/128"]
    rules = block(text, "chain", "prerouting").strip().splitlines()
    unknown = "iifname != @endpoints iifname != @trusted"
    assert rules[1].strip() == f"{unknown} ip daddr @protected4 counter name strangers drop"
    assert rules[2].strip() == f"{unknown} ip6 daddr @protected6 counter name strangers drop"
    assert rules[3].strip() == "iifname != @endpoints accept"  # only after the stranger drops
    assert "\tcounter strangers { packets 0 bytes 0 }\n" in text
    # the endpoint rules are those of the table without a guard
    plain = nft.render(HANDLED)
    for chain in ("input", "forward"):
        assert block(text, "chain", chain) == block(plain, "chain", chain)
    assert "strangers" not in plain and "@trusted" not in plain


def test_the_guard_is_part_of_the_hash() -> None:
    assert nft.digest(SPEC, GUARD) != nft.digest(SPEC)
    assert nft.digest(SPEC, GUARD) != nft.digest(SPEC, replace(GUARD, trusted=("lo",)))
    assert nft.digest(SPEC, GUARD) != nft.digest(SPEC, replace(GUARD, host_addresses=()))
    assert nft.digest(SPEC, GUARD) == nft.digest(SPEC, replace(GUARD, trusted=("up0", "lo")))


def test_bad_guard_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^guard\.host_addresses\[0\]: 'nope' is not an IP address$"):
        nft.render(SPEC, guard=nft.Guard(host_addresses=("nope",)))
    with pytest.raises(ValueError, match=r"^guard\.trusted\[0\]: 'up\*' is not an interface name"):
        nft.render(SPEC, guard=nft.Guard(trusted=("up*",)))
    assert nft.valid_ifname("up0") and not nft.valid_ifname("up0\n") and not nft.valid_ifname("x" * 16)


def test_with_a_guard_the_table_stays_without_endpoints(fake: FakeNft) -> None:
    """A removed last endpoint is a stranger too: the table must not go with it."""
    empty = replace(SPEC, ports=())
    assert nft.apply(empty, guard=GUARD).action == "replaced"
    assert nft.installed_digest(fake.installed) == nft.digest(empty, GUARD)
    assert "counter name strangers drop" in fake.installed
    nft.apply(SPEC, guard=GUARD)
    fake.counter_values = {"strangers": (7, 700), "spoofed.web-1": (1, 100)}
    assert nft.strangers() == {"packets": 7, "bytes": 700}
    assert nft.counters() == {"web-1": {"spoofed": {"packets": 1, "bytes": 100}}}  # endpoints only
    assert nft.apply(empty, guard=GUARD).action == "replaced"
    assert "\tcounter strangers { packets 7 bytes 700 }\n" in fake.installed  # carried over


def test_nft_error_line_is_escaped(tmp_path) -> None:
    fake_nft = tmp_path / "nft"
    fake_nft.write_text("#!/bin/sh\nprintf 'Error: bad \\033[31mred\\r\\n' >&2\nexit 1\n")
    fake_nft.chmod(fake_nft.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(nft.NftError) as err:
        nft.is_installed(nft=str(fake_nft))
    assert str(err.value) == "nft -j list tables: Error: bad \\x1b[31mred"


def test_an_endpoint_named_strangers_keeps_its_counters_apart(fake: FakeNft) -> None:
    named = replace(SPEC, ports=(replace(A, name="strangers"),))
    nft.apply(named, guard=GUARD)
    fake.counter_values = {"strangers": (7, 700), "spoofed.strangers": (2, 200)}
    assert nft.counters() == {"strangers": {"spoofed": {"packets": 2, "bytes": 200}}}
    both = nft.counters(strangers=True)
    assert both[nft.STRANGERS_KEY] == {"strangers": {"packets": 7, "bytes": 700}}
    assert both["strangers"] == {"spoofed": {"packets": 2, "bytes": 200}}
    nft.apply(replace(named, underlay_prefixes=()), guard=GUARD)
    assert "\tcounter strangers { packets 7 bytes 700 }\n" in fake.installed
    assert "\tcounter spoofed.strangers { packets 2 bytes 200 }\n" in fake.installed
