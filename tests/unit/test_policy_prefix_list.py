"""Prefix lists: FRR's exact / ge / le semantics, and address containment for next hops."""
from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from l3fab.speaker.policy import PrefixEntry, PrefixList
from l3fab.speaker.wire.nlri import Prefix

P = Prefix.parse


def plist(*entries) -> PrefixList:
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(PrefixEntry.exact(P(e)))
        else:
            p, ge, le = e
            out.append(PrefixEntry(P(p), ge, le))
    return PrefixList("t", tuple(out))


def test_entry_without_range_matches_only_that_prefix():
    pl = plist("2001:db8:0:11::/64")
    assert pl.matches(P("2001:db8:0:11::/64"))
    assert not pl.matches(P("2001:db8:0:11::/65"))
    assert not pl.matches(P("2001:db8:0:11::/63"))
    assert not pl.matches(P("2001:db8:0:12::/64"))


def test_range_matches_lengths_inside_the_network():
    pl = plist(("10.0.0.0/8", 24, 32))
    assert pl.matches(P("10.1.2.0/24"))
    assert pl.matches(P("10.255.255.255/32"))
    assert not pl.matches(P("10.1.0.0/16"))  # too short
    assert not pl.matches(P("10.0.0.0/8"))
    assert not pl.matches(P("11.1.2.0/24"))  # outside


def test_families_do_not_mix():
    pl = plist("0.0.0.0/0", ("::/0", 0, 0))
    assert pl.matches(P("0.0.0.0/0")) and pl.matches(P("::/0"))
    assert not pl.matches(P("10.0.0.0/8"))
    v4_only = plist(("0.0.0.0/0", 0, 32))
    assert not v4_only.matches(P("::/0"))


def test_several_entries_of_one_network_keep_their_own_ranges():
    pl = plist(("10.0.0.0/8", 16, 16), ("10.0.0.0/8", 24, 24))
    assert pl.matches(P("10.1.0.0/16")) and pl.matches(P("10.1.2.0/24"))
    assert not pl.matches(P("10.1.2.0/20"))


def test_contains_address_ignores_ranges_and_rejects_garbage():
    pl = plist("2001:db8:0:11::/64", ("10.0.0.0/8", 24, 24))
    assert pl.contains_address("2001:db8:0:11::100")
    assert pl.contains_address("10.9.9.9")
    assert not pl.contains_address("2001:db8:0:12::100")
    assert not pl.contains_address("192.0.2.1")
    assert not pl.contains_address("not-an-address")
    assert not PrefixList("e", ()).contains_address("10.0.0.1")


def test_entry_str_reads_like_frr():
    assert str(PrefixEntry(P("10.0.0.0/8"), 24, 32)) == "10.0.0.0/8 ge 24 le 32"
    assert str(PrefixEntry.exact(P("2001:db8::/32"))) == "2001:db8::/32"


def _naive(entries, prefix: Prefix) -> bool:
    net = prefix.network
    for e in entries:
        en = e.prefix.network
        if en.version == net.version and net.subnet_of(en) and e.ge <= prefix.length <= e.le:
            return True
    return False


_prefix4 = st.builds(lambda a, n: P(str(ipaddress.ip_network((a, n), strict=False))),
                     st.integers(0, 2**32 - 1).map(lambda a: a & 0xFF0F0000 | 0x0A000000), st.integers(0, 32))


@st.composite
def _entry(draw):
    p = draw(_prefix4)
    ge = draw(st.integers(p.length, 32))
    le = draw(st.integers(ge, 32))
    return PrefixEntry(p, ge, le)


@settings(max_examples=300, deadline=None)
@given(st.lists(_entry(), max_size=8), st.lists(_prefix4, min_size=1, max_size=10))
def test_compiled_lookup_agrees_with_naive_scan(entries, prefixes):
    pl = PrefixList("h", tuple(entries))
    for p in prefixes:
        assert pl.matches(p) == _naive(entries, p), (entries, p)
