"""Tenants and endpoints through the running daemon: CLI, state file, and the VPN routes
a peer receives (control plane only; the tenant data plane is not built yet)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from l3fab.speaker.wire import IPV6_UNICAST, VPNV4, VPNV6, ExtendedCommunities, Update

from .conftest import REPO
from .rawpeer import RawPeer, wait


def cli(d, *args):
    return subprocess.run([sys.executable, "-m", "l3fab.cli.main", *args, "--socket", d.socket], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"})


def _routes(peer: RawPeer, seen: dict) -> dict:
    """Apply every UPDATE the peer has received so far to ``seen`` (prefix -> (family, next hop, RTs))."""
    while True:
        try:
            upd = peer.expect(Update, timeout=0.2)
        except TimeoutError:
            return seen
        for fam, nh, nlri in upd.reachable():
            ext = upd.get(ExtendedCommunities)
            rts = [str(c) for c in ext.communities] if ext else []
            for n in nlri:
                seen[str(getattr(n, "prefix", n))] = (fam.name, nh.address, getattr(n, "rd", None) and str(n.rd), rts)
        for _fam, nlri in upd.unreachable():
            for n in nlri:
                seen.pop(str(getattr(n, "prefix", n)), None)


def test_tenant_and_endpoint_lifecycle(daemon_factory, tmp_path):
    state = tmp_path / "intent.json"
    d = daemon_factory({
        "router-id": "10.0.0.11", "asn": 4200000011, "listen": {"addresses": ["127.0.0.1"], "port": 0},
        "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:11::/64", "state-file": str(state)},
        # the raw peer sends no KEEPALIVEs: a hold time that outlasts the test's dozen CLI
        # runs on a loaded CI machine (9 s did not, once)
        "neighbors": [{"name": "leaf", "address": "127.0.0.1", "remote-as": 65101, "passive": True,
                       "hold-time": 30, "families": ["ipv6", "vpnv4", "vpnv6"]}]})
    peer = RawPeer(d.status["listen_port"], families=(IPV6_UNICAST, VPNV4, VPNV6), asn=65101)
    wait(lambda: d.api("neighbor", neighbor="leaf")["state"] == "Established")

    r = cli(d, "tenant", "create", "blue", "--vni", "100", "--json")
    assert r.returncode == 0, r.stderr
    blue = json.loads(r.stdout)
    assert (blue["rd"], blue["route_target"], blue["table"]) == ("10.0.0.11:100", "target:65000:100", 1000)
    r = cli(d, "endpoint", "add", "vm1", "--tenant", "blue", "--interface", "lo", "--ipv4", "192.168.1.5",
            "--ipv6", "fd00::5", "--json")
    assert r.returncode == 0, r.stderr
    vm1 = json.loads(r.stdout)

    seen: dict = {}
    wait(lambda: len(_routes(peer, seen)) >= 3)
    assert seen["2001:db8:0:11::/64"][0] == "ipv6-unicast"          # the locator
    assert seen["192.168.1.5/32"][:3] == ("vpnv4", vm1["sid4"], "10.0.0.11:100")
    assert seen["fd00::5/128"][:3] == ("vpnv6", vm1["sid6"], "10.0.0.11:100")
    assert "target:65000:100" in seen["192.168.1.5/32"][3]

    # refused changes: one line naming field and value, exit 2, state file untouched
    before = state.read_bytes()
    for args, needle in ((["endpoint", "add", "vm2", "--tenant", "blue", "--interface", "lo", "--ipv4", "192.168.1.6"],
                          "'lo' is already used by endpoint 'vm1'"),
                         (["endpoint", "add", "vm3", "--tenant", "red", "--interface", "lo", "--ipv4", "10.0.0.1"],
                          "red"),
                         (["tenant", "create", "blue2", "--vni", "100"], "100"),
                         (["endpoint", "add", "vm4", "--tenant", "blue", "--interface", "no-such-if0", "--ipv4",
                           "192.168.1.9"],
                          "no-such-if0")):
        r = cli(d, *args)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, r.stderr)
    assert state.read_bytes() == before

    # remove: the routes are withdrawn
    assert cli(d, "endpoint", "remove", "vm1").returncode == 0
    wait(lambda: "192.168.1.5/32" not in _routes(peer, seen) and "fd00::5/128" not in seen)
    assert "2001:db8:0:11::/64" in seen
    listed = json.loads(cli(d, "endpoint", "list", "--json").stdout)
    assert listed == []
