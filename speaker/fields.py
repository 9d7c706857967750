"""Validators for configuration fields: each returns the normalised value or raises
one :class:`ConfigError` line naming the field and the value (``neighbors[1].remote-as:
'foo' is not an AS number``).  Shared by every layer that parses a config section."""
from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

from .errors import ConfigError
from .wire.constants import Family

IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")  # use with fullmatch: "$" would accept a final newline


def asn(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ConfigError(path, v, "is not an AS number")
    text = str(v).strip()
    if "." in text:  # asdot notation
        hi, _, lo = text.partition(".")
        if hi.isdigit() and lo.isdigit() and int(hi) <= 0xFFFF and int(lo) <= 0xFFFF:
            return (int(hi) << 16) | int(lo)
        raise ConfigError(path, v, "is not an AS number")
    if not text.isdigit() or not 1 <= int(text) <= 0xFFFFFFFF:
        raise ConfigError(path, v, "is not an AS number (1-4294967295)")
    return int(text)


def remote_as(path: str, v: Any) -> int | str:
    if isinstance(v, str) and v.strip().lower() in ("external", "internal"):
        return v.strip().lower()
    try:
        return asn(path, v)
    except ConfigError:
        raise ConfigError(path, v, "is not an ASN, 'external' or 'internal'") from None


def ipv4_address(path: str, v: Any) -> str:
    try:
        return str(ipaddress.IPv4Address(str(v)))
    except ValueError:
        raise ConfigError(path, v, "is not an IPv4 address") from None


def ip_address(path: str, v: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(v).split("%")[0]))
    except ValueError:
        raise ConfigError(path, v, "is not an IP address") from None


def integer(path: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(path, v, f"is not an integer in {lo}..{hi}")
    return v


def number(path: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ConfigError(path, v, f"is not a number in {lo}..{hi}")
    return float(v)


def boolean(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(path, v, "is not true or false")
    return v


def string(path: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(path, v, "is not a string")
    return v


def ifname(path: str, v: Any) -> str:
    if not isinstance(v, str) or not IFNAME.fullmatch(v):
        raise ConfigError(path, v, "is not an interface name")
    return v


def families(path: str, v: Any) -> tuple[Family, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        raise ConfigError(path, v, "is not a non-empty list of families (ipv4, ipv6, vpnv4, vpnv6)")
    out = []
    for i, item in enumerate(v):
        try:
            fam = Family.parse(str(item))
        except ValueError:
            raise ConfigError(f"{path}[{i}]", item, "is not a family (ipv4, ipv6, vpnv4, vpnv6)") from None
        if fam not in out:
            out.append(fam)
    return tuple(out)


_SECRET_WORDS = ("pass", "pw", "secret", "key", "token", "md5", "auth")


def looks_secret(key: str) -> bool:
    """A key that is, or may be a misspelling of, a secret (``pasword``, ``md5-key``)."""
    k = str(key).lower()
    return any(w in k for w in _SECRET_WORDS) or bool(difflib.get_close_matches(k, ["password"], 1, 0.6))


def check_keys(path: str, d: dict[str, Any], allowed: set[str]) -> None:
    """Refuse unknown keys, naming key and value - except the value of a key that looks
    like a secret: a misspelled ``pasword:`` must not print the password."""
    for k in d:
        if k not in allowed:
            where = f"{path}.{k}" if path else str(k)
            known = f"is not a known setting (known: {', '.join(sorted(allowed))})"
            if looks_secret(k):
                raise ConfigError(where, None, "", message=f"{where}: (value hidden) {known}")
            raise ConfigError(where, d[k], known)
