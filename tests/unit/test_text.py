"""speaker.text.escape_text: text from peers and API clients as one printable, unambiguous line."""
from __future__ import annotations

import pytest

from l3fab.speaker.text import escape_text


@pytest.mark.parametrize("raw, shown", [
    ("maintenance window", "maintenance window"),
    ("Wartung für Störung", "Wartung für Störung"),           # printable non-ASCII is kept
    ("line1\nforged: INFO line", "line1\\nforged: INFO line"),  # no forged log line
    ("\x1b[2J\x1b]0;owned\x07", "\\x1b[2J\\x1b]0;owned\\x07"),  # no terminal control
    ("a\rb\tc\x00d\x7fe\x85f", "a\\rb\\tc\\x00d\\x7fe\\x85f"),   # C0, DEL, C1
    ("user\u202eexe.txt", "user\\u202eexe.txt"),                # bidi override
    ("a\u2028b", "a\\u2028b"),                                   # line separator
    ("back\\slash", "back\\\\slash"),                            # unambiguous: a literal \x1b stays apart
    ("[/]", "[/]"),                                              # markup is the renderer's business
])
def test_escape_text(raw, shown):
    assert escape_text(raw) == shown
    assert escape_text(raw).isprintable()


def test_escaping_is_unambiguous():
    assert escape_text("\x1b") != escape_text("\\x1b")


def test_bytes_that_are_not_utf8_are_shown_as_octets():
    assert escape_text(b"ok \xff\xfe \xc3\xa9") == "ok \\xff\\xfe \u00e9"


def test_limit_marks_the_cut():
    assert escape_text("x" * 10, limit=4) == "xxxx...(6 more)"
    assert escape_text("x" * 10, limit=None) == "x" * 10
    assert len(escape_text("\n" * 100_000)) < 3000  # bounded by default
