"""The anti-spoofing table with real packets: a host namespace routes between two
endpoint namespaces on veths named ``vm-a`` and ``tap-b`` (different prefixes: a
name wildcard would miss one of them).

Every drop is first shown to pass without the filter (``test_without_filter_...``),
so a failing ping under the filter is the filter's doing, and its counter must grow
by exactly the number of packets sent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest

from l3fab.dataplane import nft
from l3fab.dataplane.model import GATEWAY4, GATEWAY6, DataplaneSpec, PortSpec
from l3fab.lab.netns import Lab, Namespace

LOCATOR = "2001:db8:0:1::/64"
UNDERLAY6 = "2001:db8:0:1::1"   # on the host's lo, inside the locator only
UNDERLAY4 = "198.51.100.1"      # on the host's lo, inside an IPv4 underlay prefix
OTHER4, OTHER6 = "192.0.2.1", "fd99::1"  # host addresses outside the underlay
A4, A6, B4, B6 = "10.0.0.5", "fd00::5", "10.0.0.6", "fd00::6"
SPOOF_A4, SPOOF_A6, SPOOF_B4 = "10.0.0.99", "fd00::99", "10.0.0.98"
COUNT = 3

SPEC = DataplaneSpec(
    locator=LOCATOR, tunnel_source=UNDERLAY6,
    underlay_prefixes=("2001:db8:ff00::/40", "198.51.100.0/24"),
    ports=(PortSpec("ep-a", "blue", "vm-a", 100, ipv4=A4, ipv6=A6),
           PortSpec("ep-b", "blue", "tap-b", 100, ipv4=B4, ipv6=f"{B6}/128")))


@dataclass
class Topo:
    lab: Lab
    host: Namespace
    a: Namespace
    b: Namespace

    def apply(self, spec: DataplaneSpec = SPEC) -> nft.ApplyResult:
        return nft.apply(spec, netns=self.host.netns)

    def counters(self) -> dict:
        return nft.counters(netns=self.host.netns)

    def ping(self, ns: Namespace, src: str, dst: str, count: int = COUNT) -> bool:
        """True if every echo request got its reply."""
        proc = self.lab.run(ns, ["ping", "-n", "-q", "-c", count, "-i", "0.2", "-W", "1", "-I", src, dst],
                            check=False)
        return proc.returncode == 0 and f"{count} received" in proc.stdout

    def nft_text(self, *args: str) -> str:
        return self.lab.run(self.host, ["nft", *args]).stdout

    def table_handle(self) -> int | None:
        for item in json.loads(self.nft_text("-j", "list", "tables"))["nftables"]:
            t = item.get("table")
            if t and t["family"] == "inet" and t["name"] == "l3fab":
                return t["handle"]
        return None


def packets(counters: dict, endpoint: str, kind: str) -> int:
    return counters.get(endpoint, {}).get(kind, {}).get("packets", 0)


def deltas(before: dict, after: dict) -> dict[tuple[str, str], int]:
    """Non-zero packet-count changes by (endpoint, kind)."""
    keys = {(e, k) for c in (before, after) for e in c for k in c[e]}
    out = {key: packets(after, *key) - packets(before, *key) for key in keys}
    return {key: d for key, d in sorted(out.items()) if d}


@pytest.fixture(scope="module")
def topo(module_lab: Lab) -> Topo:
    lab = module_lab
    host = lab.add_namespace("host")
    a = lab.add_namespace("a", forwarding=False)
    b = lab.add_namespace("b", forwarding=False)
    for ifname, ep, v4, v6 in (("vm-a", a, A4, A6), ("tap-b", b, B4, B6)):
        lab.link(host, ep, ifname, "eth0")
        host.ip("link", "set", "dev", ifname, "addrgenmode", "none")
        host.ip("-6", "addr", "flush", "dev", ifname)
        host.ip("addr", "add", f"{GATEWAY4}/32", "scope", "link", "dev", ifname)
        lab.add_address(host, ifname, f"{GATEWAY6}/64")
        host.ip("route", "add", f"{v4}/32", "dev", ifname)
        host.ip("-6", "route", "add", f"{v6}/128", "dev", ifname)
        lab.add_address(ep, "eth0", f"{v4}/32")
        lab.add_address(ep, "eth0", f"{v6}/128")
        ep.ip("route", "add", GATEWAY4, "dev", "eth0", "scope", "link")
        ep.ip("route", "add", "default", "via", GATEWAY4, "dev", "eth0")
        ep.ip("-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0")
    for cidr in (f"{UNDERLAY6}/128", f"{UNDERLAY4}/32", f"{OTHER4}/32", f"{OTHER6}/128"):
        lab.add_address(host, "lo", cidr)
    # Spoofed sources, routed back to their endpoint so that without the filter they work.
    for ep, ifname, cidr in ((a, "vm-a", f"{SPOOF_A4}/32"), (a, "vm-a", f"{SPOOF_A6}/128"),
                             (b, "tap-b", f"{SPOOF_B4}/32")):
        lab.add_address(ep, "eth0", cidr)
        host.ip("-6" if ":" in cidr else "-4", "route", "add", cidr, "dev", ifname)
    return Topo(lab, host, a, b)


def flush_neighbours(topo: Topo) -> None:
    """Forget every resolved neighbour, so resolution happens again under the filter."""
    for ns, ifname in ((topo.host, "vm-a"), (topo.host, "tap-b"), (topo.a, "eth0"), (topo.b, "eth0")):
        ns.ip("neigh", "flush", "dev", ifname, "nud", "all")


def test_without_filter_everything_passes(topo: Topo) -> None:
    nft.remove(netns=topo.host.netns)
    assert topo.counters() == {}
    a, b = topo.a, topo.b
    for ns, src, dst in ((a, A4, B4), (a, A6, B6), (b, B6, A6),
                         (a, SPOOF_A4, B4), (a, SPOOF_A6, B6), (b, SPOOF_B4, A4),
                         (a, A6, UNDERLAY6), (a, A4, UNDERLAY4), (b, B6, UNDERLAY6),
                         (a, A4, GATEWAY4), (a, A4, OTHER4), (a, A6, OTHER6)):
        assert topo.ping(ns, src, dst), f"{ns.name}: ping -I {src} {dst} fails even without the filter"


def test_legit_traffic_and_neighbour_discovery_pass_and_are_counted(topo: Topo) -> None:
    assert topo.apply().action in ("replaced", "unchanged")
    flush_neighbours(topo)
    before = topo.counters()
    assert topo.ping(topo.a, A4, B4)
    assert topo.ping(topo.a, A6, B6)  # a and b both resolve fe80::1 by ND under the filter
    assert topo.ping(topo.b, B6, A6)
    # Echo requests and replies crossing the host; ND/MLD and ARP are not counted.
    assert deltas(before, topo.counters()) == {("ep-a", "accepted"): 3 * COUNT,
                                               ("ep-b", "accepted"): 3 * COUNT}
    gateway = [n for n in topo.a.ip_json("-6", "neigh", "show", "dev", "eth0") if n["dst"] == GATEWAY6]
    assert gateway and "lladdr" in gateway[0], f"fe80::1 not resolved on a: {gateway}"


def test_spoofed_sources_are_dropped_and_counted(topo: Topo) -> None:
    topo.apply()
    # a's NS for fe80::1 would take the spoofed source of the packet that triggers it
    # (and be dropped as spoofed, too): pin the gateway so that only echo requests count.
    mac = topo.host.ip_json("link", "show", "dev", "vm-a")[0]["address"]
    topo.a.ip("-6", "neigh", "replace", GATEWAY6, "lladdr", mac, "dev", "eth0", "nud", "permanent")
    try:
        before = topo.counters()
        assert not topo.ping(topo.a, SPOOF_A4, B4)
        assert not topo.ping(topo.a, SPOOF_A6, B6)
        assert not topo.ping(topo.b, SPOOF_B4, A4)
        assert deltas(before, topo.counters()) == {("ep-a", "spoofed"): 2 * COUNT,
                                                   ("ep-b", "spoofed"): COUNT}
    finally:
        topo.a.ip("-6", "neigh", "del", GATEWAY6, "dev", "eth0")


def test_underlay_and_host_addresses_are_dropped_and_counted(topo: Topo) -> None:
    topo.apply()
    before = topo.counters()
    for ns, src, dst in ((topo.a, A6, UNDERLAY6), (topo.a, A4, UNDERLAY4), (topo.b, B6, UNDERLAY6)):
        assert not topo.ping(ns, src, dst), f"{ns.name} reached the underlay address {dst}"
    for dst, src in ((GATEWAY4, A4), (OTHER4, A4), (OTHER6, A6)):
        assert not topo.ping(topo.a, src, dst), f"a reached the host address {dst}"
    assert deltas(before, topo.counters()) == {("ep-a", "underlay"): 2 * COUNT,
                                               ("ep-a", "host"): 3 * COUNT,
                                               ("ep-b", "underlay"): COUNT}
    assert topo.ping(topo.a, A4, B4), "legit traffic must still pass"


def test_second_apply_changes_nothing_and_keeps_counters(topo: Topo) -> None:
    topo.apply()
    assert topo.ping(topo.a, A4, B4)
    handle, before = topo.table_handle(), topo.counters()
    assert packets(before, "ep-a", "accepted") >= COUNT
    result = topo.apply()
    assert (result.action, result.changed) == ("unchanged", False)
    assert topo.table_handle() == handle
    assert topo.counters() == before


def test_changed_spec_replaces_the_table_and_carries_counters(topo: Topo) -> None:
    topo.apply()
    assert topo.ping(topo.a, A4, B4)
    handle, before = topo.table_handle(), topo.counters()
    wider = replace(SPEC, ports=SPEC.ports + (PortSpec("ep-c", "blue", "vm-c", 100, ipv4="10.0.0.7"),))
    assert topo.apply(wider).action == "replaced"
    assert topo.table_handle() != handle
    after = topo.counters()
    assert {e: after[e] for e in before} == before
    assert after["ep-c"] == {k: {"packets": 0, "bytes": 0} for k in nft.COUNTER_KINDS}
    assert not topo.ping(topo.a, SPOOF_A4, B4), "the new table filters too"
    assert topo.apply(SPEC).action == "replaced"
    assert set(topo.counters()) == {"ep-a", "ep-b"}


def test_empty_spec_removes_the_table(topo: Topo) -> None:
    topo.apply()
    assert nft.is_installed(netns=topo.host.netns)
    assert topo.apply(replace(SPEC, ports=())).action == "removed"
    assert not nft.is_installed(netns=topo.host.netns)
    assert topo.counters() == {}
    assert topo.apply(replace(SPEC, ports=())).action == "absent"
    assert topo.ping(topo.a, SPOOF_A4, B4), "no table, no filter"


def test_foreign_tables_are_never_touched(topo: Topo) -> None:
    """Another inet table, and a table of the same name in the ip family, survive every step."""
    foreign = ("table inet other {\n counter keep { packets 7 bytes 70 }\n"
               " chain c {\n  type filter hook input priority 0; policy accept;\n }\n}\n"
               "table ip l3fab {\n chain c {\n  type filter hook prerouting priority 0; policy accept;\n }\n}\n")
    topo.lab.run(topo.host, ["nft", "-f", "-"], input=foreign)
    try:
        def snapshot() -> str:
            return topo.nft_text("list", "table", "inet", "other") + topo.nft_text("list", "table", "ip", "l3fab")

        nft.remove(netns=topo.host.netns)
        first = snapshot()
        assert "packets 7 bytes 70" in first
        steps = [SPEC, replace(SPEC, ports=SPEC.ports[:1]), SPEC, replace(SPEC, ports=())]
        for spec in steps:
            topo.apply(spec)
            assert snapshot() == first, f"apply with {len(spec.ports)} ports changed a foreign table"
        topo.apply()
        assert nft.remove(netns=topo.host.netns) is True
        assert nft.remove(netns=topo.host.netns) is False
        assert snapshot() == first
    finally:
        topo.lab.run(topo.host, ["nft", "delete", "table", "inet", "other"], check=False)
        topo.lab.run(topo.host, ["nft", "delete", "table", "ip", "l3fab"], check=False)


def test_unusual_endpoint_names_load(module_lab: Lab) -> None:
    ns = module_lab.add_namespace("names")
    names = ("1", "counter", "ip", "a.b_c-d", "x" * 63)
    ifnames = ("ip", "x:y@z", "e.f", "vm0", "abcdefghijklmno")
    spec = replace(SPEC, ports=tuple(PortSpec(n, "t", i, 100, ipv4=f"10.1.0.{k + 1}")
                                     for k, (n, i) in enumerate(zip(names, ifnames))))
    assert nft.apply(spec, netns=ns.netns).action == "replaced"
    got = nft.counters(netns=ns.netns)
    assert set(got) == set(names)
    assert all(set(got[n]) == set(nft.COUNTER_KINDS) for n in names)
    assert nft.apply(spec, netns=ns.netns).action == "unchanged"


def test_nft_failure_is_one_line(module_lab: Lab) -> None:
    with pytest.raises(nft.NftError) as err:
        nft.apply(SPEC, netns=module_lab.netns_name("does-not-exist"))
    assert "\n" not in str(err.value) and "does-not-exist" in str(err.value)
