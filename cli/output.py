"""Rendering for the CLI: rich tables for people, JSON for programs."""
from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

console = Console()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line and exit (2 for bad input, 1 for daemon-side failures)."""
    import typer

    from rich.markup import escape

    # escaped: messages name fields like ``tenants[green].vni``, which rich would read as markup
    Console(stderr=True).print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
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
        state = r["state"]
        style = "green" if state == "Established" else "yellow"
        received = " ".join(f"{k}:{v}" for k, v in r.get("received", {}).items()) or "-"
        addr = r.get("address") or "-"
        if r.get("interface"):
            addr = f"{addr}%{r['interface']}"
        t.add_row(r["name"], addr, str(r.get("peer_as") or r["remote_as"]), f"[{style}]{state}[/]",
                  _uptime(r["uptime"]), received, f"{r['messages_in']}/{r['messages_out']}",
                  "" if state == "Established" else (r.get("last_error") or "")[:60])
    return t


def _status(r: dict[str, Any]) -> str:
    """FRR-style path status: * valid, > best, = multipath, S stale."""
    if r.get("best") is None:
        return ""
    s = ("*" if r.get("valid") else " ") + (">" if r.get("best") else ("=" if r.get("multipath") else " "))
    return s + ("S" if r.get("stale") else "")


def routes_table(title: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=title, header_style="bold")
    vpn = any(r.get("rd") for r in rows)
    loc = any(r.get("best") is not None for r in rows)
    cols = ([" "] if loc else []) + ["Family", "Prefix"] + (["RD", "Label"] if vpn else []) + \
        ["Next hop", "AS path", "Origin", "MED", "LocPrf", "Communities"] + (["From"] if loc else [])
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows:
        nh = r.get("next_hop") or "-"
        if r.get("link_local_next_hop"):
            nh += f" ({r['link_local_next_hop']})"
        comms = " ".join(list(r.get("communities", ())) + list(r.get("ext_communities", ()))
                         + list(r.get("large_communities", ())))
        row = ([_status(r)] if loc else []) + [r["family"], r["prefix"]]
        if vpn:
            row += [r.get("rd") or "-", ",".join(str(x) for x in r.get("labels", ())) or "-"]
        origin = {"igp": "i", "egp": "e", "incomplete": "?"}.get(r.get("origin") or "", "-")
        row += [nh, r.get("as_path") or "", origin,
                "" if r.get("med") is None else str(r["med"]),
                "" if r.get("local_pref") is None else str(r["local_pref"]), comms]
        if loc:
            row.append(r.get("source") or "")
        t.add_row(*row)
    if loc:
        t.caption = "* valid  > best  = multipath  S stale"
    return t
