"""A VPN next hop is imported as a SID only if it can be one (issue 10, finding 17).

A leaf that rewrites the VPN next hop (its ``attribute-unchanged next-hop`` removed)
makes hosts see the leaf's link-local address as the SID: one ECMP leg became
``encap seg6 ... segs [ fe80::... ]`` and half the flows were black-holed, with
nothing logged or shown.  Now the host import decision refuses any next hop that is
not a global unicast IPv6 address (or, where the fabric's SID space is given, one
outside it); a refused multipath member is left out of the ECMP set and the others
carry the route; every refusal is counted and listed with its reason in
``show vrf --rejected``.
"""
from __future__ import annotations

import asyncio
import logging

import pytest
from tenancy_fixtures import new_intent

from l3fab.cli.app.tenant_plane import TenantPlane
from l3fab.cli.app.vrf_import import VrfImporter
from l3fab.dataplane.intent import DataplaneSettings
from l3fab.dataplane.model import RemoteRoute
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.table.rib import Destination
from l3fab.speaker.wire import VPNV4, ExtendedCommunities, MpNextHop, Prefix, RouteDistinguisher, VpnPrefix
from l3fab.speaker.wire.extcommunity import route_target

GOOD = "2001:db8:0:2::100"  # another host's SID (our locator is 2001:db8:0:1::/64)
GOOD2 = "2001:db8:0:3::100"
RD = "192.0.2.2:100"


@pytest.fixture
def intent(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("blue", 100)
    return i


def path(nh: str, leaf: str = "leaf1", rt: str = "target:65000:100") -> Path:
    key = VpnPrefix(RouteDistinguisher.parse(RD), Prefix.parse("10.9.0.0/24"))
    return Path(VPNV4, key, MpNextHop(nh), (ExtendedCommunities((route_target(rt),)),), (16,),
                Source(leaf, "fe80::1", 65101))


def dest(best: Path | None, *others: Path) -> Destination:
    """A VPN destination as the Loc-RIB reports it: ``best`` first in the multipath set."""
    paths = tuple(p for p in (best, *others) if p is not None)
    key = paths[0].key if paths else VpnPrefix(RouteDistinguisher.parse(RD), Prefix.parse("10.9.0.0/24"))
    d = Destination(key, paths)
    d.best, d.multipath = best, paths if best is not None else ()
    return d


BAD = [
    ("fe80::1", "next hop fe80::1 is a link-local address, not a SID"),
    ("fe80::1%eth0", "next hop fe80::1 is a link-local address, not a SID"),
    ("::", "next hop :: is the unspecified address, not a SID"),
    ("::1", "next hop ::1 is the loopback address, not a SID"),
    ("::ffff:10.0.0.1", "next hop ::ffff:10.0.0.1 is not an IPv6 SID"),
    ("::10.0.0.1", "next hop ::a00:1 is an IPv4-compatible address, not a SID"),
    ("ff02::1", "next hop ff02::1 is a multicast address, not a SID"),
    ("ff3e:20:2001:db8::1", "next hop ff3e:20:2001:db8::1 is a multicast address, not a SID"),
    ("fec0::1", "next hop fec0::1 is a site-local address, not a SID"),
    ("10.0.0.1", "next hop 10.0.0.1 is not an IPv6 SID"),
]


@pytest.mark.parametrize("next_hop, reason", BAD)
def test_a_next_hop_that_cannot_be_a_sid_is_refused(intent, next_hop, reason):
    d = intent.import_policy().decide(["target:65000:100"], "192.0.2.2:100", next_hop)
    assert (d.vrfs, d.reason, d.sid_refused) == ((), reason, True)


@pytest.mark.parametrize("next_hop", [GOOD, "2a00:1450:4001:82b::200e", "fd00:ab::100"])
def test_a_global_unicast_sid_is_imported(intent, next_hop):
    d = intent.import_policy().decide(["target:65000:100"], "192.0.2.2:100", next_hop)
    assert (d.vrfs, d.reason, d.sid_refused) == (("blue",), "route target", False)


def test_refusals_that_are_not_about_the_sid_say_so(intent):
    d = intent.import_policy().decide(["target:65000:999"], "192.0.2.2:100", GOOD)
    assert not d.accepted and not d.sid_refused


def test_outside_the_fabric_sid_space_is_refused_where_it_is_configured(intent):
    policy = intent.import_policy().with_sid_space(["2001:db8::/48", "198.51.100.0/24"])
    assert policy.decide(["target:65000:100"], RD, GOOD).vrfs == ("blue",)
    d = policy.decide(["target:65000:100"], RD, "2001:db9::100")
    assert (d.vrfs, d.sid_refused) == ((), True)
    assert d.reason == "next hop 2001:db9::100 is outside the fabric's SID space 2001:db8::/48"
    # our own locator is still recognised first
    assert policy.decide(["target:65000:100"], RD, "2001:db8:0:1::dead").reason.endswith("but no local SID")
    # the original policy is unchanged; an empty space (or IPv4 only) refuses nothing more
    assert intent.import_policy().decide(["target:65000:100"], RD, "2001:db9::100").accepted
    assert intent.import_policy().with_sid_space(["198.51.100.0/24"]).decide(
        ["target:65000:100"], RD, "2001:db9::100").accepted


def importer(intent) -> tuple[VrfImporter, int]:
    tables = {t.name: t.table for t in intent.tenants()}
    return VrfImporter(intent.import_policy(), tables), tables["blue"]


@pytest.mark.parametrize("next_hop, reason", BAD)
def test_a_route_whose_only_next_hop_is_refused_is_not_imported_and_shown(intent, next_hop, reason, caplog):
    imp, _table = importer(intent)
    with caplog.at_level(logging.WARNING, logger="l3fab.tenants"):
        assert imp.update([dest(path(next_hop))]) == []
        imp.update([dest(path(next_hop))])  # decided again: counted again, logged once
    assert imp.rejected == {dest(path(next_hop)).key: reason}
    assert imp.sid_refusals == 2 and imp.imported == 0
    assert len([r for r in caplog.records if reason in r.getMessage()]) == 1


@pytest.mark.parametrize("order", ["bad-best", "good-best"])
@pytest.mark.parametrize("bad", ["fe80::1", "::ffff:10.0.0.1", "ff02::1", "::"])
def test_a_refused_multipath_member_is_left_out_of_the_ecmp_set(intent, order, bad):
    imp, table = importer(intent)
    good, worse = path(GOOD, "leaf2"), path(bad, "leaf1")
    d = dest(worse, good) if order == "bad-best" else dest(good, worse)
    assert imp.update([d]) == [RemoteRoute(table, "10.9.0.0/24", (GOOD,))]  # never the bad one
    assert imp.imported == 1 and imp.sid_refusals == 1
    why = imp.rejected[d.key]
    assert "not a SID" in why or "not an IPv6 SID" in why
    assert why.endswith(f"left out of the ECMP set (imported over {GOOD})")
    # the rewriting leaf is fixed: its path now carries the real SID, the note goes
    fixed = dest(path(GOOD2, "leaf1"), good)
    assert imp.update([fixed]) == [RemoteRoute(table, "10.9.0.0/24", (GOOD, GOOD2))]
    assert d.key not in imp.rejected


def test_two_good_members_and_a_bad_one(intent):
    imp, table = importer(intent)
    d = dest(path("fe80::1", "leaf1"), path(GOOD, "leaf2"), path(GOOD2, "leaf3"))
    assert imp.update([d]) == [RemoteRoute(table, "10.9.0.0/24", (GOOD, GOOD2))]


def test_a_withdrawn_route_leaves_the_rejected_list(intent):
    imp, _table = importer(intent)
    imp.update([dest(path("fe80::1"))])
    assert imp.rejected
    imp.update([dest(None)])
    assert imp.rejected == {}


def test_the_tenant_plane_lists_the_refusal_and_installs_only_the_good_sid(intent):
    plane = TenantPlane(intent, DataplaneSettings(enabled=False))  # no dataplane: imports are still decided
    d = dest(path("fe80::1", "leaf1"), path(GOOD, "leaf2"))
    plane.rib_changed(VPNV4, [d])
    (row,) = plane.rejected()
    assert row["route"] == str(d.key)
    assert row["reason"].startswith("next hop fe80::1 is a link-local address, not a SID")
    fib = asyncio.run(plane.fib("blue"))
    assert [(r["prefix"], r["sids"]) for r in fib] == [("10.9.0.0/24", [GOOD])]
