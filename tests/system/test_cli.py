"""The real ``l3fab`` CLI against a running speaker: tables, --json, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO

CONFIG = {
    "router-id": "10.0.0.1", "asn": 65001,
    "listen": {"addresses": ["127.0.0.1"], "port": 0},
    "neighbors": [{"name": "nobody", "address": "127.0.0.9", "remote-as": 65002, "passive": True,
                   "families": ["ipv4", "vpnv4"]}],
}


def cli(d, *args):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "l3fab.cli.main", *args, "--socket", d.socket],
                          capture_output=True, text=True, cwd=REPO, env=env)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in r.stderr


def test_show_announce_withdraw_and_errors(daemon_factory):
    d = daemon_factory(CONFIG)
    assert os.stat(d.socket).st_mode & 0o777 == 0o660  # the API socket: owner and group only
    r = cli(d, "show", "neighbors")
    assert r.returncode == 0 and "nobody" in r.stdout and "Active" in r.stdout
    rows = json.loads(cli(d, "show", "neighbors", "--json").stdout)
    assert rows[0]["name"] == "nobody" and rows[0]["state"] == "Active" and rows[0]["passive"] is True

    assert cli(d, "announce", "10.9.0.1/32", "--rd", "65001:10", "--rt", "65000:10", "--label", "100",
               "--next-hop", "2001:db8::5").returncode == 0
    local = json.loads(cli(d, "show", "rib", "local", "--json").stdout)
    assert (local[0]["rd"] == "65001:10" and local[0]["labels"] == [100]
            and local[0]["ext_communities"] == ["target:65000:10"])
    r = cli(d, "show", "rib", "local")
    assert "10.9.0.1/32" in r.stdout and "65001:10" in r.stdout
    loc = json.loads(cli(d, "show", "rib", "--family", "vpnv4", "--json").stdout)
    assert [(x["prefix"], x["best"], x["valid"], x["source"]) for x in loc] == [("10.9.0.1/32", True, True, "local")]
    r = cli(d, "show", "rib")
    assert "*>" in r.stdout and "10.9.0.1/32" in r.stdout
    one_line_error(cli(d, "show", "rib", "advertised", "ghost"), "neighbor", "ghost")
    assert cli(d, "withdraw", "10.9.0.1/32", "--rd", "65001:10").stdout.strip() == "withdrew 1 route(s)"
    assert json.loads(cli(d, "show", "rib", "local", "--json").stdout) == []

    one_line_error(cli(d, "announce", "10.9.0.1/33"), "routes[0].prefix", "10.9.0.1/33")
    one_line_error(cli(d, "announce", "10.9.0.1/32", "--rd", "65001:10"), "routes[0].next_hop", "missing")
    one_line_error(cli(d, "announce", "10.9.0.1/32", "--rd", "x:y", "--next-hop", "::1"), "routes[0].rd", "x:y")
    one_line_error(cli(d, "announce", "10.9.0.1/32", "--community", "70000:1"), "routes[0].communities", "70000:1")
    one_line_error(cli(d, "show", "rib", "received", "ghost"), "neighbor", "ghost")
    one_line_error(cli(d, "show", "rib", "received", "nobody", "--family", "evpn"), "family", "evpn")
    one_line_error(cli(d, "neighbor", "refresh", "nobody"), "neighbor", "Active")
    assert d.proc.poll() is None
