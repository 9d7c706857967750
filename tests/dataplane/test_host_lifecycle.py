"""One l3fab host's dataplane over its life: plumbing from the store, repair after a
restart, an endpoint interface that goes away and comes back (a VM restarted), and a
full stop that removes every tagged object and nothing else."""
from __future__ import annotations

import os
import re
import signal

import pytest

from l3fab.lab.netns import Lab, wait_until
from l3fab.lab.peers.l3fab import L3fabNode
from l3fab.lab.tenant_fabric import configure_guest

pytestmark = pytest.mark.timeout(300)


def snapshot(lab: Lab, ns) -> dict:
    def text(*argv: str) -> str:
        return lab.run(ns, list(argv), check=False).stdout

    return {
        "rules": [line for line in (text("ip", "rule") + text("ip", "-6", "rule")).splitlines()
                  if "proto 211" in line],
        "routes": text("ip", "route", "show", "table", "all", "proto", "211")
        + text("ip", "-6", "route", "show", "table", "all", "proto", "211"),
        "nft": re.sub(r"packets \d+ bytes \d+", "", text("nft", "list", "table", "inet", "l3fab")),
        "gateway": text("ip", "addr", "show", "dev", "vm-x1"),
        "anchor": text("ip", "link", "show", "dev", "l3fab0"),
    }


@pytest.fixture
def host(lab: Lab):
    ns = lab.add_namespace("h")
    ep = lab.add_namespace("x1")
    lab.link(ns, ep, "vm-x1", "eth0")
    configure_guest(ep, "eth0", "10.7.0.1", "fd07::1")
    ns.ip("link", "add", "foreign0", "type", "veth", "peer", "name", "foreign1")  # not ours: never touched
    ns.ip("rule", "add", "pref", "100", "iif", "foreign0", "lookup", "4000")  # same pref, other protocol
    lab.run(ns, ["nft", "add", "table", "inet", "someone"])
    cfg = {"router-id": "10.255.2.1", "asn": 4200000001, "graceful-restart": {"convergence-timeout": 1},
           "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:1::/64",
                       "state-file": str(lab.workdir / "intent.json")},
           "dataplane": {"reconcile-interval": 2}}
    node = L3fabNode(lab, ns, cfg, log_level="info").start()
    node.api("tenant_create", name="X", vni=700)
    node.api("endpoint_add", name="x1", tenant="X", interface="vm-x1", ipv4="10.7.0.1", ipv6="fd07::1")
    return lab, ns, ep, node


def test_repair_after_restart_interface_recreated_and_full_stop(host):
    lab, ns, ep, node = host
    good = snapshot(lab, ns)
    assert len(good["rules"]) == 3 and "End.DX4" in good["routes"] and "vm-x1" in good["nft"]
    assert "169.254.0.1/32" in good["gateway"] and "fe80::1/64" in good["gateway"] and good["anchor"]
    assert lab.run(ns, ["ping", "-c", "1", "-W", "1", "10.7.0.1"], check=False).returncode != 0  # host is not in X
    # someone deletes a tenant route, a SID route and a rule while l3fab runs: repaired
    table = node.api("tenant_show", name="X")["table"]
    sid6 = node.api("endpoint_show", name="x1")["sid6"]
    ns.ip("route", "del", "10.7.0.1/32", "table", str(table))
    ns.ip("-6", "route", "del", f"{sid6}/128")
    ns.ip("-6", "rule", "del", "pref", "90")
    wait_until(lambda: snapshot(lab, ns) == good, 15, 0.5, what="kernel state repaired while running")
    # someone deletes l3fab's rule and the gateway address; a restart repairs both
    ns.ip("rule", "del", "pref", "100", "iif", "vm-x1")
    ns.ip("addr", "del", "169.254.0.1/32", "dev", "vm-x1")
    lab.stop(node.process)
    node.start()
    wait_until(lambda: snapshot(lab, ns) == good, 15, 0.3, what="kernel state repaired after restart")
    # the endpoint's interface vanishes (VM stopped) and comes back (VM started)
    ns.ip("link", "del", "vm-x1")
    wait_until(lambda: "waiting" in node.api("endpoints")[0]["status"], 10, 0.3, what="endpoint waiting")
    lab.link(ns, ep, "vm-x1", "eth0")
    configure_guest(ep, "eth0", "10.7.0.1", "fd07::1")
    wait_until(lambda: node.api("endpoints")[0]["status"] == "plumbed", 10, 0.3, what="endpoint plumbed again")
    again = snapshot(lab, ns)
    assert again["rules"] == good["rules"] and again["nft"] == good["nft"]
    assert "End.DX4" in again["routes"] and "10.7.0.1 dev vm-x1" in again["routes"]
    assert "169.254.0.1/32" in again["gateway"]
    # full stop (SIGUSR1): every tagged object goes, foreign ones stay
    os.killpg(node.process.pid, signal.SIGUSR1)
    wait_until(lambda: not node.process.alive(), 15, 0.2, what="l3fab exited")
    gone = snapshot(lab, ns)
    assert gone["rules"] == [] and gone["routes"] == "" and gone["nft"] == "" and gone["anchor"] == ""
    assert "169.254.0.1" not in gone["gateway"]
    assert "iif foreign0 lookup 4000" in ns.ip("rule").stdout
    assert "table inet someone" in lab.run(ns, ["nft", "list", "tables"]).stdout
    assert ns.ip_json("link", "show", "dev", "foreign0")
