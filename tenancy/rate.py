"""Rate limits as tc writes them: ``100mbit`` -> 100_000_000 bits per second.

An endpoint's limit (:func:`checked_rate`) must lie in :data:`MIN_RATE` ..
:data:`MAX_RATE`, the range the dataplane's tc objects really shape
(``dataplane.tc`` checks the same bounds again):

- below 8 kbit/s tc's token-bucket timing overflows;
- tc passes rates of 2^32 bytes/s and more as 64-bit attributes (``TCA_TBF_RATE64``,
  ``TCA_POLICE_RATE64``), so the rate itself is not the bound; the tbf queue is: its
  limit is a 32-bit byte count of rate x (50 ms latency + 10 ms burst), which wraps
  above ~572 Gbit/s (tc accepts the qdisc, and it then holds a queue of a few bytes).
  500 Gbit/s is the round bound under that.

Parsing is exact (``fractions``), so ``99999999999999999999gbit`` or a 400-digit
number is refused naming the bound, never an overflow or an infinity.
"""
from __future__ import annotations

import re
from fractions import Fraction

MIN_RATE = 8_000  # bit/s
MAX_RATE = 500 * 10**9  # bit/s: see the module documentation
MAX_DIGITS = 40  # longer numbers are refused before any arithmetic

_UNITS = {
    "bit": 1, "": 1,
    "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
    "kibit": 2**10, "mibit": 2**20, "gibit": 2**30, "tibit": 2**40,
}
_BYTE_UNITS = {"bps", "kbps", "mbps", "gbps", "tbps"}
_RATE = re.compile(r" *(\d+(?:\.\d+)?) *([a-z]*) *")  # fullmatch; no control characters get this far
BELOW = f"is below {MIN_RATE} bit/s (8kbit), the slowest rate tc can shape"
ABOVE = f"is above {MAX_RATE} bit/s (500gbit), the fastest rate tc can shape (its tbf queue limit overflows)"


def parse_rate(text: str | int) -> int:
    """Bits per second from ``'100mbit'``, ``'1.5gbit'``, ``'64kibit'`` or an integer
    (at least 1 bit/s; :func:`checked_rate` adds the range tc can shape).

    ``mbps`` and friends are refused: tc reads them as *bytes* per second, which an
    operator rarely means.  Raises ``ValueError`` with the reason (the caller names
    the field and the value).
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise ValueError("is not a rate such as 100mbit or 1gbit")
    if isinstance(text, int):
        bits = text
    else:
        if not text.isprintable():
            raise ValueError("contains a control or non-printable character")
        m = _RATE.fullmatch(text.lower())
        if not m:
            raise ValueError("is not a rate such as 100mbit or 1gbit")
        number, unit = m.group(1), m.group(2)
        if unit in _BYTE_UNITS:
            raise ValueError(f"is ambiguous: tc reads {unit} as bytes per second; write bits, e.g. 100mbit")
        if unit not in _UNITS:
            raise ValueError("has an unknown unit (bit, kbit, mbit, gbit, tbit, kibit, mibit, gibit, tibit)")
        if len(number) > MAX_DIGITS:
            raise ValueError(f"has more than {MAX_DIGITS} digits")
        bits = round(Fraction(number) * _UNITS[unit])
    if bits < 1:
        raise ValueError("must be at least 1bit")
    return bits


def checked_rate(text: str | int) -> int:
    """:func:`parse_rate`, and the result in :data:`MIN_RATE` .. :data:`MAX_RATE`;
    ``ValueError`` with the reason otherwise."""
    try:
        bits = parse_rate(text)
    except ValueError as e:
        if str(e).startswith("has more than"):  # a number that long is far above the range
            raise ValueError(ABOVE) from None
        raise
    if bits < MIN_RATE:
        raise ValueError(BELOW)
    if bits > MAX_RATE:
        raise ValueError(ABOVE)
    return bits


def format_rate(bits: int) -> str:
    """The shortest exact tc spelling: 100000000 -> ``'100mbit'``."""
    for unit, factor in (("tbit", 10**12), ("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits % factor == 0:
            return f"{bits // factor}{unit}"
    return f"{bits}bit"
