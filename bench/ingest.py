"""How fast l3fab, gobgpd, ExaBGP and FRR take a full table from FRR, side by side in one run.

``python -m l3fab.bench.ingest`` (``make bench``) builds the network of
:mod:`bench.topology` in namespaces and, for each family (IPv4, VPNv4) and
packing (all routes sharing one attribute set; 1,000 sets):

1. the l3fab injector announces the table to the FRR sender in one API call,
   timed until FRR holds all of it (l3fab's send rate);
2. each receiver in turn is started fresh, FRR opens the session to it, and
   it is timed from its Established to holding every route, with its peak
   resident memory;
3. the injector withdraws the table again.

Then ExaBGP announces the table to FRR one API command per route (its send
rate). It prints the two tables and the targets of the issue, and saves the
output in ``bench/results/``. Everything it starts is removed at the end,
also on failure or Ctrl-C. Needs root and the peers ``.ci/setup`` installs.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from l3fab.lab.netns import Lab, reap_stale
from l3fab.lab.peers.frr import reap_stale_run_dirs

from .measure import (IngestResult, SendResult, best_of, exabgp_send, l3fab_send,
                      l3fab_withdraw, measure_ingest, start_injector)
from .receivers import RECEIVERS, ExaBgpReceiver, Receiver
from .report import ingest_table, send_table, verdicts
from .routes import FAMILIES, RouteSet
from .topology import EXABGP_SENDER, INJECTOR, Link, SenderFrr, connect

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DEFAULT_ROUTES = 100_000
QUICK_ROUTES = 10_000
DEFAULT_REPEAT = 3
# Namespaces and work directories are l3b-<run>-<name>: apart from the tests' l3t-* ones,
# so that clearing up after tests never touches a benchmark that is running.
LAB_PREFIX = "l3b"
RECEIVER_ASNS = {"l3fab": 65001, "gobgpd": 65002, "exabgp": 65003, "frr": 65004}


@dataclass
class Options:
    routes: int = DEFAULT_ROUTES
    receivers: tuple[str, ...] = tuple(RECEIVERS)
    families: tuple[str, ...] = FAMILIES
    attribute_sets: tuple[int, ...] = (1, 1000)
    exabgp_send_routes: int = DEFAULT_ROUTES  # 0: do not measure ExaBGP's send rate
    repeat: int = 1  # measurements of each receiver and of l3fab's send; the fastest is shown


@dataclass
class Report:
    options: Options
    ingest: list[IngestResult] = field(default_factory=list)
    send: list[SendResult] = field(default_factory=list)
    seconds: float = 0.0
    holding: dict[str, str] = field(default_factory=dict)  # receiver -> what its count counts
    revision: str = field(default_factory=lambda: _revision())  # the code measured, at the start

    @property
    def complete(self) -> bool:
        return all(r.ok for r in self.ingest) and all(r.ok for r in self.send)

    def text(self) -> str:
        o = self.options
        parts = [
            f"l3fab ingest benchmark, {datetime.now():%Y-%m-%d %H:%M}, l3fab {self.revision}, "
            f"{platform.node()}, {_cpus()} CPUs, Python {platform.python_version()}",
            f"{o.routes:,} /32 routes per table from one FRR sender (coalesce-time 0); "
            f"fastest of {o.repeat} runs; the whole benchmark took {self.seconds:.0f} s",
            "",
            "Receiving: seconds from the receiver's Established to holding every route",
            "",
            ingest_table(self.ingest),
            "",
            "Counted: " + "; ".join(f"{name}: {what}" for name, what in self.holding.items()),
            "",
            "Sending to FRR: seconds from the first command to FRR's pfxRcd equal to all routes",
            "",
            send_table(self.send),
        ]
        lines = verdicts(self.ingest, self.send)
        if lines:
            parts += ["", "Targets:", *(f"- {line}" for line in lines)]
        now = _revision()
        if now != self.revision or self.revision.endswith("-dirty"):
            parts += ["", f"WARNING: the code measured was {self.revision} at the start and is {now} "
                          "now: numbers may mix versions or include uncommitted changes"]
        return "\n".join(parts) + "\n"


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _revision() -> str:
    """The commit measured, ``-dirty`` when the working tree differs from it."""
    proc = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "(not a git checkout)"


def receiver_links(kinds: tuple[str, ...]) -> list[Link]:
    return [Link(kind, index, RECEIVER_ASNS[kind]) for index, kind in enumerate(kinds, start=1)]


def run(lab: Lab, options: Options, log=lambda text: None) -> Report:
    """The whole benchmark inside ``lab``; the caller owns (and tears down) the lab."""
    report = Report(options)
    began = time.monotonic()
    links = receiver_links(options.receivers)
    sender = SenderFrr(lab, links).start()
    injector = start_injector(lab, connect(lab, sender.ns, INJECTOR, "inj"))
    receivers: list[Receiver] = [
        RECEIVERS[link.name](lab, connect(lab, sender.ns, link, f"rcv-{link.name}",
                                         shared_subnet=False), link)
        for link in links]
    report.holding = {r.label: r.routes_note for r in receivers}
    for family in options.families:
        for sets in options.attribute_sets:
            routes = RouteSet(family, options.routes, sets)
            log(f"{family}, {routes.packing} ({routes.count:,} routes)")
            sends = []
            for i in range(options.repeat):
                if i:
                    l3fab_withdraw(sender, injector, routes)
                sends.append(l3fab_send(sender, injector, routes, log))
            report.send.append(best_of(sends))
            for receiver in receivers:
                if isinstance(receiver, ExaBgpReceiver):
                    receiver.target = routes.count
                report.ingest.append(best_of([measure_ingest(sender, receiver, routes, log)
                                              for _ in range(options.repeat)]))
            l3fab_withdraw(sender, injector, routes)
    if options.exabgp_send_routes:
        ns = connect(lab, sender.ns, EXABGP_SENDER, "exasend")
        for family in options.families:
            routes = RouteSet(family, options.exabgp_send_routes, 1)
            log(f"ExaBGP sending {family} ({routes.count:,} routes, one command each)")
            report.send.append(exabgp_send(lab, sender, ns, routes, log))
    report.seconds = time.monotonic() - began
    return report


def _csv(text: str, allowed, what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [x for x in items if x not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{what}: {text!r}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m l3fab.bench.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=None,
                        help=f"routes per table (default {DEFAULT_ROUTES:,})")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_ROUTES:,} routes per table")
    parser.add_argument("--receivers", type=lambda t: _csv(t, RECEIVERS, "receivers"),
                        default=tuple(RECEIVERS), help="comma-separated: " + ",".join(RECEIVERS))
    parser.add_argument("--families", type=lambda t: _csv(t, FAMILIES, "families"),
                        default=FAMILIES, help="comma-separated: " + ",".join(FAMILIES))
    parser.add_argument("--attribute-sets", default="1,1000",
                        help="comma-separated packings to run: 1 = all routes share one "
                             "attribute set (default 1,1000)")
    parser.add_argument("--exabgp-send-routes", type=int, default=None,
                        help="routes ExaBGP sends one command each (default: --routes; 0 skips)")
    parser.add_argument("--repeat", type=int, default=None,
                        help=f"measure each receiver (and l3fab's send) this often and show the "
                             f"fastest, with the median (default {DEFAULT_REPEAT}; 1 with --quick)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the lab's work directory (configs, logs)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    routes = args.routes or (QUICK_ROUTES if args.quick else DEFAULT_ROUTES)
    try:
        sets = tuple(int(x) for x in args.attribute_sets.split(","))
    except ValueError:
        parser.error(f"--attribute-sets: {args.attribute_sets!r} is not a list of numbers")
    sets = tuple(min(s, routes) for s in sets)
    for family in args.families:  # validate counts before building anything
        for s in sets:
            try:
                RouteSet(family, routes, s)
            except ValueError as exc:
                parser.error(str(exc))
    exa = routes if args.exabgp_send_routes is None else args.exabgp_send_routes
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    if repeat < 1:
        parser.error(f"--repeat: {repeat} is not a positive number")
    return Options(routes, args.receivers, args.families, sets, exa, repeat), args


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options, args = parse_args(sys.argv[1:] if argv is None else argv)
    # Tear the lab down on kill as on Ctrl-C, also when started in the background
    # (a shell without job control starts background jobs with SIGINT ignored).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    reap_stale(LAB_PREFIX)  # what runs killed before their teardown left behind
    reap_stale_run_dirs(LAB_PREFIX)
    with Lab(prefix=LAB_PREFIX, keep_workdir=args.keep) as lab:
        log(f"lab {lab.run_id} in {lab.workdir}")
        report = run(lab, options, log)
    text = report.text()
    print(text, end="")
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"ingest-{datetime.now():%Y%m%d-%H%M%S}.txt"
        path.write_text(text)
        log(f"saved {path}")
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())
