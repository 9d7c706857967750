"""Endpoint churn leaves nothing behind in the VRF importer (issue 10, finding 20).

Each endpoint add/remove on a host puts a VPN route with a fresh SID as next hop
into the Loc-RIB and takes it out again. The importer cached one import decision
per (route targets, RD, next hop) and kept it after the route was withdrawn: ~20 kB
of daemon memory per cycle, up to 100,000 entries before the cache was cleared.
Decisions are now held by the destinations that use them and go with the last one.
"""
from __future__ import annotations

import pytest
from tenancy_fixtures import new_intent

from l3fab.cli.app.vrf_import import VrfImporter
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.table.rib import Destination
from l3fab.speaker.wire import VPNV4, ExtendedCommunities, MpNextHop, Prefix, RouteDistinguisher, VpnPrefix
from l3fab.speaker.wire.extcommunity import route_target

CYCLES = 300
RD = RouteDistinguisher.parse("192.0.2.2:100")


@pytest.fixture
def importer(tmp_path) -> VrfImporter:
    intent = new_intent(tmp_path)
    intent.create_tenant("blue", 100)
    tables = {t.name: t.table for t in intent.tenants()}
    return VrfImporter(intent.import_policy(), tables)


def dest(prefix: str, sid: str | None) -> Destination:
    key = VpnPrefix(RD, Prefix.parse(prefix))
    paths = () if sid is None else (
        Path(VPNV4, key, MpNextHop(sid), (ExtendedCommunities((route_target("target:65000:100"),)),), (16,),
             Source("leaf1", "fe80::1", 65101)),)
    d = Destination(key, paths)
    d.best, d.multipath = (paths[0], paths) if paths else (None, ())
    return d


@pytest.mark.parametrize("sid_base", ["2001:db8:0:2::", "2001:db8:0:1::"],
                         ids=["remote-sid-imported", "own-locator-refused"])
def test_add_remove_cycles_leave_no_import_decisions(importer, sid_base):
    steady = dest("10.9.9.0/24", "2001:db8:0:7::1")  # a route that stays: its decision stays
    importer.update([steady])
    for i in range(1, CYCLES + 1):  # a new SID each time, as each endpoint add allocates
        importer.update([dest("10.9.0.1/32", f"{sid_base}{i:x}")])
        importer.update([dest("10.9.0.1/32", None)])
    assert len(importer._decisions) == 1 and len(importer._refs) == 1, len(importer._decisions)
    assert set(importer._uses) == {steady.key}
    importer.update([dest("10.9.9.0/24", None)])
    assert not importer._decisions and not importer._refs and not importer._uses
    assert not importer.rejected and not importer._placed


def test_a_decision_shared_by_two_destinations_stays_until_both_go(importer):
    sid = "2001:db8:0:2::5"
    importer.update([dest("10.9.0.1/32", sid), dest("10.9.0.2/32", sid)])
    assert len(importer._decisions) == 1
    importer.update([dest("10.9.0.1/32", None)])
    assert len(importer._decisions) == 1
    importer.update([dest("10.9.0.2/32", sid)])  # re-decided in place: still held once
    assert importer._refs and list(importer._refs.values()) == [1]
    importer.update([dest("10.9.0.2/32", None)])
    assert not importer._decisions and not importer._refs
