"""Rendering for the CLI: rich tables for people, JSON for programs.

Everything the daemon answers is data, and some of it comes from strangers (a peer's
shutdown message, its hostname, names an API client chose).  None of it is ever read
as rich markup or emoji codes (it is printed as :class:`rich.text.Text`), and control
characters and escape sequences are shown escaped (:func:`l3fab.speaker.text.escape_text`),
so ``[/]`` cannot crash a table and ``\x1b[2J`` cannot reach the terminal (text the
daemon escaped already is shown as it is, not escaped twice).  JSON output escapes
control characters itself.
"""
from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from l3fab.speaker.text import escape_text

console = Console()


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\x1b``, ``\\n``,
    ``\\u202e``, by :func:`escape_text`); printable text, backslashes included, is kept
    as it is, so text the daemon escaped already is not escaped twice."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else escape_text(ch, limit=None) for ch in text)


def clean(value: Any) -> str:
    """A value from the daemon as one printable line (whole: the CLI shows what it got).

    Lists and dicts print as Python literals, whose strings are escaped already.
    """
    if value is None:
        return ""
    return printable(value if isinstance(value, str) else str(value))


def cell(value: Any, style: str = "") -> Text:
    """A table cell or a printed value: plain text, never markup."""
    return Text(clean(value), style=style)


def say(*parts: Any) -> None:
    """Print one line of plain text (strings are data: escaped, never markup)."""
    console.print(Text(" ".join(clean(p) for p in parts)), highlight=False, soft_wrap=True)


def print_record(row: dict[str, Any], width: int = 16) -> None:
    """``key: value`` lines, the keys in bold and right-aligned to ``width``."""
    for k, v in row.items():
        console.print(Text.assemble((f"{clean(k):>{width}}", "bold"), ": ", clean(v)), highlight=False)


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    """One row per dict, one column per key of ``columns`` ("-" for nothing)."""
    t = Table(title=cell(title), header_style="bold")
    for col in columns:
        t.add_column(cell(col), overflow="fold")
    for r in rows:
        t.add_row(*(cell(r.get(col, "")) if r.get(col) not in (None, [], ()) else cell("-") for col in columns))
    return t


def emit_json(data: Any) -> None:
    # ensure_ascii (the default): control characters and every non-ASCII character are \u escapes
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line and exit (2 for bad input, 1 for daemon-side failures)."""
    # plain text: messages name fields like ``tenants[green].vni``, which rich would read as markup
    Console(stderr=True).print(Text.assemble(("error:", "bold red"), " ", printable(str(message))),
                               highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _uptime(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h{m:02d}m" if d else f"{h:02d}:{m:02d}:{s:02d}"


def neighbors_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="BGP neighbors", header_style="bold")
    for col in ("Neighbor", "Address", "Remote AS", "State", "Up/Down", "Received", "Msgs in/out", "Last error"):
        t.add_column(col, overflow="fold")
    for r in rows:
        state = str(r["state"])
        style = "green" if state == "Established" else "yellow"
        received = " ".join(f"{k}:{v}" for k, v in r.get("received", {}).items()) or "-"
        addr = str(r.get("address") or "-")
        if r.get("interface"):
            addr = f"{addr}%{r['interface']}"
        # cut before escaping (cell escapes): an escape is never cut in half
        last_error = "" if state == "Established" else str(r.get("last_error") or "")[:60]
        t.add_row(cell(r["name"]), cell(addr), cell(r.get("peer_as") or r["remote_as"]), cell(state, style),
                  cell(_uptime(r["uptime"])), cell(received), cell(f"{r['messages_in']}/{r['messages_out']}"),
                  cell(last_error))
    return t


def _status(r: dict[str, Any]) -> str:
    """FRR-style path status: * valid, > best, = multipath, S stale."""
    if r.get("best") is None:
        return ""
    s = ("*" if r.get("valid") else " ") + (">" if r.get("best") else ("=" if r.get("multipath") else " "))
    return s + ("S" if r.get("stale") else "")


def routes_table(title: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=cell(title), header_style="bold")
    vpn = any(r.get("rd") for r in rows)
    loc = any(r.get("best") is not None for r in rows)
    cols = ([" "] if loc else []) + ["Family", "Prefix"] + (["RD", "Label"] if vpn else []) + \
        ["Next hop", "AS path", "Origin", "MED", "LocPrf", "Communities"] + (["From"] if loc else [])
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows:
        nh = clean(r.get("next_hop")) or "-"
        if r.get("link_local_next_hop"):
            nh += f" ({clean(r['link_local_next_hop'])})"
        comms = " ".join(clean(c) for c in list(r.get("communities", ())) + list(r.get("ext_communities", ()))
                         + list(r.get("large_communities", ())))
        row = ([_status(r)] if loc else []) + [clean(r["family"]), clean(r["prefix"])]
        if vpn:
            row += [clean(r.get("rd")) or "-", ",".join(clean(x) for x in r.get("labels", ())) or "-"]
        origin = {"igp": "i", "egp": "e", "incomplete": "?"}.get(r.get("origin") or "", "-")
        row += [nh, clean(r.get("as_path")), origin,
                "" if r.get("med") is None else clean(r["med"]),
                "" if r.get("local_pref") is None else clean(r["local_pref"]), comms]
        if loc:
            row.append(clean(r.get("source")))
        t.add_row(*(Text(c) for c in row))
    if loc:
        t.caption = "* valid  > best  = multipath  S stale"
    return t
