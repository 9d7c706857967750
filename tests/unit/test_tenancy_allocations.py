"""Allocations: SIDs, table ids, RDs and RTs are derived once, persisted, and stay."""
from __future__ import annotations

import pytest

from l3fab.tenancy import IntentError, NodeSettings
from l3fab.tenancy.allocate import route_target, vpn_label

from tenancy_fixtures import new_intent, reload


def _snapshot(intent):
    return ({t.name: (t.table, t.rd, t.route_target) for t in intent.tenants()},
            {e.name: (e.sid4, e.sid6) for e in intent.endpoints()})


def test_first_allocations_are_the_documented_ones(tmp_path):
    i = new_intent(tmp_path)
    t = i.create_tenant("blue", 100)
    assert (t.table, t.rd, t.route_target, t.label) == (1000, "192.0.2.1:100", "target:65000:100", 100)
    e = i.add_endpoint("web0", "blue", "tap0", ipv4="10.0.0.5", ipv6="2001:db8:100::5")
    assert (e.sid4, e.sid6) == ("2001:db8:0:1::100", "2001:db8:0:1::101")
    assert (e.table, e.rd, e.route_target, e.vni) == (1000, "192.0.2.1:100", "target:65000:100", 100)


def test_single_stack_endpoints_get_one_sid(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("blue", 100)
    e4 = i.add_endpoint("v4", "blue", "tap0", ipv4="10.0.0.1")
    e6 = i.add_endpoint("v6", "blue", "tap1", ipv6="2001:db8:100::1")
    assert (e4.sid4, e4.sid6, e4.sids) == ("2001:db8:0:1::100", None, ("2001:db8:0:1::100",))
    assert (e6.sid4, e6.sid6) == (None, "2001:db8:0:1::101")


def test_allocations_survive_a_reload(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("blue", 100)
    i.create_tenant("red", 200, families="ipv4-only")
    i.add_endpoint("web0", "blue", "tap0", ipv4="10.0.0.5", ipv6="2001:db8:100::5")
    i.add_endpoint("db0", "red", "tap1", ipv4="10.0.0.5")
    before = _snapshot(i)
    again = reload(i)
    assert _snapshot(again) == before
    assert again.to_dict() == i.to_dict()
    # and allocation continues where it stopped, not from the start
    e = again.add_endpoint("web1", "blue", "tap2", ipv4="10.0.0.6")
    assert e.sid4 == "2001:db8:0:1::103"
    assert again.create_tenant("green", 300).table == 1002


def test_allocations_stay_across_unrelated_add_and_remove(tmp_path):
    i = new_intent(tmp_path)
    for n, vni in (("a", 10), ("b", 20), ("c", 30)):
        i.create_tenant(n, vni)
    for k in range(6):
        i.add_endpoint(f"e{k}", "abc"[k % 3], f"tap{k}", ipv4=f"10.0.0.{k + 1}", ipv6=f"2001:db8::{k + 1}")
    keep = {e.name: e for e in i.endpoints() if e.name in ("e1", "e4")}
    keep_tenant = i.tenant("c")
    for k in (0, 2, 3, 5):
        i.remove_endpoint(f"e{k}")
    i.delete_tenant("a")
    i.add_endpoint("new", "b", "tap20", ipv4="10.9.9.9")
    i.create_tenant("d", 40)
    i = reload(i)
    assert {e.name: e for e in i.endpoints() if e.name in ("e1", "e4")} == keep
    assert i.tenant("c").table == keep_tenant.table


def test_sid_in_use_is_never_handed_out_again(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("blue", 100)
    live = {}
    for k in range(20):
        e = i.add_endpoint(f"e{k}", "blue", f"tap{k}", ipv4=f"10.0.0.{k + 1}", ipv6=f"2001:db8::{k + 1}")
        live[e.name] = e.sids
        if k % 3 == 0:  # churn: remove an older one now and then
            victim = sorted(live)[0]
            i.remove_endpoint(victim)
            del live[victim]
        all_sids = [s for sids in live.values() for s in sids]
        assert len(all_sids) == len(set(all_sids))
    # a freed SID is not reused while fresh ones remain
    i.add_endpoint("late", "blue", "tap40", ipv4="10.1.0.1")
    assert i.endpoint("late").sid4 == "2001:db8:0:1::128"  # 0x100 + 40 SIDs handed out before


class _EightSids(NodeSettings):
    """A node whose locator holds only 8 SIDs (0x100-0x107), to reach the end of the space."""

    @property
    def max_sid_index(self) -> int:
        return 0x107


def test_sid_space_wraps_to_the_lowest_free_index_never_to_one_in_use(tmp_path):
    i = new_intent(tmp_path, node=_EightSids("192.0.2.1", 65000, "2001:db8:0:1::/64"))
    i.create_tenant("blue", 100)
    for k in range(8):
        i.add_endpoint(f"e{k}", "blue", f"tap{k}", ipv4=f"10.0.0.{k + 1}")
    with pytest.raises(IntentError, match=r"^locator: '256-263' has no free SID left$"):
        i.add_endpoint("full", "blue", "tap9", ipv4="10.0.9.1")
    i.remove_endpoint("e5")
    i.remove_endpoint("e2")
    assert i.add_endpoint("w1", "blue", "tap10", ipv4="10.0.9.2").sid4 == "2001:db8:0:1::102"
    assert i.add_endpoint("w2", "blue", "tap11", ipv4="10.0.9.3").sid4 == "2001:db8:0:1::105"
    sids = [e.sid4 for e in i.endpoints()]
    assert len(sids) == len(set(sids)) == 8


def test_table_ids_come_from_the_configured_range_and_wrap(tmp_path):
    node = NodeSettings("192.0.2.1", 65000, "2001:db8:0:1::/64", table_range=(5000, 5002))
    i = new_intent(tmp_path, node=node)
    assert [i.create_tenant(n, v).table for n, v in (("a", 1), ("b", 2), ("c", 3))] == [5000, 5001, 5002]
    with pytest.raises(IntentError, match=r"^table-range: '5000-5002' has no free table id left$"):
        i.create_tenant("d", 4)
    i.delete_tenant("b")
    assert i.create_tenant("d", 4).table == 5001
    assert reload(i).tenant("d").table == 5001


def test_freed_table_is_not_reused_while_the_range_has_fresh_ones(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("a", 1)
    i.delete_tenant("a")
    assert i.create_tenant("b", 2).table == 1001


def test_rd_uses_the_vni_and_falls_back_when_it_does_not_fit_16_bits(tmp_path):
    i = new_intent(tmp_path)
    big = i.create_tenant("big", 70000)
    assert big.rd == "192.0.2.1:65535"
    # a later tenant whose VNI is that number gets the next free one; RDs stay unique
    clash = i.create_tenant("clash", 65535)
    assert clash.rd == "192.0.2.1:65534"
    assert reload(i).tenant("big").rd == "192.0.2.1:65535"


@pytest.mark.parametrize("asn, vni, text, ext_type", [
    (65000, 100, "target:65000:100", 0x00),
    (65000, 16777215, "target:65000:16777215", 0x00),
    (4200000000, 100, "target:4200000000:100", 0x02),  # 4-octet-AS form, RFC 5668
    (4200000000, 70000, f"target:{4200000000 & 0xFFFF}:70000", 0x00),  # RFC 8365 5.1.2.1 style
])
def test_route_target_forms(asn, vni, text, ext_type):
    rt = route_target(asn, vni)
    assert (str(rt), rt.type) == (text, ext_type)


def test_label_is_the_vni_where_it_fits_20_bits():
    assert vpn_label(100) == 100
    assert vpn_label(1048575) == 1048575
    assert vpn_label(1048576) == 0
    assert vpn_label(16777215) == 0


def test_router_id_change_moves_rds_and_locator_change_moves_sids_keeping_indices(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("blue", 100)
    i.add_endpoint("web0", "blue", "tap0", ipv4="10.0.0.5")
    moved = NodeSettings("192.0.2.9", 65000, "2001:db8:0:9::/64")
    j = reload(i)
    j.node = moved
    assert (j.endpoint("web0").sid4, j.tenant("blue").rd) == ("2001:db8:0:9::100", "192.0.2.9:100")
