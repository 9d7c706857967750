"""The Linux backend's VRF-device path (production kernels; this CI kernel has no VRF
devices, so its namespace tests exercise the ip-rule fallback) and rate validation."""
from __future__ import annotations

import pytest

from l3fab.dataplane.intent import DataplaneSettings, build_spec
from l3fab.dataplane.linux import LinuxDataplane
from l3fab.dataplane.plan import build
from l3fab.tenancy.errors import IntentError

from tenancy_fixtures import new_intent


class FakeIp:
    """Records ``ip`` commands; ``links()`` answers from a fixed list."""

    def __init__(self, links: list[dict]) -> None:
        self._links = links
        self.calls: list[tuple[str, ...]] = []

    def links(self) -> list[dict]:
        return self._links

    def run(self, *args: str, **_kw) -> str:
        self.calls.append(args)
        return ""


class Features:
    vrf = True


def test_vrf_devices_created_bound_to_tables_and_ports_enslaved(tmp_path):
    it = new_intent(tmp_path)
    it.create_tenant("A", vni=100)
    it.create_tenant("B", vni=200)
    it.add_endpoint("a1", "A", "tap1", ipv4="10.0.0.1")
    it.add_endpoint("b1", "B", "tap2", ipv4="10.0.0.1")
    spec = build_spec(it.node.locator, it.tenants(), it.endpoints(), DataplaneSettings())
    plan = build(spec, vrf_devices=True)
    a, b = it.tenant("A").table, it.tenant("B").table
    ip = FakeIp([
        {"ifname": "l3v-200", "linkinfo": {"info_kind": "vrf", "info_data": {"table": 4242}}},  # wrong table
        {"ifname": "l3v-999", "linkinfo": {"info_kind": "vrf", "info_data": {"table": 9}}},  # stale tenant
        {"ifname": "eth0"},  # not ours
        {"ifname": "tap1"}, {"ifname": "tap2", "master": "l3v-200"},
    ])
    dp = LinuxDataplane(ip=ip, features=Features(), fib=object())
    assert dp.vrf_devices
    assert dp._vrf_devices(spec, plan) == []
    calls = [" ".join(c) for c in ip.calls]
    assert f"link add l3v-100 type vrf table {a}" in calls
    assert "link del dev l3v-200" in calls and f"link add l3v-200 type vrf table {b}" in calls
    assert "link del dev l3v-999" in calls
    assert "link set dev tap1 master l3v-100" in calls
    assert not any("eth0" in c for c in calls)
    # tap2 was in the old l3v-200, which had to be recreated: enslaved again (regression)
    assert calls.index("link set dev tap2 master l3v-200") > calls.index(f"link add l3v-200 type vrf table {b}")
    # a second run against a kernel that is right changes nothing
    ip2 = FakeIp([{"ifname": "l3v-100", "flags": ["UP"], "linkinfo": {"info_data": {"table": a}}},
                  {"ifname": "l3v-200", "flags": ["UP"], "linkinfo": {"info_data": {"table": b}}},
                  {"ifname": "tap1", "master": "l3v-100"}, {"ifname": "tap2", "master": "l3v-200"}])
    LinuxDataplane(ip=ip2, features=Features(), fib=object())._vrf_devices(spec, plan)
    assert ip2.calls == []


def test_rate_limit_below_what_tc_can_shape_is_refused(tmp_path):
    it = new_intent(tmp_path)
    it.create_tenant("A", vni=100)
    with pytest.raises(IntentError, match=r"rate-limit: '4kbit' is below 8000 bit/s"):
        it.add_endpoint("a1", "A", "tap1", ipv4="10.0.0.1", rate_limit="4kbit")
    assert it.add_endpoint("a1", "A", "tap1", ipv4="10.0.0.1", rate_limit="8kbit").rate_limit == 8000
