"""Next-hop tracking does work proportional to the change, not to the next hops held:
an underlay route change re-resolves only the next hops it can affect (regression:
every change re-resolved every cached (next hop, route) pair, so a 100,000-route
burst was quadratic and held the event loop for seconds per decision run)."""
from __future__ import annotations

from l3fab.speaker.table.nexthop import NexthopTracker
from l3fab.speaker.table.path import Path, Source
from l3fab.speaker.wire.attributes import MpNextHop
from l3fab.speaker.wire.constants import IPV4_UNICAST, IPV6_UNICAST, VPNV6
from l3fab.speaker.wire.nlri import Prefix, VpnPrefix
from l3fab.speaker.wire.rd import RouteDistinguisher

PEER = Source("leaf1", "2001:db8:ffff::1")


def vpn(i: int, sid: str) -> Path:
    key = VpnPrefix(RouteDistinguisher.parse("10.0.0.1:1"), Prefix.parse(f"fd00::{i:x}/128"))
    return Path(VPNV6, key, MpNextHop(sid), (), (100,), PEER)


def unicast(prefix: str, nh: str, fam=IPV6_UNICAST) -> Path:
    return Path(fam, Prefix.parse(prefix), MpNextHop(nh), (), (), PEER)


class Counting(NexthopTracker):
    def __init__(self) -> None:
        super().__init__()
        self.resolved = 0

    def _resolve(self, nh: str):  # type: ignore[override]
        self.resolved += 1
        return super()._resolve(nh)


def test_an_unrelated_route_change_resolves_no_vpn_next_hop_again():
    t = Counting()
    t.underlay_changes(IPV6_UNICAST, [(Prefix.parse("2001:db8:0:2::/64"), True)])
    paths = [vpn(i, f"2001:db8:0:2::{i + 0x100:x}") for i in range(5_000)]
    assert all(t.valid(p) for p in paths) and t.resolved == 5_000
    t.resolved = 0
    for i in range(200):  # host routes elsewhere come and go (an ingest burst)
        t.underlay_changes(IPV4_UNICAST, [(Prefix.parse(f"10.64.{i // 256}.{i % 256}/32"), True)])
        assert t.recheck() == {}
    assert t.resolved == 0


def test_a_locator_that_goes_and_comes_back_re_decides_exactly_its_sids():
    t = Counting()
    for host in (2, 3):
        t.underlay_changes(IPV6_UNICAST, [(Prefix.parse(f"2001:db8:0:{host}::/64"), True)])
    p2 = [vpn(i, f"2001:db8:0:2::{i + 0x100:x}") for i in range(100)]
    p3 = [vpn(1000 + i, f"2001:db8:0:3::{i + 0x100:x}") for i in range(100)]
    assert all(t.valid(p) for p in p2 + p3)
    t.resolved = 0
    t.underlay_changes(IPV6_UNICAST, [(Prefix.parse("2001:db8:0:2::/64"), False)])
    gone = t.recheck()
    assert gone[VPNV6] == {p.key for p in p2} and t.resolved == 100
    assert not any(t.valid(p) for p in p2) and all(t.valid(p) for p in p3)
    t.underlay_changes(IPV6_UNICAST, [(Prefix.parse("2001:db8:0:2::/64"), True)])
    back = t.recheck()
    assert back[VPNV6] == {p.key for p in p2} and all(t.valid(p) for p in p2)


def test_a_more_specific_route_takes_over_and_a_route_never_resolves_itself():
    t = NexthopTracker()
    t.underlay_changes(IPV4_UNICAST, [(Prefix.parse("10.0.0.0/8"), True)])
    own = unicast("10.1.0.0/16", "10.1.2.3", IPV4_UNICAST)  # its next hop lies inside itself
    assert t.valid(own)  # through 10.0.0.0/8
    t.underlay_changes(IPV4_UNICAST, [(Prefix.parse("10.1.0.0/16"), True)])  # now the longest cover is itself
    t.recheck()
    assert t.valid(own)  # still through the /8, never through itself
    t.underlay_changes(IPV4_UNICAST, [(Prefix.parse("10.0.0.0/8"), False)])
    assert (IPV4_UNICAST in t.recheck()) and not t.valid(own)


def test_forgotten_next_hops_leave_the_cache():
    t = NexthopTracker()
    t.underlay_changes(IPV6_UNICAST, [(Prefix.parse("2001:db8:0:2::/64"), True)])
    paths = [vpn(i, f"2001:db8:0:2::{i + 0x100:x}") for i in range(50)]
    assert all(t.valid(p) for p in paths)
    for p in paths:
        assert p.next_hop is not None
        t.forget(p.next_hop.address, p.family, p.key)
    assert not t._cache and not t._by_route and not t.dependents
