"""seg6local next hops without a kernel: validation, the exact netlink bytes, dump round trips."""

from __future__ import annotations

import socket
import struct

import pytest

from l3fab.fib import netlink as nl
from l3fab.fib.model import (FibNextHop, FibRoute, Seg6Encap, Seg6Local, Seg6LocalAction,
                       seg6local_route, unicast)
from l3fab.fib.reconcile import diff

IFINDEX = {"vm0": 3, "ub": 2}.__getitem__
SID = "2001:db8:b::100"

# RTA_ENCAP payloads as kernel 6.18 dumped them for routes made with
# `ip -6 route add <sid>/128 encap seg6local action ... dev vm0`.
KERNEL_DX4 = bytes.fromhex("080001000600000008000400a9fe0909")                 # nh4 169.254.9.9
# nh6 fe80::9:
KERNEL_DX6 = bytes.fromhex("080001000500000014000500fe800000000000000000000000000009")
KERNEL_DT6 = bytes.fromhex("08000100070000000800030064000000")                 # table 100
# ... and with `count`: SEG6_LOCAL_COUNTERS (nested; packets, bytes, errors as u64) appended.
KERNEL_DX4_COUNT = KERNEL_DX4 + bytes.fromhex(
    "28000a800c00020000000000000000000c00030000000000000000000c0004000000000000000000")


def encode(route: FibRoute) -> nl.Prepared:
    return nl.Encoder(IFINDEX).prepare(route)


def kernel_dump(prefix: str, payload: bytes, oif: int = 3, table: int = 254,
                metric: int = 1024, etype: int = nl.LWTUNNEL_ENCAP_SEG6_LOCAL) -> bytes:
    """An RTM_NEWROUTE laid out as the kernel dumps an IPv6 route (its attribute order)."""
    net, _, plen = prefix.partition("/")
    attrs = (nl.rtattr(nl.RTA_TABLE, nl.U32.pack(table))
             + nl.rtattr(nl.RTA_DST, socket.inet_pton(socket.AF_INET6, net))
             + nl.rtattr(nl.RTA_PRIORITY, nl.U32.pack(metric))
             + nl.rtattr(nl.RTA_OIF, nl.U32.pack(oif))
             + nl.rtattr(nl.RTA_ENCAP, payload)
             + nl.rtattr(nl.RTA_ENCAP_TYPE, struct.pack("=H", etype)))
    body = nl.RTMSG.pack(socket.AF_INET6, int(plen), 0, 0, table, nl.RTPROT_L3FAB,
                         nl.RT_SCOPE_UNIVERSE, 1, 0) + attrs
    return nl.NLMSGHDR.pack(16 + len(body), nl.RTM_NEWROUTE, nl.NLM_F_MULTI, 1, 0) + body


def parse(buf: bytes) -> tuple:
    key, sig, _protocol = nl.parse_route(buf, 0, len(buf))
    return key, sig


DX4 = seg6local_route(254, SID, action="End.DX4", nh4="169.254.9.9", ifname="vm0")
DX6 = seg6local_route(254, SID, action="End.DX6", nh6="fe80::9", ifname="vm0")
DT6 = seg6local_route(254, SID, action="End.DT6", table_id=100, ifname="vm0")


# -- the model ---------------------------------------------------------------------------

def test_seg6local_route_is_a_sid_device_route():
    assert DX4.prefix == f"{SID}/128" and DX4.table == 254 and DX4.metric == 1024
    (nh,) = DX4.nexthops
    assert (nh.gateway, nh.ifname, nh.encap) == (None, "vm0", None)
    assert nh.local == Seg6Local(Seg6LocalAction.END_DX4, nh4="169.254.9.9")
    assert str(nh.local) == "seg6local action End.DX4 nh4 169.254.9.9"
    assert seg6local_route(5, "2001:db8::/64", action="End.DT6", table_id=7,
                           ifindex=9).prefix == "2001:db8::/64"


@pytest.mark.parametrize("action", ["End.DX6", "end.dx6", 5, Seg6LocalAction.END_DX6])
def test_action_by_name_number_or_enum(action):
    local = Seg6Local(action, nh6="2001:DB8::0:9")
    assert local.action is Seg6LocalAction.END_DX6 and local.action.label == "End.DX6"
    assert local.nh6 == "2001:db8::9"


@pytest.mark.parametrize("kwargs, message", [
    (dict(action="End.X", nh6="fe80::1"), r"Seg6Local.action: 'End.X' is not one of End.DX4"),
    (dict(action=1), r"Seg6Local.action: 1 is not one of"),
    (dict(action="End.DX4"), r"Seg6Local.nh4: End.DX4 needs nh4"),
    (dict(action="End.DX6"), r"Seg6Local.nh6: End.DX6 needs nh6"),
    (dict(action="End.DT6"), r"Seg6Local.table: End.DT6 needs table"),
    (dict(action="End.DX4", nh4="2001:db8::1"), r"Seg6Local.nh4: '2001:db8::1' is not an IPv4"),
    (dict(action="End.DX6", nh6="10.0.0.1"), r"Seg6Local.nh6: '10.0.0.1' is not an IPv6"),
    (dict(action="End.DX4", nh4="10.0.0.1", table=5), r"Seg6Local.table: End.DX4 takes no table"),
    (dict(action="End.DT6", table=100, nh6="fe80::1"), r"Seg6Local.nh6: End.DT6 takes no nh6"),
    (dict(action="End.DT6", table=0), r"Seg6Local.table: 0 is not a table id"),
    (dict(action="End.DT6", table=2**32), r"Seg6Local.table: 4294967296 is not a table id"),
    (dict(action="End.DT6", table="100"), r"Seg6Local.table: '100' is not a table id"),
])
def test_bad_seg6local_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        Seg6Local(**kwargs)
    assert "\n" not in str(info.value)


def test_next_hop_and_route_refuse_what_the_kernel_would():
    local = Seg6Local("End.DX4", nh4="169.254.9.9")
    with pytest.raises(ValueError, match="FibNextHop.local: .*needs ifname or ifindex"):
        FibNextHop(local=local, gateway="10.0.0.1")
    with pytest.raises(ValueError, match="FibNextHop.local: .*not both"):
        FibNextHop(ifname="vm0", local=local, encap=Seg6Encap(("fc00::1",)))
    with pytest.raises(ValueError, match="FibNextHop.local: .* is not a Seg6Local"):
        FibNextHop(ifname="vm0", local="End.DX4")
    with pytest.raises(ValueError, match="10.1.0.5/32: seg6local next hops need an IPv6"):
        FibRoute(254, "10.1.0.5/32", (FibNextHop(ifname="vm0", local=local),))
    with pytest.raises(ValueError, match="sid_prefix: '10.1.0.5' is not an IPv6 SID"):
        seg6local_route(254, "10.1.0.5", action="End.DX4", nh4="169.254.9.9", ifname="vm0")


def test_equal_meaning_is_equal_and_hashes_alike():
    one = seg6local_route(254, "2001:DB8:B::100", action="end.dx4", nh4="169.254.9.9",
                          ifname="vm0")
    assert one == DX4 and hash(one) == hash(DX4) and hash(one.nexthops[0]) == hash(DX4.nexthops[0])
    other = seg6local_route(254, SID, action="End.DX4", nh4="169.254.9.10", ifname="vm0")
    assert other != DX4 and len({DX4.nexthops[0], other.nexthops[0]}) == 2


# -- encoding --------------------------------------------------------------------------

@pytest.mark.parametrize("route, kernel_payload", [(DX4, KERNEL_DX4), (DX6, KERNEL_DX6),
                                                   (DT6, KERNEL_DT6)], ids=["DX4", "DX6", "DT6"])
def test_encoding_is_byte_for_byte_what_the_kernel_dumps(route, kernel_payload):
    prepared = encode(route)
    assert nl.seg6local_payload(route.nexthops[0].local) == kernel_payload
    assert nl.rtattr(nl.RTA_ENCAP, kernel_payload) in prepared.body
    assert nl.rtattr(nl.RTA_ENCAP_TYPE, struct.pack("=H", 7)) in prepared.body
    assert nl.rtattr(nl.RTA_OIF, nl.U32.pack(3)) in prepared.body
    rtm_scope, rtm_type = prepared.body[6], prepared.body[7]
    assert (rtm_scope, rtm_type) == (nl.RT_SCOPE_UNIVERSE, 1)  # as `ip -6 route add` sends it
    # the kernel's own dump of the same route compares equal: nothing to replace
    key, sig = parse(kernel_dump(route.prefix, kernel_payload))
    assert key == prepared.key and sig == prepared.sig
    assert not diff({key[:4]: (key[4], prepared.sig)}, {key[:4]: {key[4]: sig}}, prune=True)


def test_ipv4_device_routes_keep_scope_link():
    device_route = encode(unicast(254, "169.254.9.9/32", FibNextHop(ifname="vm0")))
    assert device_route.body[6] == nl.RT_SCOPE_LINK


def test_counters_in_the_dump_do_not_count_as_a_difference():
    plain = parse(kernel_dump(DX4.prefix, KERNEL_DX4))
    counted = parse(kernel_dump(DX4.prefix, KERNEL_DX4_COUNT))
    assert counted == plain == (encode(DX4).key, encode(DX4).sig)
    assert nl.to_route(*counted).nexthops[0].local == DX4.nexthops[0].local


def test_an_unmodelled_attribute_is_a_difference_and_named_on_read_back():
    oif = nl.rtattr(7, nl.U32.pack(3))  # SEG6_LOCAL_OIF, which l3fab never sets
    key, sig = parse(kernel_dump(DX4.prefix, KERNEL_DX4 + oif))
    assert not nl.sig_matches(encode(DX4).sig, sig)  # so reconcile replaces it
    with pytest.raises(ValueError, match=r"2001:db8:b::100/128 table 254: .*attributes \[7\]"):
        nl.to_route(key, sig)


def test_an_action_l3fab_does_not_model_is_named_on_read_back():
    end = nl.rtattr(nl.SEG6_LOCAL_ACTION, nl.U32.pack(1))  # End
    key, sig = parse(kernel_dump(DX4.prefix, end))
    with pytest.raises(ValueError, match="seg6local action 1 is not one l3fab models"):
        nl.to_route(key, sig)


@pytest.mark.parametrize("route", [
    DX4, DX6, DT6,
    seg6local_route(70000, SID, action="End.DX4", nh4="0.0.0.0", ifname="ub", metric=7),
    FibRoute(254, f"{SID}/128", (
        FibNextHop(ifname="vm0", local=Seg6Local("End.DX6", nh6="fd00:9::1")),
        FibNextHop(ifname="ub", local=Seg6Local("End.DX6", nh6="fd00:9::2"), weight=2))),
], ids=["DX4", "DX6", "DT6", "table70000", "ecmp"])
def test_our_encoding_parses_back_to_the_same_route(route):
    prepared = encode(route)
    buf = nl.newroute(prepared.body, 1, replace=False)
    key, sig = parse(buf)
    assert (key, sig) == (prepared.key, prepared.sig)
    back = nl.to_route(key, sig)
    assert (back.table, back.prefix, back.metric) == (route.table, route.prefix, route.metric)
    expected = [(nh.local, nh.weight, IFINDEX(nh.ifname)) for nh in route.nexthops]
    assert [(nh.local, nh.weight, nh.ifindex) for nh in back.nexthops] == expected


def test_a_changed_action_is_a_replace():
    want, have = encode(DX4), encode(DX6)
    plan = diff({want.key[:4]: (1024, want.sig)}, {have.key[:4]: {1024: have.sig}}, prune=False)
    assert plan.replace == [(want.key[:4], 1024)] and not plan.add and not plan.delete
