"""Feature probes against this kernel.  Each expectation is computed here with a
direct command in a fresh lab namespace, independently of dataplane.features."""
from __future__ import annotations

import json
import shutil

from l3fab.dataplane.features import Features, detect
from l3fab.lab.netns import Lab, Namespace

# Tunnel fallback devices the kernel adds by itself the first time a tunnel kind is used.
FALLBACK_DEVICES = {"ip6tnl0", "sit0", "tunl0", "ip6gre0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0"}


def try_in(lab: Lab, ns: Namespace, *argv: str):
    return lab.run(ns, argv, check=False)


def snapshot(lab: Lab, ns: Namespace) -> dict:
    """Everything a probe could leave behind in ``ns``."""
    def out(*argv: str) -> str:
        return lab.run(ns, argv).stdout

    links = sorted(link["ifname"] for link in ns.ip_json("link", "show")
                   if link["ifname"] not in FALLBACK_DEVICES)
    return {"links": links,
            "routes4": out("ip", "-4", "route", "show", "table", "all"),
            "routes6": out("ip", "-6", "route", "show", "table", "all"),
            "rules": out("ip", "rule", "show") + out("ip", "-6", "rule", "show"),
            "qdiscs": json.loads(out("tc", "-j", "qdisc", "show")),
            "nft": out("nft", "list", "ruleset") if shutil.which("nft") else ""}


def test_detect_matches_direct_commands(lab: Lab):
    ns = lab.add_namespace("direct")
    vrf = try_in(lab, ns, "ip", "link", "add", "vrf-x", "type", "vrf", "table", "1234")
    ip6tnl = try_in(lab, ns, "ip", "link", "add", "t6-x", "type", "ip6tnl", "mode", "ip6ip6",
                    "local", "fd00::1", "remote", "fd00::2")
    try_in(lab, ns, "ip", "link", "add", "pa", "type", "veth", "peer", "name", "pb")
    tbf = try_in(lab, ns, "tc", "qdisc", "add", "dev", "pa", "root", "tbf", "rate", "1mbit", "burst", "10k",
                 "latency", "10ms")
    try_in(lab, ns, "tc", "qdisc", "add", "dev", "pa", "ingress")
    police = try_in(lab, ns, "tc", "filter", "add", "dev", "pa", "ingress", "protocol", "all", "u32",
                    "match", "u32", "0", "0", "action", "police", "rate", "1mbit", "burst", "64k", "drop")
    nft_ok = shutil.which("nft") is not None and try_in(lab, ns, "nft", "list", "tables").returncode == 0

    found = detect(refresh=True)
    assert found.vrf is (vrf.returncode == 0)
    if not found.vrf:
        assert found.reason("vrf").startswith(vrf.stderr.strip().removeprefix("Error: ").splitlines()[0])
        assert not found.seg6local_dt4_vrftable and found.reason("seg6local_dt4_vrftable")
    assert found.ip6tnl is (ip6tnl.returncode == 0)
    assert found.tc_tbf is (tbf.returncode == 0)
    assert found.tc_police is (police.returncode == 0)
    if not found.tc_police:
        assert "act_police" in found.reason("tc_police")
    assert found.nftables is nft_ok
    # The documented facts of this CI kernel (LINUX-DATAPLANE.md): seg6 and seg6local work here.
    assert found.seg6 and found.seg6_red and found.seg6local
    assert found.reason("seg6") is None


def test_scratch_namespace_is_removed(lab: Lab):
    found = detect(refresh=True)
    assert found.probed_in.startswith("l3fab-probe-")
    listed = lab.run(lab.add_namespace("any"), ["ip", "netns", "list"]).stdout
    assert found.probed_in not in listed


def test_probes_inside_a_namespace_leave_nothing_behind(lab: Lab):
    ns = lab.add_namespace("target")
    lab.add_namespace("peer")
    lab.link("target", "peer", "up0", "down0")
    ns.add_address("up0", "10.0.0.1/24")
    before = snapshot(lab, ns)
    found = detect(ns.netns, refresh=True)
    assert found.probed_in == ns.netns
    assert found.seg6local and found.tc_tbf  # the probes really ran there
    assert snapshot(lab, ns) == before


def test_cached_per_namespace(lab: Lab):
    ns = lab.add_namespace("cache")
    first = detect(ns.netns, refresh=True)
    assert detect(ns.netns) is first
    assert detect(ns.netns, refresh=True) is not first
    assert detect() is not first


def test_summary_lists_every_feature_with_reason_only_when_missing(lab: Lab):  # lab: the root gate
    found = detect()
    summary = found.summary()
    assert list(summary) == list(Features.names())
    assert "vrf" in summary and "tc_police" in summary and "reasons" not in summary
    for name, row in summary.items():
        assert row["available"] is getattr(found, name)
        assert (row["reason"] is None) == row["available"], name
        assert row["reason"] is None or ("\n" not in row["reason"] and row["reason"])
    json.dumps(summary)  # the CLI prints it as JSON too
