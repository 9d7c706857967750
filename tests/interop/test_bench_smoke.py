"""The ingest benchmark's machinery on a small table: every receiver gets every route.

Correctness only: timings are the benchmark's business (``make bench``), never a test's.
"""
from __future__ import annotations

import pytest

from l3fab.bench.ingest import Options, run

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


def test_tenancy_bench_converges_every_endpoint_and_imports_every_route(lab):
    from l3fab.bench import tenancy

    endpoints, routes = 5, 1_000
    options = tenancy.Options(endpoints=endpoints, fabrics=("l3fab", "frr"), routes=routes)

    report = tenancy.run(lab, options)

    assert [(r.fabric, r.via) for r in report.convergence] == [
        ("l3fab leaves", "API"), ("l3fab leaves", "CLI"), ("FRR leaves", "API"), ("FRR leaves", "CLI")]
    for r in report.convergence:
        assert r.error is None and not r.missing, (r.fabric, r.via, r.error, r.missing)
        assert len(r.samples) == len(r.returned) == endpoints
        # an arrival is seen on host2 after the command on host1 started
        assert all(s > 0 for s in r.samples) and all(a > 0 for a in r.returned)
    scale = report.scale
    assert [(b.shape, b.in_kernel, b.error) for b in scale.batches] == [
        (shape, routes, None) for shape in tenancy.SHAPES]
    assert [(r.mode, r.held, r.error) for r in scale.l3fab] == [
        ("kernel", routes, None), ("kernel-nohold", routes, None), ("import", routes, None), ("bgp", routes, None)]
    for r in scale.l3fab:
        assert r.rss_after > r.rss_before > 0 and r.seconds > 0, r
    assert all(r.endpoint_add_s is not None and r.first_s is not None for r in scale.l3fab[:2])
    assert scale.gobgpd.held == routes and scale.gobgpd.rss_after > scale.gobgpd.rss_before > 0
    assert report.complete
    text = report.text()
    assert "| FRR leaves   | CLI " in text and "bytes/route" in text and "target < 300" in text
