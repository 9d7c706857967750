"""Routes the kernel deletes by itself when their interface goes down come back.

``ip link set X down`` makes the kernel delete every route through X (IPv4
without announcing it) and ``up`` does not restore them. The FIB must not keep
trusting what it wrote: an update of such a route re-creates it (a replace
answered ENOENT before), and :meth:`Fib.repair` puts them back as soon as the
link is up again, without waiting for the periodic reconcile. Every check is
on the kernel's own dump (``ip -j route show``).
"""

from __future__ import annotations

import pytest

from l3fab.fib import FibNextHop, FibResult, seg6_route, unicast

from conftest import fib_in  # tests/fib/conftest.py

T = 100
VIA_UP0 = [  # single-path routes through up0, as the underlay and the tenant planes have them
    unicast(T, "10.7.0.1/32", FibNextHop("10.0.0.2", "up0")),
    unicast(T, "10.7.0.2/32", FibNextHop("fe80::2", "up0")),            # RFC 8950
    unicast(T, "2001:db8:7::1/128", FibNextHop("fe80::2", "up0")),
    seg6_route(T, "10.7.0.3/32", "fc00::3", ifname="up0"),
]
VIA_UP1 = unicast(T, "10.8.0.1/32", FibNextHop("10.0.1.2", "up1"))


def dump(ns, table=T):
    """{dst: (gateway, dev)} of the kernel's routes in ``table``, both families."""
    out = {}
    for six in (False, True):
        for r in ns.ip_json(*(["-6"] if six else []), "route", "show", "table", str(table)):
            gw = r.get("gateway") or r.get("via", {}).get("host")
            out[r["dst"]] = (gw, r.get("dev"))
    return out


EXPECTED = {"10.7.0.1": ("10.0.0.2", "up0"), "10.7.0.2": ("fe80::2", "up0"),
            "2001:db8:7::1": ("fe80::2", "up0"), "10.7.0.3": (None, "up0"),
            "10.8.0.1": ("10.0.1.2", "up1")}


def link_down(ns, ifname="up0"):
    ns.ip("link", "set", "dev", ifname, "down")
    gone = dump(ns)
    assert not any(dev == ifname for _gw, dev in gone.values()), gone  # the kernel deleted them
    assert "10.8.0.1" in gone
    return gone


def link_up(ns, ifname="up0"):
    ns.ip("link", "set", "dev", ifname, "up")
    assert not any(dev == ifname for _gw, dev in dump(ns).values())  # and does not restore them


@pytest.mark.parametrize("watch", [True, False], ids=["link-watch", "no-watch"])
def test_an_update_re_creates_a_route_the_kernel_deleted_with_its_link(router, watch):
    """Without the watch this is the lab's case: a replace without NLM_F_CREATE, ENOENT."""
    fib = fib_in(router, watch=watch)
    assert fib.set_desired(T, VIA_UP0 + [VIA_UP1]).added == 5
    assert dump(router) == EXPECTED
    link_down(router)
    link_up(router)
    moved = [unicast(T, "10.7.0.1/32", FibNextHop("10.0.1.2", "up1")),    # the best path moved
             unicast(T, "2001:db8:7::1/128", FibNextHop("fe80::3", "up0"))]
    with fib.batch() as batch:
        for route in moved:
            fib.update(route)
    assert batch.value.ok, batch.value.errors
    assert batch.value.added == 2
    now = dump(router)
    assert now["10.7.0.1"] == ("10.0.1.2", "up1")
    assert now["2001:db8:7::1"] == ("fe80::3", "up0")
    # The replace that found its route gone made the FIB read the kernel again: the
    # other dropped routes come back with the next change or repair, not after a restart.
    assert fib.repair().added == 2
    assert dump(router) == EXPECTED | {"10.7.0.1": ("10.0.1.2", "up1"),
                                       "2001:db8:7::1": ("fe80::3", "up0")}
    assert fib.reconcile() == FibResult()


def test_an_unchanged_update_after_a_link_flap_re_creates_the_route(router):
    fib = fib_in(router)
    fib.set_desired(T, VIA_UP0 + [VIA_UP1])
    link_down(router)
    link_up(router)
    result = fib.update(VIA_UP0[0])  # the same route again (a peer re-sent it)
    assert result.ok and result.added == 1, result
    assert dump(router)["10.7.0.1"] == ("10.0.0.2", "up0")


@pytest.mark.parametrize("protocol", [210, 211], ids=["underlay", "tenant"])
def test_repair_puts_back_what_the_kernel_dropped_once_the_link_is_up(router, protocol):
    fib = fib_in(router, protocol=protocol)
    fib.converged()
    fib.set_desired(T, VIA_UP0 + [VIA_UP1])
    assert fib.repair() == FibResult()  # nothing changed: nothing read, nothing written
    link_down(router)
    down = fib.repair()  # the link is still down: the kernel refuses, the FIB says why
    assert down.added == 0 and len(down.errors) == 4
    assert all("ENETDOWN" in e or "ENETUNREACH" in e for e in down.errors), down.errors
    assert len(fib.errors) == 4
    link_up(router)
    up = fib.repair()
    assert up.ok and up.added == 4, up
    assert dump(router) == EXPECTED
    assert not fib.errors
    assert fib.repair() == FibResult() and fib.reconcile() == FibResult()


def test_reconcile_puts_back_what_the_kernel_dropped(router):
    """The periodic repair for what no announcement reveals; also right after a flap."""
    fib = fib_in(router, watch=False)
    fib.set_desired(T, VIA_UP0 + [VIA_UP1])
    link_down(router)
    link_up(router)
    assert fib.repair() == FibResult()  # without a watch only a reconcile can find out
    assert fib.reconcile().added == 4
    assert dump(router) == EXPECTED


def test_routes_through_a_re_created_interface_come_back_with_its_new_index(lab, router):
    """A link removed and made again (a new ifindex): the routes are encoded again."""
    fib = fib_in(router)
    fib.set_desired(T, VIA_UP0 + [VIA_UP1])
    before = router.ip_json("link", "show", "dev", "up0")[0]["ifindex"]
    router.ip("link", "del", "dev", "up0")
    gone = fib.repair()
    assert gone.added == 0 and len(gone.errors) == 4
    assert all("ENODEV" in e or "ENETUNREACH" in e for e in gone.errors), gone.errors
    lab.link("r", "peer", "up0", "down0")
    router.add_address("up0", "10.0.0.1/24")
    assert router.ip_json("link", "show", "dev", "up0")[0]["ifindex"] != before
    back = fib.repair()
    assert back.ok and back.added == 4, back
    assert dump(router) == EXPECTED
    assert fib.repair() == FibResult() and fib.reconcile() == FibResult()
