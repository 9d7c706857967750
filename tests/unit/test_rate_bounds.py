"""Rate limits have a range (issue 10, finding 11): ``99999999999999999999gbit`` was
stored, tc refused it, and the endpoint silently had no limit.  Now the intent refuses
it in one line, and tc's planner refuses it again (dataplane/ cannot import tenancy/)."""
from __future__ import annotations

import pytest
from tenancy_fixtures import FakeInterfaces, new_intent, reload

from l3fab.dataplane import tc
from l3fab.dataplane.model import PortSpec
from l3fab.tenancy import IntentError, rate
from l3fab.tenancy.rate import MAX_RATE, MIN_RATE, checked_rate


def test_both_layers_use_the_same_bounds() -> None:
    assert (rate.MIN_RATE, rate.MAX_RATE) == (tc.MIN_RATE, tc.MAX_RATE)
    # the tbf queue limit (a u32 of bytes: rate x (latency + burst time)) must not wrap
    seconds = tc.LATENCY_US / 1e6 + tc.BURST_SECONDS
    assert MAX_RATE / 8 * seconds < 2**32
    assert 573 * 10**9 / 8 * seconds > 2**32  # where it does wrap (seen with tc 6.1: "limit 2532704")


@pytest.mark.parametrize("text, bits", [
    ("8kbit", MIN_RATE), ("8000", 8000), (8000, 8000), ("500gbit", MAX_RATE), ("0.5tbit", MAX_RATE),
    ("100mbit", 10**8), (" 1.5 gbit ", 1_500_000_000), ("465gibit", 465 * 2**30),
])
def test_inside_the_range(text, bits) -> None:
    assert checked_rate(text) == bits


@pytest.mark.parametrize("text", [
    "99999999999999999999gbit", "500000000001bit", "501gbit", "1tbit", "466gibit", 10**30,
    "9" * 400 + "gbit", "9" * 41, "1" + "0" * 5000,
])
def test_above_the_range(text) -> None:
    with pytest.raises(ValueError, match=r"^is above 500000000000 bit/s \(500gbit\)"):
        checked_rate(text)


@pytest.mark.parametrize("text", ["7999bit", "7.999kbit", "1", 1, "4kbit"])
def test_below_the_range(text) -> None:
    with pytest.raises(ValueError, match=r"^is below 8000 bit/s \(8kbit\)"):
        checked_rate(text)


@pytest.mark.parametrize("text", ["100mbit\n", "100mbit\r", "100\tmbit", "1e9", "inf", "nan", "", "-8kbit", 1.5])
def test_not_a_rate(text) -> None:
    with pytest.raises(ValueError):
        checked_rate(text)


def test_the_intent_refuses_it_in_one_line_and_saves_nothing(tmp_path) -> None:
    intent = new_intent(tmp_path, interfaces=FakeInterfaces("tap0", "tap1"))
    intent.create_tenant("blue", 100)
    before = intent.path.read_bytes()
    with pytest.raises(IntentError) as err:
        intent.add_endpoint("web1", "blue", "tap0", ipv4="10.0.0.5", rate_limit="99999999999999999999gbit")
    assert str(err.value) == ("endpoints[web1].rate-limit: '99999999999999999999gbit' is above 500000000000 "
                              "bit/s (500gbit), the fastest rate tc can shape (its tbf queue limit overflows)")
    assert intent.path.read_bytes() == before
    assert reload(intent).endpoints() == ()
    assert intent.add_endpoint("web1", "blue", "tap0", ipv4="10.0.0.5", rate_limit="500gbit").rate_limit == MAX_RATE


def test_tc_refuses_out_of_range_ports_and_keeps_their_limits() -> None:
    port = PortSpec("web1", "blue", "tap0", 100, rate_limit=10**20)
    plan = tc.diff([port], tc.Snapshot(links={"tap0": {"ifname": "tap0"}}), tc.INGRESS_IFB)
    assert plan.steps == ()
    assert plan.errors == ("endpoint web1 (interface tap0): rate_limit 100000000000000000000 bit/s is above the "
                           "maximum 500000000000 bit/s tc's tbf queue limit can hold; its current limits are kept",)
    ok = tc.diff([PortSpec("web1", "blue", "tap0", 100, rate_limit=MAX_RATE)],
                 tc.Snapshot(links={"tap0": {"ifname": "tap0"}}), tc.INGRESS_IFB)
    assert ok.errors == () and ok.steps
