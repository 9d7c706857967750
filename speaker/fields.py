"""Validators for configuration fields: each returns the normalised value or raises
one :class:`ConfigError` line naming the field and the value (``neighbors[1].remote-as:
'foo' is not an AS number``).  Shared by every layer that parses a config section.

Names (:func:`name`, :func:`ifname`, any :func:`matching` pattern) are matched against
the *whole* string (``re.fullmatch``: a pattern ending in ``$`` would also accept a
final newline, and ``"web2\n"`` would reach nft, logs and the state file), and text
with a control character (anything ``str.isprintable`` refuses: C0/C1 controls, DEL,
every whitespace but the space, line and paragraph separators, bidi and other format
characters) is refused before any pattern is tried, saying which character it was.  The value in the
message is ``repr``-escaped and cut to :data:`SHOWN`, so the message stays one line
whatever was sent.  ``error`` lets another layer raise its own ConfigError subclass
(``tenancy.errors.IntentError``)."""
from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

from .errors import ConfigError
from .wire.constants import Family

IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")  # IFNAMSIZ - 1; no '*' or '/'; used with fullmatch
IFNAME_RULE = "1-15 characters: letters, digits, '_', '.', ':', '@', '-'"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # tenants, endpoints; used with fullmatch
NAME_RULE = "letters, digits, '_', '.', '-'; up to 63, first a letter or digit"
SHOWN = 100
"""Characters of a refused value's ``repr`` shown in an error (the rest is counted)."""

Error = type[ConfigError]


def shown(v: Any) -> str:
    """``repr(v)``, one line (repr escapes every non-printable character), at most
    :data:`SHOWN` characters and a count of the rest."""
    text = repr(v)
    if len(text) > SHOWN:
        return f"{text[:SHOWN]}...({len(text) - SHOWN} more)"
    return text


def refuse(path: str, v: Any, problem: str, error: Error = ConfigError) -> ConfigError:
    """The one-line error ``path: <value shown> problem`` (to be raised by the caller)."""
    return error(path, v, problem, message=f"{path}: {shown(v)} {problem}")


def control_character(text: str) -> str | None:
    """The first character of ``text`` that ``str.isprintable`` refuses, or None."""
    if text.isprintable():
        return None
    return next(c for c in text if not c.isprintable())


def printable(path: str, v: Any, error: Error = ConfigError) -> str:
    """A string without control characters (a newline would forge a log line or break
    the nft file, an escape sequence drives a terminal)."""
    if not isinstance(v, str):
        raise refuse(path, v, "is not a string", error)
    bad = control_character(v)
    if bad is not None:
        raise refuse(path, v, f"contains a control or non-printable character ({bad!r})", error)
    return v


def matching(path: str, v: Any, pattern: re.Pattern[str], what: str, error: Error = ConfigError) -> str:
    """``v`` if it is a string without control characters that ``pattern`` matches
    whole; else the one-line error ``path: <value> is not <what>``."""
    if not isinstance(v, str):
        raise refuse(path, v, f"is not {what}", error)
    printable(path, v, error)
    if pattern.fullmatch(v) is None:
        raise refuse(path, v, f"is not {what}", error)
    return v


def name(path: str, v: Any, error: Error = ConfigError) -> str:
    """A tenant or endpoint name (:data:`NAME`)."""
    return matching(path, v, NAME, f"a name ({NAME_RULE})", error)


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


def ifname(path: str, v: Any, error: Error = ConfigError) -> str:
    """A Linux interface name (:data:`IFNAME`)."""
    return matching(path, v, IFNAME, f"an interface name ({IFNAME_RULE})", error)


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
