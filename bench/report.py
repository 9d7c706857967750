"""The benchmark's tables (Markdown pipe tables: readable as text, pasteable into docs/)."""
from __future__ import annotations

from typing import Iterable, Sequence

from .measure import MB, IngestResult, SendResult, median

SEND_TARGET_FACTOR = 30  # l3fab must send at least 30x faster than ExaBGP's one-command-per-route
# ExaBGP's one-command-per-route rate measured for PEERS.md (50,000 routes); ExaBGP slows
# down as its table grows, so a run with more routes measures it lower.
EXABGP_REFERENCE_RATE = 1_200


def table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool]) -> str:
    """A Markdown table with padded columns; ``right`` aligns numeric columns right."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                          for w, r in zip(widths, right)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _median(r) -> str:
    return _num(median(r.runs), ".3f") if len(r.runs) > 1 else "-"


def ingest_table(results: list[IngestResult]) -> str:
    header = ["family", "packing", "receiver", "seconds", "median s", "poll gap s", "routes/s",
              "peak RSS MB", "baseline MB", "bytes/route", "other CPU", "note"]
    rows = []
    for r in results:
        if r.ok:
            rows.append([r.family, r.packing, r.receiver, f"{r.seconds:.3f}", _median(r),
                         f"{r.poll_gap:.3f}", f"{r.rate:,.0f}", f"{r.peak_rss / MB:.1f}",
                         f"{r.baseline_rss / MB:.1f}", f"{r.bytes_per_route:,.0f}",
                         f"{r.other_cpu:.2f}", r.note])
        else:
            rows.append([r.family, r.packing, r.receiver, "FAILED", *[""] * 7,
                         (r.error or f"held {r.held:,} of {r.routes:,}")[:100]])
    return table(header, rows, [False] * 3 + [True] * 8 + [False])


def send_table(results: list[SendResult]) -> str:
    header = ["sender", "method", "family", "packing", "routes", "seconds", "median s",
              "routes/s", "API done s", "other CPU", "note"]
    rows = []
    for r in results:
        if r.ok:
            rows.append([r.sender, r.method, r.family, r.packing, f"{r.routes:,}",
                         f"{r.seconds:.3f}", _median(r), f"{r.rate:,.0f}",
                         _num(r.api_seconds, ".3f"), f"{r.other_cpu:.2f}", r.note])
        else:
            rows.append([r.sender, r.method, r.family, r.packing, f"{r.routes:,}", "FAILED",
                         *[""] * 4, (r.error or "")[:100]])
    return table(header, rows, [False] * 4 + [True] * 6 + [False])


def _find(results, **match):
    for r in results:
        if all(getattr(r, k) == v for k, v in match.items()) and r.ok:
            return r
    return None


def verdicts(ingest: list[IngestResult], send: list[SendResult]) -> list[str]:
    """One line per target of the issue, with the numbers it was judged on."""
    lines = []
    for family, packing in dict.fromkeys((r.family, r.packing) for r in ingest):
        ours = _find(ingest, family=family, packing=packing, receiver="l3fab")
        gobgp = _find(ingest, family=family, packing=packing, receiver="gobgpd")
        if ours is None or gobgp is None:
            continue
        speed = ours.rate / gobgp.rate
        memory = ours.bytes_per_route / gobgp.bytes_per_route if gobgp.bytes_per_route else None
        lines.append(
            f"{family} {packing}: l3fab ingests at {speed:.2f}x gobgpd's rate "
            f"({'met' if speed >= 1 else 'NOT met'}: target >= 1x); "
            f"{ours.bytes_per_route:,.0f} vs {gobgp.bytes_per_route:,.0f} bytes/route "
            f"({'met' if memory is not None and memory < 1 else 'NOT met'}: target < gobgpd)")
    for family in dict.fromkeys(r.family for r in send):
        ours = _find(send, family=family, packing="shared", sender="l3fab")
        exa = _find(send, family=family, sender="ExaBGP")
        if ours is None or exa is None:
            continue
        factor = ours.rate / exa.rate
        reference = ours.rate / EXABGP_REFERENCE_RATE
        note = "" if exa.routes == ours.routes else f" (ExaBGP measured on {exa.routes:,} routes)"
        lines.append(
            f"{family} send: l3fab {ours.rate:,.0f} routes/s vs ExaBGP {exa.rate:,.0f} routes/s = "
            f"{factor:.1f}x ({'met' if factor >= SEND_TARGET_FACTOR else 'NOT met'}: "
            f"target >= {SEND_TARGET_FACTOR}x){note}; vs the {EXABGP_REFERENCE_RATE:,} routes/s "
            f"ExaBGP reference of PEERS.md = {reference:.1f}x")
    return lines
