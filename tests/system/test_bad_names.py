"""Names with control characters through the running daemon (issue 10, finding 2):
``endpoint add`` with name ``"web2\\n"`` was accepted and saved, and from then on every
nftables update failed.  Through the raw API socket and through the CLI, every string
field of a tenant or endpoint change with a control character in it is refused in one
line naming the field and the escaped value, and nothing is saved."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from .conftest import REPO

BAD = ["web2\n", "web2\r", "web2\t", "web2\x00", "web2\x1b[31m", "web2\x7f", "web2\u2028", "web2\u202e", "\nweb2"]
ENDPOINT = {"name": "web2", "tenant": "blue", "interface": "lo", "ipv4": "192.168.1.6", "ipv6": "fd00::6",
            "rate_limit": "100mbit"}
TENANT = {"name": "red", "vni": "200", "families": "dual-stack", "peers": "blue"}


def raw(socket_path: str, method: str, params: dict) -> dict:
    """One request written on the API socket by hand, the answer line decoded."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(socket_path)
        s.sendall(json.dumps({"method": method, "params": params}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, "the daemon closed the connection without an answer"
            buf += chunk
    assert buf.count(b"\n") == 1
    return json.loads(buf)


def cli(d, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "l3fab.cli.main", *args, "--socket", d.socket], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"}, timeout=60)


@pytest.fixture
def node(daemon_factory, tmp_path):
    state = tmp_path / "intent.json"
    d = daemon_factory({"router-id": "10.0.0.12", "asn": 4200000012, "listen": {"addresses": ["127.0.0.1"],
                                                                               "port": 0},
                        "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:12::/64", "state-file": str(state)}})
    d.api("tenant_create", name="blue", vni=100)
    return d, state


def assert_refused_one_line(answer: dict, field: str, value: str) -> None:
    assert answer["ok"] is False and answer["bad_input"] is True, answer
    error = answer["error"]
    assert error.isprintable(), error  # one line, nothing a terminal acts on
    assert error.startswith(f"{field}: {value!r} "), (field, error)


@pytest.mark.parametrize("bad", BAD, ids=[repr(b) for b in BAD])
def test_raw_api_refuses_control_characters_in_every_field(node, bad: str) -> None:
    d, state = node
    before = state.read_bytes()
    for key in ENDPOINT:
        params = {**ENDPOINT, key: ENDPOINT[key] + bad if key != "name" else bad}
        field = "endpoint.name" if key == "name" else f"endpoints[web2].{key.replace('_', '-')}"
        assert_refused_one_line(raw(d.socket, "endpoint_add", params), field,
                                params[key])
    for key in TENANT:
        params = {**TENANT, key: TENANT[key] + bad if key != "name" else bad}
        field = "tenant.name" if key == "name" else f"tenants[red].{key}"
        assert_refused_one_line(raw(d.socket, "tenant_create", params), field, params[key])
    assert_refused_one_line(raw(d.socket, "tenant_delete", {"name": "blue" + bad}), "tenant.name", "blue" + bad)
    assert state.read_bytes() == before
    assert d.api("endpoint_list") == []
    assert [t["name"] for t in d.api("tenant_list")] == ["blue"]


def test_trailing_newline_through_the_cli_is_refused_and_not_saved(node) -> None:
    d, state = node
    before = state.read_bytes()
    r = cli(d, "endpoint", "add", "web2\n", "--tenant", "blue", "--interface", "lo", "--ipv4", "192.168.1.6")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].endswith("endpoint.name: 'web2\\n' contains a control or non-printable character ('\\n')"), lines
    r = cli(d, "tenant", "create", "red\x1b[2J", "--vni", "200")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "'red\\x1b[2J'" in lines[0] and "\x1b" not in r.stderr
    assert state.read_bytes() == before
    # the good name still goes in
    r = cli(d, "endpoint", "add", "web2", "--tenant", "blue", "--interface", "lo", "--ipv4", "192.168.1.6",
            "--json")
    assert r.returncode == 0, r.stderr
    assert [e["name"] for e in json.loads(state.read_text())["endpoints"]] == ["web2"]
