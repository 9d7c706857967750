"""The FIB against a real kernel, in a lab namespace, checked with ``ip -j route show``."""

from __future__ import annotations

import pytest

from l3fab.fib import (RTPROT_L3FAB, FibNextHop, FibRoute, Seg6Encap, blackhole, seg6_route,
                 unicast, unreachable)
from l3fab.lab.netns import wait_until

from conftest import fib_in  # tests/fib/conftest.py

T = 100


def routes(ns, table=T, six=False):
    args = (["-6"] if six else []) + ["route", "show", "table", str(table)]
    return {r["dst"]: r for r in ns.ip_json(*args)}


def hops(entry):
    return sorted((h.get("gateway") or h.get("via", {}).get("host"), h["dev"], h["weight"])
                  for h in entry["nexthops"])


TENANT = [
    unicast(T, "10.1.0.0/24", FibNextHop("10.0.0.2", "up0"), FibNextHop("10.0.1.2", "up1", weight=3)),
    unicast(T, "10.2.0.0/24", FibNextHop("fe80::2", "up0")),
    unicast(T, "2001:db8::/64", FibNextHop("fe80::2", "up0"), FibNextHop("fe80::3", "up1")),
    seg6_route(T, "10.3.0.1/32", "fc00::1", ifname="up0"),
    seg6_route(T, "2001:db8:1::1/128", "fc00::2", ifname="up1"),
    unreachable(T, "0.0.0.0/0"),
    unreachable(T, "::/0"),
    blackhole(T, "10.9.0.0/16"),
]


def test_install_shows_in_ip_route_as_encoded(router):
    fib = fib_in(router)
    result = fib.set_desired(T, TENANT)
    assert result.ok and result.added == len(TENANT)
    v4, v6 = routes(router), routes(router, six=True)
    assert {r["protocol"] for r in [*v4.values(), *v6.values()]} == {str(RTPROT_L3FAB)}
    assert hops(v4["10.1.0.0/24"]) == [("10.0.0.2", "up0", 1), ("10.0.1.2", "up1", 3)]
    assert v4["10.2.0.0/24"]["via"] == {"family": "inet6", "host": "fe80::2"}
    assert v4["10.2.0.0/24"]["dev"] == "up0"
    assert hops(v6["2001:db8::/64"]) == [("fe80::2", "up0", 1), ("fe80::3", "up1", 1)]
    seg = v4["10.3.0.1"]
    assert (seg["encap"], seg["mode"], seg["segs"], seg["dev"]) == ("seg6", "encap.red",
                                                                    ["fc00::1"], "up0")
    seg = v6["2001:db8:1::1"]
    assert (seg["encap"], seg["mode"], seg["segs"], seg["dev"]) == ("seg6", "encap.red",
                                                                    ["fc00::2"], "up1")
    assert v4["default"]["type"] == "unreachable" and v6["default"]["type"] == "unreachable"
    assert v4["10.9.0.0/16"]["type"] == "blackhole"
    assert routes(router, table=254).keys().isdisjoint({"10.1.0.0/24", "default"})
    # the dump parser reads back exactly what was written
    assert fib.reconcile() == type(result)()
    assert {r.prefix for r in fib.installed(T)} == {r.prefix for r in TENANT}


def test_replace_and_delete(router):
    fib = fib_in(router)
    fib.converged()
    fib.set_desired(T, TENANT)
    with fib.batch() as batch:
        fib.update(unicast(T, "10.1.0.0/24", FibNextHop("10.0.0.2", "up0"),
                           FibNextHop("10.0.0.3", "up0"), FibNextHop("10.0.1.2", "up1")))
        fib.update(seg6_route(T, "10.3.0.1/32", "fc00::99", ifname="up1"))
        fib.remove(T, "10.9.0.0/16")
        fib.update(unicast(T, "10.2.0.0/24", FibNextHop("fe80::2", "up0"), metric=50))
    assert (batch.value.replaced, batch.value.added, batch.value.deleted) == (2, 1, 2)
    v4 = routes(router)
    assert hops(v4["10.1.0.0/24"]) == [("10.0.0.2", "up0", 1), ("10.0.0.3", "up0", 1),
                                       ("10.0.1.2", "up1", 1)]
    assert (v4["10.3.0.1"]["segs"], v4["10.3.0.1"]["dev"]) == (["fc00::99"], "up1")
    assert "10.9.0.0/16" not in v4
    assert v4["10.2.0.0/24"]["metric"] == 50  # the metric-0 route is gone (one entry per dst)
    assert fib.set_desired(T, []).deleted == len(TENANT) - 1
    assert routes(router) == {} and routes(router, six=True) == {}


def test_routes_of_other_protocols_are_never_touched(router):
    router.ip("route", "add", "10.1.0.0/24", "via", "10.0.0.9", "table", str(T), "proto", "static")
    router.ip("route", "add", "10.8.0.0/24", "dev", "up1", "table", str(T), "proto", "static")
    before = routes(router)
    fib = fib_in(router)
    result = fib.set_desired(T, TENANT[:1] + [unicast(T, "10.5.0.0/24", FibNextHop("10.0.0.2"))])
    assert result.added == 1 and len(result.errors) == 1
    assert "10.1.0.0/24" in result.errors[0] and "another protocol" in result.errors[0]
    fib.converged()
    fib.set_desired(T, [])
    after = routes(router)
    assert after == {k: v for k, v in before.items()}  # static routes as they were, ours gone


def test_restart_leaves_correct_routes_and_prunes_only_after_convergence(lab, router):
    first = fib_in(router)
    stale = seg6_route(T, "10.3.0.7/32", "fc00::7", ifname="up0")
    first.set_desired(T, TENANT + [stale])
    first.close()  # "l3fab restarts"

    monitor = lab.popen(None, ["ip", "-n", router.netns, "monitor", "route"], name="monitor")
    marker_no = iter(range(1, 60000))

    def events() -> str:
        """Monitor output so far, once a fresh static marker route shows in it.

        Every poll adds another marker: the first ones may come before the
        monitor has subscribed.
        """
        markers: list[str] = []

        def caught_up() -> str | None:
            n = next(marker_no)
            markers.append(f"10.250.{n >> 8}.{n & 255}")
            router.ip("route", "add", markers[-1] + "/32", "dev", "up0", "table", "200",
                      "proto", "static")
            text = monitor.log_text()
            return text if any(f"{m} " in text for m in markers) else None

        return wait_until(caught_up, what="ip monitor showing a marker route")

    assert "10.250." in events()  # the monitor runs
    second = fib_in(router)
    changed = seg6_route(T, "10.3.0.1/32", "fc00::42", ifname="up0")
    with second.batch() as batch:
        for route in TENANT:
            second.update(changed if route.prefix == "10.3.0.1/32" else route)
    assert (batch.value.added, batch.value.replaced, batch.value.deleted) == (0, 1, 0)
    log = events()
    touched = [line for line in log.splitlines() if "10.250." not in line and line.strip()]
    assert touched and all("10.3.0.1 " in line for line in touched), touched
    assert "10.3.0.7" in routes(router)  # stale, kept until the RIB has converged
    assert second.converged().deleted == 1
    assert "10.3.0.7" not in routes(router)
    log = events()
    assert any(line.startswith("Deleted") and "10.3.0.7" in line for line in log.splitlines())


def test_unreachable_defaults_in_a_table_above_255(router):
    fib = fib_in(router)
    fib.set_desired(70000, [unreachable(70000, "0.0.0.0/0"), unreachable(70000, "::/0")])
    assert routes(router, table=70000)["default"]["type"] == "unreachable"
    assert routes(router, table=70000, six=True)["default"]["type"] == "unreachable"
    assert "default" not in routes(router, table=254)


def test_large_batch_every_route_acknowledged(router):
    """Several chunks of acks: nothing is lost, and the dump sees every route."""
    many = [seg6_route(T, f"10.{i >> 8}.{i & 255}.1/32", f"fc00::{i:x}", ifname="up0")
            for i in range(3000)]
    fib = fib_in(router)
    result = fib.set_desired(T, many)
    assert result.ok and result.added == 3000
    assert len(routes(router)) == 3000
    assert len(fib.installed(T)) == 3000 and fib.reconcile().added == 0


@pytest.mark.parametrize("encap", [Seg6Encap(("fc00::1", "fc00::2"), mode=1)])
def test_multi_segment_order_matches_iproute2(router, encap):
    fib = fib_in(router)
    fib.update(FibRoute(T, "10.6.0.0/24", (FibNextHop(ifname="up0", encap=encap),)))
    router.ip("route", "add", "10.6.1.0/24", "encap", "seg6", "mode", "encap", "segs",
              "fc00::1,fc00::2", "dev", "up0", "table", str(T))
    v4 = routes(router)
    assert v4["10.6.0.0/24"]["segs"] == v4["10.6.1.0/24"]["segs"]
    assert v4["10.6.0.0/24"]["mode"] == "encap"
