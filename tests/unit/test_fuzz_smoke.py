"""CI smoke run of the structure-aware fuzzer (``bench/fuzz.py``; ``make fuzz`` runs a
long one): a fixed seed, 20,000 mutated messages through the decoder, a session pair
and the table.  Nothing may escape and no invariant may break, and the run must not
pass vacuously: the mutator has to have produced invalid messages that were rejected
(NOTIFICATION, treat-as-withdraw, attribute discard), valid ones that got through,
and every kind of mutation.

The inputs that once escaped (found by the fuzzer) are replayed one by one.
"""
from __future__ import annotations

import io
import logging

import pytest

from l3fab.bench.fuzz import Fuzzer, Mutator, Stats, replay, report

SEED = 20261203
MESSAGES = 20_000


@pytest.fixture(scope="module")
def stats() -> Stats:
    logging.disable(logging.CRITICAL)  # the table logs every refusal; 20,000 messages' worth
    try:
        return Fuzzer(SEED).run(MESSAGES)
    finally:
        logging.disable(logging.NOTSET)


def _text(stats: Stats) -> str:
    out = io.StringIO()
    report(stats, out)
    return out.getvalue()


def test_nothing_escapes_and_no_invariant_breaks(stats):
    assert stats.messages == MESSAGES
    assert stats.escapes == 0 and stats.violations == 0, _text(stats)


def test_the_mutator_produced_invalid_messages_that_were_rejected(stats):
    o = stats.outcomes
    assert o["notification"] >= MESSAGES // 4, _text(stats)  # answered with a NOTIFICATION, session down
    assert o["treat-as-withdraw"] >= 200, _text(stats)  # RFC 7606 section 2
    assert o["attribute-discard"] >= 50, _text(stats)
    assert o["update"] >= 200, _text(stats)  # and still-valid UPDATEs went through, into the table
    assert o["OpenSent->OpenConfirm"] >= 20, _text(stats)  # mutated OPENs that were acceptable


def test_the_table_exported_what_it_accepted(stats):
    # What the session accepted went through the RIB and out to two more peers; routes
    # grown past 4096 octets were refused for the peer without extended messages (13).
    assert stats.table["exported"] >= 100, _text(stats)
    assert stats.table["refused"] >= 1, _text(stats)


def test_every_mutation_was_used(stats):
    names = {name for name, _op in Mutator([]).ops} | {"concat"}
    assert names <= set(stats.mutations), names - set(stats.mutations)


# Inputs the fuzzer found escaping (or breaking an invariant), as it printed them.
FOUND = [
    pytest.param(
        "frr-8.4.4-ipv6-session", "Established",
        "ffffffffffffffffffffffffffffffff0052020000003b4001010040020602010000fdea800e200001800c00000002000000000a00"
        "4002007000065100410a00100210080a0300c0100801020a0000020064",
        id="vpnv4-route-distinguisher-type-65",  # accepted, then LocalProtocolError out of every flush
    ),
]


@pytest.mark.parametrize("profile,state,data", FOUND)
def test_inputs_that_once_escaped(profile, state, data):
    outcome, stats = replay(profile, state, bytes.fromhex(data))
    assert not stats.findings, _text(stats)
    assert outcome != "escape"
