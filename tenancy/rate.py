"""Rate limits as tc writes them: ``100mbit`` -> 100_000_000 bits per second."""
from __future__ import annotations

import re

_UNITS = {
    "bit": 1, "": 1,
    "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
    "kibit": 2**10, "mibit": 2**20, "gibit": 2**30, "tibit": 2**40,
}
_BYTE_UNITS = {"bps", "kbps", "mbps", "gbps", "tbps"}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_rate(text: str | int) -> int:
    """Bits per second from ``'100mbit'``, ``'1.5gbit'``, ``'64kibit'`` or an integer.

    ``mbps`` and friends are refused: tc reads them as *bytes* per second, which an
    operator rarely means.  Raises ``ValueError`` with the reason.
    """
    if isinstance(text, bool):
        raise ValueError("is not a rate")
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        m = _RATE.match(str(text).lower())
        if not m:
            raise ValueError("is not a rate such as 100mbit or 1gbit")
        value, unit = float(m.group(1)), m.group(2)
        if unit in _BYTE_UNITS:
            raise ValueError(f"is ambiguous: tc reads {unit} as bytes per second; write bits, e.g. 100mbit")
        if unit not in _UNITS:
            raise ValueError("has an unknown unit (bit, kbit, mbit, gbit, tbit, kibit, mibit, gibit, tibit)")
    bits = int(round(value * _UNITS[unit]))
    if bits < 1:
        raise ValueError("must be at least 1bit")
    return bits


def format_rate(bits: int) -> str:
    """The shortest exact tc spelling: 100000000 -> ``'100mbit'``."""
    for unit, factor in (("tbit", 10**12), ("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits % factor == 0:
            return f"{bits // factor}{unit}"
    return f"{bits}bit"
