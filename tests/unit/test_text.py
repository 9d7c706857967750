"""speaker.text.escape_text: text from peers and API clients as one printable, unambiguous line."""
from __future__ import annotations

import pytest

from l3fab.speaker.text import LogBudget, escape_text


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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_budget_one_line_per_key_per_interval_and_the_count_of_the_rest():
    clock = Clock()
    budget = LogBudget(per_key=1, interval=60, clock=clock)
    assert budget.take("192.0.2.1") == 0
    assert [budget.take("192.0.2.1") for _ in range(499)] == [None] * 499
    assert budget.take("192.0.2.2") == 0  # another key has its own budget
    clock.now = 60.0
    assert budget.take("192.0.2.1") == 499  # the next line says how many were left out
    assert (budget.events, budget.suppressed) == (502, 499)


def test_log_budget_bounds_the_keys_a_stranger_can_create():
    clock = Clock()
    budget = LogBudget(per_key=1, interval=60, max_keys=4, clock=clock)
    logged = [budget.take(f"10.0.0.{i}") for i in range(1000)]
    assert sum(x is not None for x in logged) == 4 + 1  # four keys and the shared overflow budget
    assert len(budget._keys) <= 5
    clock.now = 61.0  # expired keys make room again
    assert budget.take("10.0.1.1") == 0 and len(budget._keys) <= 5
