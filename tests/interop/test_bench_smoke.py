"""The ingest benchmark's machinery on a small table: every receiver gets every route.

Correctness only: timings are the benchmark's business (``make bench``), never a test's.
"""
from __future__ import annotations

import pytest

from bench.ingest import Options, run

pytestmark = pytest.mark.interop("frr", "gobgp")

ROUTES = 2_000


def test_bench_feeds_l3fab_and_gobgpd_the_whole_table(lab):
    options = Options(routes=ROUTES, receivers=("l3fab", "gobgpd"), families=("vpnv4",),
                      attribute_sets=(1, 100), exabgp_send_routes=0)

    report = run(lab, options)

    assert [(r.receiver, r.packing) for r in report.ingest] == [
        ("l3fab", "shared"), ("gobgpd", "shared"), ("l3fab", "100 sets"), ("gobgpd", "100 sets")]
    for result in report.ingest:
        assert result.error is None, f"{result.receiver} {result.packing}: {result.error}"
        assert result.held == ROUTES, result
        assert result.seconds is not None and result.peak_rss >= result.baseline_rss > 0, result
    # l3fab's own sending, through FRR, arrived whole as well
    assert [(r.sender, r.held) for r in report.send] == [("l3fab", ROUTES), ("l3fab", ROUTES)]
    assert all(r.error is None for r in report.send), report.send
    assert report.complete
