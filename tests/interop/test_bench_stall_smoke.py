"""The stall benchmark's machinery on a small table (``--quick`` numbers): every scenario is
measured on both daemons and the table prints numbers.

Correctness only: whether the stalls meet the target is the benchmark's business
(``make bench-stall``), never a test's.
"""
from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.interop("gobgp"), pytest.mark.timeout(300)]


def test_stall_bench_measures_every_scenario_and_prints_the_table(lab):
    from l3fab.bench import stall

    options = stall.Options(**stall.QUICK)

    report = stall.run(lab, options)

    assert report.error is None, report.error
    assert [r.scenario for r in report.rows] == [
        "idle, holding 2,000 routes", "2,000-route burst from a peer", "full rib dump (2,000 routes)",
        "endpoint add, one at a time (1)", "4 endpoint adds at once"]
    for row in report.rows:
        assert row.l3fab.ok and row.l3fab.samples > 0 and row.l3fab.max_ms >= row.l3fab.p99_ms > 0, row
        assert (row.gobgpd is None) == ("endpoint" in row.scenario), row
        if row.gobgpd is not None:
            assert row.gobgpd.ok and row.gobgpd.samples > 0 and row.gobgpd.max_ms >= row.gobgpd.p99_ms > 0, row
    assert report.complete
    text = report.text()
    print(text)
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "scenario", "l3fab max ms", "l3fab p99 ms", "gobgpd max ms", "gobgpd p99 ms", "target ms", "verdict",
        "other CPU l3fab", "other CPU gobgpd", "probes", "note"]
    body = lines[1:]
    assert len(body) == 5
    number = re.compile(r"^\d[\d,]*\.\d$")
    for line in body:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert number.match(cells[1]) and number.match(cells[2]), line  # l3fab max, p99
        assert cells[5] == "50" and cells[6] in ("met", "missed"), line
        if "endpoint" in cells[0]:
            assert cells[3] == cells[4] == "n/a", line
        else:
            assert number.match(cells[3]) and number.match(cells[4]), line  # gobgpd max, p99
    assert "Target: the worst stall under 50 ms" in text
