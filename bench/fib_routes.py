"""The route set of the FIB bench: host routes and SIDs numbered 0..n-1."""

from __future__ import annotations

BASE_V4 = 10 << 24  # 10.0.0.0/8 holds 16 M host routes


def host_prefix(i: int) -> str:
    v = BASE_V4 + i
    return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}/32"


def sid(i: int) -> str:
    """A SID from the locator fc00:0:0:1::/64."""
    return f"fc00:0:0:1::{i >> 16:x}:{i & 0xffff:x}"


def ip_batch(table: int, n: int, dev: str, *, seg6: bool, delete: bool = False) -> str:
    """The same routes as ``ip -batch`` input."""
    verb = "del" if delete else "add"
    if seg6 and not delete:
        lines = (f"route {verb} {host_prefix(i)} encap seg6 mode encap.red segs {sid(i)} "
                 f"dev {dev} table {table}" for i in range(n))
    else:
        lines = (f"route {verb} {host_prefix(i)} dev {dev} table {table}" for i in range(n))
    return "\n".join(lines) + "\n"
