"""FIB programming speed: l3fab's netlink backend against ``ip -batch``, in the same run.

``python -m l3fab.bench.fib [--routes 100000]`` creates a fresh network namespace
with a veth pair (this kernel has no dummy interfaces), then for N IPv4 /32
routes, plain and ``encap seg6 mode encap.red`` (fewer by default: see --seg6-routes):

* installs and removes them with ``ip -batch`` (the real alternative);
* installs and removes them through :class:`fib.Fib` (``set_desired``);
* times a restart reconcile: a table of N plain l3fab routes, a new Fib that wants
  1 % of them different (replace, add, delete); dump + diff + apply.

Every phase counts the routes in the kernel afterwards; a lost route fails
the bench. The table is printed and written to ``bench/results/fib-<time>.txt``.
The namespace is removed at the end, also on errors (:class:`lab.netns.Lab`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from l3fab.bench.fib_routes import ip_batch
from l3fab.lab.netns import Lab, run_host

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEV = "fib0"


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "-"


def _ip_batch(lab: Lab, ns, text: str) -> float:
    path = Path(lab.workdir) / "batch.txt"
    path.write_text(text)
    start = time.perf_counter()
    run_host(["ip", "-n", ns.netns, "-batch", str(path)], timeout=3600)
    return time.perf_counter() - start


def _count(ns, table: int) -> int:
    out = ns.ip("route", "show", "table", str(table)).stdout
    return sum(1 for line in out.splitlines() if line and not line[0].isspace())


def _worker(lab: Lab, ns, phase: str, n: int, table: int) -> dict:
    proc = lab.run(ns, [sys.executable, "-m", "l3fab.bench.fib_worker", phase, "--routes", str(n),
                        "--table", str(table), "--dev", DEV], timeout=3600)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(what: str, got: int, want: int, problems: list[str]) -> None:
    if got != want:
        problems.append(f"{what}: {got:,} routes, expected {want:,}")


def run(n: int, n_seg6: int) -> tuple[str, list[str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    n_plain = n
    problems: list[str] = []
    with Lab(uts=False) as lab:
        ns = lab.add_namespace("fib", forwarding=False)
        lab.add_namespace("peer", forwarding=False)
        lab.link("fib", "peer", DEV, "fibpeer")
        ns.add_address(DEV, "10.255.0.1/24")
        ns.add_address(DEV, "fc00:ffff::1/64")
        for kind, table, seg6, count in (("plain", 100, False, n), ("seg6 encap.red", 101, True, n_seg6)):
            add_s = _ip_batch(lab, ns, ip_batch(table, count, DEV, seg6=seg6))
            _check(f"ip -batch {kind} add", _count(ns, table), count, problems)
            del_s = _ip_batch(lab, ns, ip_batch(table, count, DEV, seg6=seg6, delete=True))
            _check(f"ip -batch {kind} del", _count(ns, table), 0, problems)
            rows.append(("ip -batch", kind, f"{count:,}", _rate(count, add_s), _rate(count, del_s)))
            res = _worker(lab, ns, "seg6" if seg6 else "plain", count, table + 10)
            _check(f"l3fab {kind} add", res["installed"], count, problems)
            _check(f"l3fab {kind} del", res["left"], 0, problems)
            problems += [f"l3fab {kind}: {e}" for e in res["errors"]]
            rows.append(("l3fab Fib", kind + (f" ({res['retries']} retry rounds)"
                                                if res["retries"] else ""),
                         f"{count:,}", _rate(count, res["add_s"]), _rate(count, res["del_s"])))
        n = n_plain
        rec = _worker(lab, ns, "reconcile", n, 120)
        problems += [f"l3fab reconcile: {e}" for e in rec["errors"]]
        if rec["steady_changes"]:
            problems.append(f"reconcile left {rec['steady_changes']} differences")
        start = time.perf_counter()
        shown = _count(ns, 120)
        ip_show_s = time.perf_counter() - start
    lines = [f"# FIB bench, IPv4 /32 routes, {time.strftime('%Y-%m-%d %H:%M:%S')}", "",
             _table(("method", "routes", "count", "add routes/s", "del routes/s"), rows), "",
             _table((f"reconcile ({n:,} plain routes)", "seconds", "changes"), [
                 ("restart: dump + diff + apply, 1 % differ", f"{rec['reconcile_s']:.3f}",
                  f"+{rec['added']} ~{rec['replaced']} -{rec['deleted']}"),
                 ("steady state: dump + diff, nothing to do", f"{rec['steady_s']:.3f}", "0"),
                 (f"l3fab dump only ({rec['dumped']:,} routes)", f"{rec['dump_s']:.3f}", ""),
                 (f"`ip route show` ({shown:,} routes)", f"{ip_show_s:.3f}", ""),
             ])]
    if problems:
        lines += ["", "PROBLEMS:", *(f"- {p}" for p in problems)]
    return "\n".join(lines) + "\n", problems


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A Markdown table; every column but the first is right-aligned."""
    cols = list(zip(header, *rows))
    widths = [max(len(c) for c in col) for col in cols]
    fmt = lambda cells: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    rule = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(header), rule, *map(fmt, rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--seg6-routes", type=int, default=20_000,
                        help="seg6 route creation is kernel-bound and slows down with the "
                             "count (per-CPU allocations); 100000 takes minutes per method")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()
    text, problems = run(args.routes, args.seg6_routes)
    print(text, end="")
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"fib-{time.strftime('%Y%m%d-%H%M%S')}.txt"
        path.write_text(text)
        print(f"written to {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
