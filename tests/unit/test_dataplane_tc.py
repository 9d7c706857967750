"""dataplane.tc without a kernel: planning from captured ``tc -j``/``ip -j`` output,
execution with a recording runner, counters."""
from __future__ import annotations

import copy
import json
import subprocess

import pytest

from l3fab.dataplane import tc
from l3fab.dataplane.model import PortSpec

RATE = 8_000_000
IFB = tc.ifb_name("vm-e")

# Captured from this kernel (iproute2 6.1) after tc.apply() limited vm-e to 8 Mbit/s (ifb mode).
LINKS = json.loads("""[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"]},
 {"ifindex":3,"link":"vb","ifname":"vm-e","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"qdisc":"tbf"},
 {"ifindex":7,"ifname":"l3r32edb717","flags":["BROADCAST","NOARP","UP","LOWER_UP"],"qdisc":"tbf",
  "ifalias":"l3fab-rate:vm-e"}]""")
QDISCS = json.loads("""[
 {"kind":"noqueue","handle":"0:","dev":"lo","root":true,"refcnt":2,"options":{}},
 {"kind":"tbf","handle":"1a3f:","dev":"vm-e","root":true,"refcnt":3,
  "options":{"rate":1000000,"burst":65536,"lat":50000},"bytes":3000,"drops":4,"overlimits":5},
 {"kind":"ingress","handle":"ffff:","dev":"vm-e","parent":"ffff:fff1","options":{}},
 {"kind":"tbf","handle":"1a3f:","dev":"l3r32edb717","root":true,"refcnt":2,
  "options":{"rate":1000000,"burst":65536,"lat":50000},"bytes":700,"drops":1,"overlimits":2}]""")
FILTERS = json.loads("""[
 {"protocol":"all","pref":6719,"kind":"u32","chain":0},
 {"protocol":"all","pref":6719,"kind":"u32","chain":0,"options":{"fh":"800:","ht_divisor":1}},
 {"protocol":"all","pref":6719,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,
  "key_ht":"800","bkt":"0","not_in_hw":true,"match":{"value":"0","mask":"0","offmask":"","off":0},
  "actions":[{"order":1,"kind":"mirred","mirred_action":"redirect","direction":"egress",
   "to_dev":"l3r32edb717","control_action":{"type":"stolen"},"index":1,"ref":1,"bind":1,
   "cookie":"6c336662720000000000000000000000"}]}}]""")
# act_police is missing here: its entry follows iproute2's generic action printing (kind, cookie, stats).
POLICE_ACTION = {"order": 1, "kind": "police", "index": 1, "control_action": {"type": "drop"},
                 "ref": 1, "bind": 1, "cookie": tc.cookie("p", RATE),
                 "stats": {"bytes": 900, "packets": 9, "drops": 3, "overlimits": 3}}


def port(rate=RATE, name="e1", ifname="vm-e") -> PortSpec:
    return PortSpec(name=name, tenant="a", ifname=ifname, table=100, rate_limit=rate)


def limited_snapshot(mode=tc.INGRESS_IFB) -> tc.Snapshot:
    snap = tc.Snapshot(links={link["ifname"]: copy.deepcopy(link) for link in LINKS}, ifbs={IFB})
    snap.add_qdiscs(copy.deepcopy(QDISCS))
    snap.filters["vm-e"] = copy.deepcopy(FILTERS)
    if mode == tc.INGRESS_POLICE:
        snap.filters["vm-e"][2]["options"]["actions"] = [dict(POLICE_ACTION)]
        del snap.links[IFB], snap.root[IFB]
        snap.ifbs.clear()
    return snap


def bare_snapshot(*ifnames: str) -> tc.Snapshot:
    snap = tc.Snapshot(links={n: {"ifname": n, "flags": ["UP"]} for n in ("lo", *ifnames)})
    snap.add_qdiscs({"kind": "noqueue", "handle": "0:", "dev": n, "root": True, "options": {}}
                    for n in ("lo", *ifnames))
    return snap


def argvs(plan: tc.Plan) -> list[tuple[str, ...]]:
    return [s.argv for s in plan.steps]


def test_captured_fixture_matches_what_tc_module_writes():
    assert IFB == "l3r32edb717"
    assert FILTERS[2]["options"]["actions"][0]["cookie"] == tc.cookie("r")
    assert tc.burst_for(RATE) == 65536


def test_in_sync_plans_nothing_in_either_mode():
    for mode in (tc.INGRESS_IFB, tc.INGRESS_POLICE):
        plan = tc.diff([port()], limited_snapshot(mode), mode)
        assert plan.steps == () and plan.errors == (), mode


def test_fresh_interface_ifb_mode_builds_everything_in_order():
    plan = tc.diff([port()], bare_snapshot("vm-e"), tc.INGRESS_IFB)
    assert plan.errors == ()
    assert argvs(plan) == [
        ("tc", "qdisc", "replace", "dev", "vm-e", "root", "handle", "1a3f:", "tbf", "rate", "8000000bit",
         "burst", "65536", "latency", "50000us"),
        ("ip", "link", "add", IFB, "type", "ifb"),
        ("ip", "link", "set", "dev", IFB, "alias", "l3fab-rate:vm-e", "up"),
        ("tc", "qdisc", "replace", "dev", IFB, "root", "handle", "1a3f:", "tbf", "rate", "8000000bit",
         "burst", "65536", "latency", "50000us"),
        ("tc", "qdisc", "add", "dev", "vm-e", "ingress"),
        ("tc", "filter", "add", "dev", "vm-e", "ingress", "protocol", "all", "pref", "6719", "u32",
         "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", IFB,
         "cookie", tc.cookie("r")),
    ]
    assert plan.ingress == "ifb" and "no act_police" in plan.notes[0]


def test_fresh_interface_police_mode_polices_with_big_mtu_and_cookie():
    plan = tc.diff([port(100_000_000)], bare_snapshot("vm-e"), tc.INGRESS_POLICE)
    last = argvs(plan)[-1]
    assert last[:16] == ("tc", "filter", "add", "dev", "vm-e", "ingress", "protocol", "all", "pref", "6719",
                         "u32", "match", "u32", "0", "0", "action")
    assert last[16:] == ("police", "rate", "100000000bit", "burst", "125000", "mtu", "65535",
                         "conform-exceed", "drop/ok", "cookie", tc.cookie("p", 100_000_000))
    assert not any(a[:2] == ("ip", "link") for a in argvs(plan))  # no ifb with a policer


def test_rate_change_ifb_mode_touches_only_the_two_tbfs():
    plan = tc.diff([port(20_000_000)], limited_snapshot(), tc.INGRESS_IFB)
    assert [(a[3], a[4]) for a in argvs(plan)] == [("dev", "vm-e"), ("dev", IFB)]
    assert all(a[:3] == ("tc", "qdisc", "replace") and "20000000bit" in a for a in argvs(plan))


def test_rate_change_police_mode_replaces_the_filter():
    plan = tc.diff([port(20_000_000)], limited_snapshot(tc.INGRESS_POLICE), tc.INGRESS_POLICE)
    whats = [s.what for s in plan.steps]
    assert whats == ["limit egress to 20000000 bit/s", "replace ingress filter", "police ingress at 20000000 bit/s"]
    assert argvs(plan)[1] == ("tc", "filter", "del", "dev", "vm-e", "ingress", "pref", "6719")


def test_rounded_burst_and_latency_still_match():
    """tc prints burst and latency back rounded (e.g. 124987 for 125000): no churn."""
    snap = limited_snapshot()
    snap.root["vm-e"]["options"].update(rate=12_500_000, burst=124_987, lat=50_001)
    snap.root[IFB]["options"].update(rate=12_500_000, burst=125_000, lat=49_600)
    assert tc.diff([port(100_000_000)], snap, tc.INGRESS_IFB).steps == ()


def test_no_limit_removes_only_l3fab_objects():
    plan = tc.diff([port(None)], limited_snapshot(), tc.INGRESS_IFB)
    assert argvs(plan) == [("tc", "qdisc", "del", "dev", "vm-e", "root"),
                           ("tc", "qdisc", "del", "dev", "vm-e", "ingress"),
                           ("ip", "link", "del", "dev", IFB)]
    assert plan.errors == () and plan.notes == ()


def test_no_limit_with_foreign_filters_removes_only_our_pref():
    snap = limited_snapshot()
    snap.filters["vm-e"].append({"protocol": "ip", "pref": 10, "kind": "u32", "chain": 0})
    plan = tc.diff([port(None)], snap, tc.INGRESS_IFB)
    assert ("tc", "filter", "del", "dev", "vm-e", "ingress", "pref", "6719") in argvs(plan)
    assert ("tc", "qdisc", "del", "dev", "vm-e", "ingress") not in argvs(plan)


def test_no_limit_leaves_foreign_qdiscs_alone_silently():
    snap = bare_snapshot("vm-e")
    snap.root["vm-e"] = {"kind": "htb", "handle": "1:", "dev": "vm-e", "root": True, "options": {}}
    snap.ingress["vm-e"] = {"kind": "ingress", "handle": "ffff:", "dev": "vm-e", "parent": "ffff:fff1"}
    plan = tc.diff([port(None)], snap, tc.INGRESS_IFB)
    assert plan.steps == () and plan.errors == ()


def test_foreign_root_qdisc_is_an_error_naming_endpoint_and_interface():
    snap = bare_snapshot("vm-e")
    snap.root["vm-e"] = {"kind": "htb", "handle": "1:", "dev": "vm-e", "root": True, "options": {}}
    plan = tc.diff([port()], snap, tc.INGRESS_IFB)
    assert plan.errors == ("endpoint e1 (interface vm-e): foreign root qdisc htb 1: present, not replacing "
                           "it; egress not limited",)
    assert all("root" not in a or a[4] != "vm-e" for a in argvs(plan))
    assert argvs(plan)[-1][:3] == ("tc", "filter", "add")  # ingress is independent and still limited


@pytest.mark.parametrize("foreign", ["clsact", "filter"])
def test_foreign_ingress_is_an_error_and_keeps_our_ifb(foreign):
    snap = limited_snapshot()
    if foreign == "clsact":
        snap.ingress["vm-e"]["kind"] = "clsact"
    else:
        snap.filters["vm-e"].append({"protocol": "all", "pref": 1, "kind": "u32", "chain": 0,
                                     "options": {"actions": [{"kind": "mirred"}]}})
    plan = tc.diff([port(20_000_000)], snap, tc.INGRESS_IFB)
    assert len(plan.errors) == 1
    assert plan.errors[0].startswith("endpoint e1 (interface vm-e): foreign ") and "\n" not in plan.errors[0]
    assert argvs(plan) == [("tc", "qdisc", "replace", "dev", "vm-e", *tc.tbf_args(20_000_000))]


def test_filter_at_our_pref_without_our_cookie_is_foreign():
    snap = limited_snapshot()
    snap.filters["vm-e"][2]["options"]["actions"][0]["cookie"] = "abcd"
    plan = tc.diff([port()], snap, tc.INGRESS_IFB)
    assert "foreign ingress qdisc or filters" in plan.errors[0]


def test_another_kind_under_our_handle_or_on_our_ifb_is_deleted_first():
    snap = limited_snapshot()
    snap.root["vm-e"] = {"kind": "htb", "handle": "1a3f:", "dev": "vm-e", "root": True, "options": {}}
    snap.root[IFB] = {"kind": "pfifo", "handle": "8001:", "dev": IFB, "root": True, "options": {}}
    plan = tc.diff([port()], snap, tc.INGRESS_IFB)
    assert argvs(plan) == [("tc", "qdisc", "del", "dev", "vm-e", "root"),
                           ("tc", "qdisc", "replace", "dev", "vm-e", *tc.tbf_args(RATE)),
                           ("tc", "qdisc", "del", "dev", IFB, "root"),
                           ("tc", "qdisc", "replace", "dev", IFB, *tc.tbf_args(RATE))]


def test_default_root_qdiscs_are_free_to_replace():
    for kind in ("noqueue", "pfifo_fast", "mq", "fq_codel"):
        snap = bare_snapshot("vm-e")
        snap.root["vm-e"]["kind"] = kind
        plan = tc.diff([port()], snap, tc.INGRESS_IFB)
        assert plan.errors == () and argvs(plan)[0][:3] == ("tc", "qdisc", "replace"), kind


def test_missing_interface_waits_instead_of_failing():
    plan = tc.diff([port(), port(None, "e2", "vm-gone")], bare_snapshot(), tc.INGRESS_IFB)
    assert plan.steps == () and plan.errors == ()
    assert plan.waiting == ("endpoint e1 (interface vm-e): interface does not exist (yet)",)


@pytest.mark.parametrize("rate, text", [
    (100, "rate_limit 100 bit/s is below the minimum 8000 bit/s tc can time"),
    ("8mbit", "rate_limit '8mbit' is not a number of bit/s"),
    (True, "rate_limit True is not a number of bit/s"),
])
def test_bad_rate_is_one_line_and_keeps_current_state(rate, text):
    plan = tc.diff([port(rate)], limited_snapshot(), tc.INGRESS_IFB)
    assert plan.steps == ()  # our ifb is not deleted as an orphan either
    assert plan.errors == (f"endpoint e1 (interface vm-e): {text}; its current limits are kept",)


def test_interface_used_twice_is_an_error_for_the_second_port():
    plan = tc.diff([port(), port(name="e2")], bare_snapshot("vm-e"), tc.INGRESS_POLICE)
    assert plan.errors == ("endpoint e2 (interface vm-e): interface also belongs to endpoint e1; "
                           "its limit is ignored",)
    assert {s.endpoint for s in plan.steps} == {"e1"}


def test_orphan_ifb_is_deleted_and_lookalikes_are_not():
    snap = limited_snapshot()
    lookalike = "l3r00000000"
    snap.links[lookalike] = {"ifname": lookalike, "flags": ["UP"]}  # an ifb without our alias
    snap.ifbs.add(lookalike)
    plan = tc.diff([], snap, tc.INGRESS_IFB)
    assert argvs(plan) == [("ip", "link", "del", "dev", IFB)]
    assert str(plan.steps[0]) == f"endpoint - (interface vm-e): delete unused ifb {IFB}"


def test_name_clash_with_a_foreign_device_is_an_error():
    snap = bare_snapshot("vm-e", IFB)  # a veth that happens to carry the ifb's name
    plan = tc.diff([port()], snap, tc.INGRESS_IFB)
    assert plan.errors == (f"endpoint e1 (interface vm-e): device {IFB} exists and is not l3fab's ifb; "
                           "ingress not limited",)
    assert not any("ingress" in a for a in argvs(plan))


def test_previous_ports_are_cleaned_when_they_disappear():
    plan = tc.diff([], limited_snapshot(), tc.INGRESS_IFB, previous=[port()])
    assert [s.what for s in plan.steps] == ["remove egress limit", "remove ingress limit",
                                            f"delete unused ifb {IFB}"]
    assert {s.endpoint for s in plan.steps} == {"e1"}


def test_mode_change_from_ifb_to_police_replaces_filter_and_drops_ifb():
    plan = tc.diff([port()], limited_snapshot(tc.INGRESS_IFB), tc.INGRESS_POLICE)
    assert [s.what for s in plan.steps] == ["replace ingress filter", "police ingress at 8000000 bit/s",
                                            f"delete unused ifb {IFB}"]


def test_no_ingress_mechanism_says_so_and_removes_stale_ingress():
    plan = tc.diff([port()], limited_snapshot(), tc.INGRESS_NONE)
    assert plan.notes and "not limited" in plan.notes[0]
    assert [s.what for s in plan.steps] == ["remove ingress limit", f"delete unused ifb {IFB}"]


def test_cookie_is_sixteen_bytes_and_recognised():
    for kind, rate in (("p", 10**11), ("r", 0)):
        value = tc.cookie(kind, rate)
        assert len(bytes.fromhex(value)) == 16 and tc.ours_cookie(value)
    assert not tc.ours_cookie("deadbeef") and not tc.ours_cookie(None)
    assert tc.cookie("p", RATE) != tc.cookie("p", RATE + 1)


def test_ifb_names_fit_ifnamsiz():
    assert len(tc.ifb_name("a-very-long-nam")) <= 15
    assert tc.ifb_name("vm-a") != tc.ifb_name("vm-b")


def test_burst_floor_and_growth():
    assert tc.burst_for(tc.MIN_RATE) == 65536
    assert tc.burst_for(10**10) == 12_500_000


# ------------------------------------------------------------------ execution


class Recorder:
    def __init__(self, fail_on: str | None = None, reads: dict | None = None):
        self.calls: list[tuple[str, ...]] = []
        self.fail_on = fail_on
        self.reads = reads or {}

    def __call__(self, argv, netns=None):
        argv = tuple(argv)
        self.calls.append(argv)
        for key, out in self.reads.items():
            if " ".join(argv).startswith(key):
                return subprocess.CompletedProcess(argv, 0, json.dumps(out), "")
        if self.fail_on and self.fail_on in argv:
            return subprocess.CompletedProcess(argv, 2, "", "Error: Specified qdisc kind is unknown.\n")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_failed_step_skips_rest_of_that_port_only():
    plan = tc.diff([port(), port(name="e2", ifname="vm-f")], bare_snapshot("vm-e", "vm-f"), tc.INGRESS_IFB)
    run = Recorder(fail_on="vm-e")
    result = tc.execute(plan, None, run)
    assert result.errors == ("endpoint e1 (interface vm-e): limit egress to 8000000 bit/s failed: "
                             "Specified qdisc kind is unknown.",)
    assert {s.endpoint for s in result.actions} == {"e2"}
    assert not any("vm-e" in c and c[:3] != ("tc", "qdisc", "replace") for c in run.calls)


def test_apply_reads_state_then_runs_nothing_when_in_sync():
    from l3fab.dataplane.features import Features

    snap = limited_snapshot()
    reads = {"ip -j link show type ifb": [snap.links[IFB]], "ip -j link show": LINKS,
             "tc -j qdisc show": QDISCS, "tc -j filter show dev vm-e ingress": FILTERS}
    run = Recorder(reads=reads)
    result = tc.apply([port()], features=Features(tc_ifb_redirect=True), run=run)
    assert result.actions == () and result.errors == ()
    assert all(c[1] == "-j" for c in run.calls)  # reads only


def test_apply_reports_unreadable_state_as_one_error():
    def broken(argv, netns=None):
        return subprocess.CompletedProcess(argv, 1, "", "Cannot open netlink socket: Permission denied\n")

    from l3fab.dataplane.features import Features

    result = tc.apply([port()], features=Features(), run=broken)
    assert result.errors == ("reading tc state: ip -j link show: Cannot open netlink socket: Permission denied",)


def test_stats_per_endpoint_in_both_modes():
    ifb = tc.port_stats(port(), limited_snapshot())
    assert ifb == {"interface": "vm-e", "rate_limit": RATE, "sent_bytes": 3700, "dropped": 5, "overlimits": 7,
                   "egress": {"sent_bytes": 3000, "dropped": 4, "overlimits": 5},
                   "ingress": {"sent_bytes": 700, "dropped": 1, "overlimits": 2, "mode": "ifb", "ifb": IFB}}
    police = tc.port_stats(port(), limited_snapshot(tc.INGRESS_POLICE))
    assert police["ingress"] == {"sent_bytes": 900, "dropped": 3, "overlimits": 3, "mode": "police"}
    assert police["sent_bytes"] == 3900
    unlimited = tc.port_stats(port(None), bare_snapshot("vm-e"))
    assert unlimited["egress"] is None and unlimited["ingress"] is None and unlimited["sent_bytes"] == 0
