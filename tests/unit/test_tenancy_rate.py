"""Rate limits in tc's spelling."""
from __future__ import annotations

import pytest

from l3fab.tenancy.rate import format_rate, parse_rate


@pytest.mark.parametrize("text, bits", [
    ("100mbit", 100_000_000), ("1gbit", 10**9), ("1.5gbit", 1_500_000_000), ("64kibit", 65536),
    ("500kbit", 500_000), ("1000", 1000), (2_000_000, 2_000_000), (" 10 MBit ", 10_000_000),
])
def test_parse(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["100mbps", "fast", "0mbit", "-1mbit", "10furlongs", True])
def test_parse_refuses(text):
    with pytest.raises(ValueError):
        parse_rate(text)


@pytest.mark.parametrize("bits, text", [(100_000_000, "100mbit"), (10**9, "1gbit"), (1_500_000_000, "1500mbit"),
                                        (65536, "65536bit"), (2000, "2kbit")])
def test_format_round_trips(bits, text):
    assert format_rate(bits) == text
    assert parse_rate(text) == bits
