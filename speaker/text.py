"""Text from strangers, made safe to show and to log.

Peers send text (the RFC 9003 shutdown communication of a NOTIFICATION, a hostname
in the FQDN capability, attribute values quoted in RFC 7606 fault descriptions), and
so do API clients.  Shown raw, a newline forges a log line, an escape sequence drives
the operator's terminal and a bidi control reorders what is read.

:func:`escape_text` turns such text into one printable line, reversibly: every
character that is not printable (``str.isprintable``: C0/C1 controls, DEL, line and
paragraph separators, format characters such as bidi overrides, unassigned and
private-use code points, every whitespace but the space) is written as a Python-style
escape (``\\n``, ``\\x1b``, ``\\u202e``), a backslash as ``\\\\``, and octets that are not
UTF-8 (when bytes are given) as ``\\xNN``.  Printable text, non-ASCII letters
included, is kept as it is.

It does not quote markup: a renderer with a markup language (rich in the CLI) must
print the result as plain text (``markup=False`` or ``rich.markup.escape``).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable

__all__ = ["escape_text", "DEFAULT_LIMIT", "LogBudget"]

DEFAULT_LIMIT = 1024
"""Characters kept by default: a log line or a CLI cell stays bounded whatever a peer sends."""

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    if ch.isprintable():
        return ch
    cp = ord(ch)
    if 0xDC80 <= cp <= 0xDCFF:  # an octet that was not UTF-8 (surrogateescape)
        return f"\\x{cp - 0xDC00:02x}"
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def escape_text(text: str | bytes | bytearray, limit: int | None = DEFAULT_LIMIT) -> str:
    """``text`` as one printable line (see the module documentation).

    Bytes are decoded as UTF-8; octets that do not decode come out as ``\\xNN``.
    ``limit``: at most that many characters of the input are kept (``None``: all);
    a cut is marked ``...(N more)`` so it is never mistaken for the whole text.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    rest = 0
    if limit is not None and len(text) > limit:
        rest = len(text) - limit
        text = text[:limit]
    if text.isprintable() and "\\" not in text:
        out = text  # the common case: nothing to do
    else:
        out = "".join(_escape_char(ch) for ch in text)
    return f"{out}...({rest} more)" if rest else out


class LogBudget:
    """How many log lines strangers may cause: at most ``per_key`` lines per ``interval``
    seconds for each key (a remote address, a neighbour), for at most ``max_keys`` keys
    at a time; beyond that, new keys share one budget.  What is not logged is counted.

    ``take(key)`` says whether to log now: None means "stay quiet", a number means "log,
    and say that this many were left out for this key since its last line".
    """

    OVERFLOW = "(other keys)"

    def __init__(self, per_key: int = 1, interval: float = 60.0, max_keys: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_key = per_key
        self.interval = interval
        self.max_keys = max_keys
        self.clock = clock
        self.events = 0  # every take()
        self.suppressed = 0  # take()s that answered None
        self._keys: dict[Hashable, list[float]] = {}  # key -> [window start, lines in window, left out]

    def take(self, key: Hashable) -> int | None:
        now = self.clock()
        self.events += 1
        entry = self._keys.get(key)
        if entry is None:
            if len(self._keys) >= self.max_keys:
                self._expire(now)
            if len(self._keys) >= self.max_keys:
                key = self.OVERFLOW
                entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = [now, 0, 0]
        if now - entry[0] >= self.interval:
            entry[0], entry[1] = now, 0
        if entry[1] < self.per_key:
            entry[1] += 1
            left_out, entry[2] = int(entry[2]), 0
            return left_out
        entry[2] += 1
        self.suppressed += 1
        return None

    def _expire(self, now: float) -> None:
        for k in [k for k, e in self._keys.items() if now - e[0] >= self.interval]:
            del self._keys[k]
