"""Tenancy and dataplane benchmarks: endpoint convergence across a fabric, and a host importing 100,000 VPN routes.

``python -m l3fab.bench.tenancy`` (``make bench-tenancy``) runs two parts in namespaces and
prints a table for each, with the targets of the issue:

1. **Convergence** (:mod:`bench.tenancy_convergence`): the time from ``l3fab endpoint
   add`` on host1 (API and CLI) to both routes of the endpoint being in host2's tenant
   table, over two leaves that run l3fab and, in the same run, FRR;
2. **Scale** (:mod:`bench.tenancy_scale`): one l3fab host importing N VPNv4 routes of
   10 tenants into its kernel: the time from Established until the last is installed,
   and l3fab's memory per route. Compared with ``ip -batch`` installing the same kernel
   routes in a fresh namespace, and with gobgpd holding the same BGP routes.

Progress goes to stderr; the tables go to stdout and to ``bench/results/`` (not
committed), with the raw samples as JSON beside them. Everything it starts is removed
at the end, also on failure or Ctrl-C. Needs root, FRR and gobgpd (``.ci/setup``).
"""
from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from l3fab.lab.netns import Lab, reap_stale
from l3fab.lab.peers.frr import reap_stale_run_dirs

from .ingest import _cpus, _revision, _terminate
from .measure import MB
from .report import table
from .tenancy_convergence import FABRICS, ConvergenceResult, measure
from .tenancy_scale import MODES, TENANTS, BatchResult, ScaleReport, failure
from .tenancy_scale import run as run_scale

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LAB_PREFIX = "l3b"
DEFAULT_ENDPOINTS = 100
DEFAULT_ROUTES = 100_000
BYTES_PER_ROUTE_TARGET = 300
SHAPES = ("l3fab", "nexthop", "metric")
SHAPE_LABELS = {"l3fab": "ip -batch, routes as l3fab writes them",
                "nexthop": "ip -batch, one nexthop object per SID",
                "metric": "ip -batch, metric = route index mod 1024"}


@dataclass
class Options:
    endpoints: int = DEFAULT_ENDPOINTS  # per command (API, CLI); 0 skips the convergence part
    fabrics: tuple[str, ...] = tuple(FABRICS)
    routes: int = DEFAULT_ROUTES  # 0 skips the scale part
    shapes: tuple[str, ...] = SHAPES


@dataclass
class Report:
    options: Options
    convergence: list[ConvergenceResult] = field(default_factory=list)
    scale: ScaleReport | None = None
    scale_error: str | None = None  # the scale part stopped early
    seconds: float = 0.0
    revision: str = field(default_factory=_revision)

    @property
    def complete(self) -> bool:
        parts = [r.ok for r in self.convergence] + [self.scale_error is None]
        if self.scale is not None:
            s = self.scale
            parts += [r.ok for r in s.batches + s.l3fab] + [s.gobgpd is not None and s.gobgpd.ok]
        return all(parts)

    def text(self) -> str:
        o = self.options
        parts = [f"l3fab tenancy benchmark, {datetime.now():%Y-%m-%d %H:%M}, l3fab {self.revision}, "
                 f"{platform.node()}, {_cpus()} CPUs, Python {platform.python_version()}; "
                 f"the whole benchmark took {self.seconds:.0f} s"]
        if self.convergence:
            parts += ["", f"Convergence: seconds from `endpoint add` on host1 to both routes (/32, /128) of the "
                          f"endpoint in host2's tenant table; {o.endpoints} endpoints per command, added one at a time",
                      "", convergence_table(self.convergence)]
        if self.scale is not None:
            s = self.scale
            parts += ["", f"Scale: {s.routes:,} VPNv4 /32 routes of {TENANTS} tenants "
                          f"({s.routes // TENANTS:,} a table), "
                          "every route with its own SID, into one host's kernel",
                      "", time_table(s), "", memory_table(s)]
        if self.scale_error:
            parts += ["", f"Scale: FAILED: {self.scale_error}"]
        lines = verdicts(self)
        if lines:
            parts += ["", "Targets and comparisons:", *(f"- {line}" for line in lines)]
        now = _revision()
        if now != self.revision or self.revision.endswith("-dirty"):
            parts += ["", f"WARNING: the code measured was {self.revision} at the start and is {now} "
                          "now: numbers may mix versions or include uncommitted changes"]
        return "\n".join(parts) + "\n"

    def raw(self) -> dict:
        return {"revision": self.revision, "options": asdict(self.options), "seconds": self.seconds,
                "convergence": [asdict(r) for r in self.convergence],
                "scale": asdict(self.scale) if self.scale is not None else None}


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "-"


def _after(r: ConvergenceResult) -> list[float]:
    """Seconds from the command's return to the arrival, per endpoint."""
    return [s - a for s, a in zip(r.samples, r.returned)]


def convergence_table(results: list[ConvergenceResult]) -> str:
    header = ["fabric", "command", "endpoints", "median s", "p99 s", "max s", "answered s", "after answer s",
              "first 10 s", "last 10 s", "other CPU", "note"]
    rows = []
    for r in results:
        if not r.ok:
            rows.append([r.fabric, r.via, f"{len(r.samples)}", "FAILED", *[""] * 7,
                         (r.error or f"never arrived: {', '.join(r.missing[:5])}")[:100]])
            continue
        after = _after(r) if r.via == "API" else []
        rows.append([r.fabric, r.via, f"{len(r.samples)}", f"{r.median:.3f}", f"{r.p99:.3f}", f"{r.max:.3f}",
                     _median(r.returned), _median(after), _median(r.samples[:10]), _median(r.samples[-10:]),
                     f"{r.other_cpu:.2f}", ""])
    return table(header, rows, [False, False] + [True] * 9 + [False])


def _rates(progress: Sequence[tuple[float, float]], routes: int) -> tuple[str, str]:
    """Routes/s over the first and the last 10 % of the routes, from (seconds, routes) points."""
    if len(progress) < 2:
        return "-", "-"
    tenth = routes / 10

    def at(count: float) -> float:  # seconds when ``count`` routes were in (the nearest point at or after)
        return next(s for s, c in progress if c >= count)

    first = tenth / at(tenth) if at(tenth) > 0 else 0.0
    last = tenth / (progress[-1][0] - at(routes - tenth)) if progress[-1][0] > at(routes - tenth) else 0.0
    return f"{first:,.0f}", f"{last:,.0f}"


def time_table(s: ScaleReport) -> str:
    header = ["receiver or installer", "routes", "seconds", "routes/s", "first 10 % routes/s", "last 10 % routes/s",
              "other CPU", "note"]
    rows = []
    for r in s.l3fab:
        label = MODES[r.mode]
        seconds = r.seconds
        if not r.ok or seconds is None:  # (ok means seconds is set)
            rows.append([label, f"{r.routes:,}", "FAILED", "", "", "", "", failure(r)[:200]])
            continue
        notes = []
        if r.first_s is not None:
            notes.append(f"first route in the kernel after {r.first_s:.2f} s")
        if r.rib_s is not None and r.mode != "bgp":
            notes.append(f"Adj-RIB-In complete after {r.rib_s:.1f} s")
        if r.resets:
            notes.append(f"session reset {r.resets}x")
        notes.append(f"API stalled up to {r.api_stall:.1f} s")
        if r.endpoint_add_s is not None:
            notes.append(f"then one endpoint add took {r.endpoint_add_s:.1f} s")
        first, last = _rates([(0.0, 0)] + r.progress, r.routes) if r.progress else ("-", "-")
        rows.append([label, f"{r.routes:,}", f"{seconds:.1f}", f"{r.routes / seconds:,.0f}", first, last,
                     f"{r.other_cpu:.2f}", "; ".join(notes)])
    g = s.gobgpd
    if g is not None:
        g_seconds = g.seconds if g.ok else None  # (set once gobgpd holds the routes)
        rows.append(["gobgpd (RIB only)", f"{g.routes:,}", f"{g_seconds:.1f}" if g_seconds is not None else "FAILED",
                     f"{g.routes / g_seconds:,.0f}" if g_seconds is not None else "", "-", "-", "-",
                     (g.error or "")[:120]])
    for b in s.batches:
        label = SHAPE_LABELS.get(b.shape, b.shape)
        if b.ok:
            note = f"{b.retries} rounds of lines sent again after ENOMEM" if b.retries else ""
            rows.append([label, f"{b.routes:,}", f"{b.seconds:.1f}", f"{b.routes / b.seconds:,.0f}",
                         *_rates(_cumulative(b), b.routes), "-", note])
        else:
            rows.append([label, f"{b.routes:,}", "FAILED", "", "", "", "", (b.error or "")[:120]])
    return table(header, rows, [False] + [True] * 6 + [False])


def _cumulative(b: BatchResult) -> list[tuple[float, float]]:
    """(seconds, routes) after each table's file: every table holds a tenth of the routes."""
    points: list[tuple[float, float]] = [(0.0, 0)]
    elapsed = 0.0
    for i, seconds in enumerate(b.per_table, 1):
        elapsed += seconds
        points.append((elapsed, b.routes * i / len(b.per_table)))
    return points


def memory_table(s: ScaleReport) -> str:
    header = ["process", "routes", "RSS before MB", "RSS after MB", "peak RSS MB", "bytes/route", "note"]
    rows = []
    for label, r in [(MODES[r.mode], r) for r in s.l3fab] + [("gobgpd (RIB only)", s.gobgpd)]:
        if r is None:
            continue
        if r.ok:
            rows.append([label, f"{r.routes:,}", f"{r.rss_before / MB:.1f}", f"{r.rss_after / MB:.1f}",
                         f"{r.peak_rss / MB:.1f}", f"{r.bytes_per_route:,.0f}", ""])
        else:
            rows.append([label, f"{r.routes:,}", "FAILED", "", "", "", "see above"])
    return table(header, rows, [False] + [True] * 5 + [False])


def verdicts(report: Report) -> list[str]:
    lines = []
    by = {(r.fabric, r.via): r for r in report.convergence if r.ok}
    for via in ("API", "CLI"):
        ours, frr = by.get(("l3fab leaves", via)), by.get(("FRR leaves", via))
        if ours and frr:
            line = (f"convergence via {via}: median {ours.median:.3f} s with l3fab leaves vs "
                    f"{frr.median:.3f} s with FRR leaves; p99 {ours.p99:.3f} vs {frr.p99:.3f} s")
            if via == "API":
                line += (f"; from the API's answer to the arrival (the leaves and host2): median "
                         f"{statistics.median(_after(ours)):.3f} vs {statistics.median(_after(frr)):.3f} s")
            lines.append(line)
    s = report.scale
    kernel = [r for r in s.l3fab if r.mode.startswith("kernel")] if s is not None else []
    for r in kernel:
        if not r.ok:
            lines.append(f"{MODES[r.mode]} did not hold the table: {failure(r)}")
    full = next((r for r in kernel if r.ok), None)
    if full is not None and s is not None and full.seconds is not None:  # (kernel is s's; ok: seconds set)
        met = "met" if full.bytes_per_route < BYTES_PER_ROUTE_TARGET else "NOT met"
        line = (f"memory ({MODES[full.mode]}): {full.bytes_per_route:,.0f} bytes/route of l3fab RSS above its baseline "
                f"({met}: target < {BYTES_PER_ROUTE_TARGET})")
        if s.gobgpd is not None and s.gobgpd.ok:
            line += f"; gobgpd holding the same routes: {s.gobgpd.bytes_per_route:,.0f} bytes/route"
        lines.append(line)
        same = next((b for b in s.batches if b.shape == "l3fab" and b.ok), None)
        if same is not None:
            lines.append(f"kernel: l3fab installed {full.routes:,} routes in {full.seconds:.1f} s from Established, "
                         f"ip -batch the same routes in {same.seconds:.1f} s "
                         f"({full.seconds / same.seconds:.2f}x the time)")
            for b in s.batches:
                if b.shape != "l3fab" and b.ok:
                    lines.append(f"kernel, {SHAPE_LABELS[b.shape]}: {b.seconds:.1f} s, "
                                 f"{same.seconds / b.seconds:.1f}x faster than the routes as l3fab writes them")
    return lines


def run(lab: Lab, options: Options, log=lambda text: None) -> Report:
    """The whole benchmark inside ``lab``; the caller owns (and tears down) the lab."""
    report = Report(options)
    began = time.monotonic()
    if options.endpoints:
        for kind in options.fabrics:
            log(f"convergence, {kind} leaves ({options.endpoints} endpoints per command)")
            fabric = FABRICS[kind](lab)
            report.convergence += measure(lab, fabric, options.endpoints, log)
    if options.routes:
        try:
            report.scale = run_scale(lab, options.routes, log, options.shapes)
        except Exception as exc:  # noqa: BLE001 - keep the convergence results
            report.scale_error = f"{type(exc).__name__}: {exc}"
            log(f"scale: FAILED: {report.scale_error}")
    report.seconds = time.monotonic() - began
    return report


def _csv(text: str, allowed, what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [x for x in items if x not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"{what}: {text!r}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m l3fab.bench.tenancy", description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=DEFAULT_ENDPOINTS,
                        help=f"endpoints added per command (API, CLI) and fabric (default {DEFAULT_ENDPOINTS}; "
                             "0 skips the convergence part)")
    parser.add_argument("--fabrics", type=lambda t: _csv(t, FABRICS, "fabrics"), default=tuple(FABRICS),
                        help="leaves to compare, comma-separated: " + ",".join(FABRICS))
    parser.add_argument("--routes", type=int, default=DEFAULT_ROUTES,
                        help=f"VPNv4 routes the host imports (default {DEFAULT_ROUTES:,}; 0 skips the scale part)")
    parser.add_argument("--shapes", type=lambda t: _csv(t, SHAPES, "shapes"), default=SHAPES,
                        help="ip -batch route shapes to compare, comma-separated: " + ",".join(SHAPES))
    parser.add_argument("--keep", action="store_true", help="keep the lab's work directory (configs, logs)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if not 0 <= args.endpoints <= 5000:
        parser.error(f"--endpoints: {args.endpoints} is not between 0 and 5000")
    if args.routes and not TENANTS <= args.routes <= 1_000_000:
        parser.error(f"--routes: {args.routes} is not 0 or between {TENANTS} and 1,000,000")
    return Options(args.endpoints, args.fabrics, args.routes, args.shapes), args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    reap_stale(LAB_PREFIX)
    reap_stale_run_dirs(LAB_PREFIX)
    with Lab(prefix=LAB_PREFIX, keep_workdir=args.keep) as lab:
        log(f"lab {lab.run_id} in {lab.workdir}")
        report = run(lab, options, log)
    text = report.text()
    print(text, end="")
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        stem = RESULTS_DIR / f"tenancy-{datetime.now():%Y%m%d-%H%M%S}"
        stem.with_suffix(".txt").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps(report.raw(), indent=1))
        log(f"saved {stem}.txt and .json")
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())
