"""Endpoint churn must not grow the daemon (issue 10, finding 20).

A real ``l3fab run`` with a tenancy section and the Linux dataplane, in a namespace of
its own, adds and removes one endpoint (on a veth) 300 times through the API. Its
resident set after 300 cycles must stay within a generous bound of the one after 50:
the leak that was found grew ~20 kB per cycle (+5 MB over 250 cycles) and never
levelled off. The bound is on memory, not time, and generous enough for allocator noise.
"""
from __future__ import annotations

import pytest

from l3fab.lab.netns import Lab, wait_until
from l3fab.lab.peers.l3fab import L3fabNode

pytestmark = pytest.mark.timeout(600)

CYCLES = 300
SAMPLE_EVERY = 50
SLACK_KB = 3 * 1024


def vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.mark.xfail(strict=False, reason=(
    "issue 10 finding 20 is only partly fixed: the VRF importer's per-SID decisions no longer "
    "stay (tests/unit/test_churn_memory.py), but RSS still grows ~17 kB/cycle although traced "
    "Python allocations grow only ~2 kB/cycle (also with MALLOC_ARENA_MAX=1); remove this "
    "marker when the rest is found"))
def test_rss_after_300_endpoint_add_remove_cycles_stays_near_rss_after_50(lab: Lab):
    ns = lab.add_namespace("churn")
    lab.link(ns, ns, "vm-c1", "vp-c1")  # the endpoint's interface, as a hypervisor creates it
    cfg = {"router-id": "10.255.2.1", "asn": 4200000001,
           "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:1::/64",
                       "state-file": str(lab.workdir / "intent.json")},
           "dataplane": {"reconcile-interval": 30}}
    node = L3fabNode(lab, ns, cfg, log_level="info").start()
    node.api("tenant_create", name="churn", vni=100)
    samples: dict[int, int] = {}
    for cycle in range(1, CYCLES + 1):
        node.api("endpoint_add", name="c1", tenant="churn", interface="vm-c1",
                 ipv4="10.9.0.1", ipv6="fd09::1")
        if cycle == 1:  # the first one is really plumbed in the kernel
            wait_until(lambda: node.api("endpoints")[0]["status"] == "plumbed", 15, 0.1,
                       what="endpoint plumbed")
        node.api("endpoint_remove", name="c1")
        if cycle % SAMPLE_EVERY == 0:
            samples[cycle] = vm_rss_kb(node.pid)
    assert node.api("endpoints") == []
    print(f"VmRSS by cycle (kB): {samples}")
    growth = samples[CYCLES] - samples[SAMPLE_EVERY]
    assert growth <= SLACK_KB, (
        f"RSS grew {growth} kB from cycle {SAMPLE_EVERY} to {CYCLES} "
        f"({growth / (CYCLES - SAMPLE_EVERY):.1f} kB/cycle): {samples}")
