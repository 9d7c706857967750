"""``l3fab lab``: the containerlab Clos lab as network namespaces, without a container engine.

The lab's name is ``--name``, else ``$L3FAB_LAB``, else the ``name:`` of the lab file
(for ``up``: the file given; for the other commands: the default file, so the demo lab
``l3fab-clos`` needs no flag). Bad input is one line on stderr with exit code 2; a
failed bring-up exits 1 and leaves the lab for inspection (``lab down`` removes it).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from l3fab.lab import deploy, labstate, labstatus, pingmatrix
from l3fab.lab.topology import DEFAULT_LAB, Topology, TopologyError, load

from .output import console, emit_json, fail

app = typer.Typer(help="Deploy the containerlab Clos lab as network namespaces (no container engine).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

NameOpt = typer.Option(None, "--name", help="Lab name (default: $L3FAB_LAB, else the lab file's name).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def say(text: str) -> None:
    console.print(f"[dim]lab:[/] {text}", highlight=False)


def _need_root() -> None:
    if os.geteuid() != 0:
        fail("user: the lab needs root (network namespaces, FRR, the kernel dataplane)", 2)


def _topology(path: Path) -> Topology:
    try:
        return load(path)
    except TopologyError as e:
        fail(f"FILE:{str(e)[len('lab:'):]}" if e.path == "lab" else f"{path}: {e}", 2)


def _default_name() -> Optional[str]:
    """``$L3FAB_LAB``, else the default lab file's name (None if it is unusable)."""
    try:
        return os.environ.get("L3FAB_LAB") or load(DEFAULT_LAB).name
    except TopologyError:
        return None


def _name(name: Optional[str]) -> str:
    name = name or _default_name()
    if name is None:
        fail(f"--name: not given, and {DEFAULT_LAB} (whose name is the default) is unusable", 2)
    try:
        return labstate.check_name(name)
    except labstate.LabStateError as e:
        fail(str(e), 2)


def _state(name: Optional[str]) -> labstate.LabState:
    lab_name = _name(name)
    _need_root()
    try:
        return labstate.require(lab_name)
    except labstate.LabStateError as e:
        fail(str(e), 2)


def _lab_topology(state: labstate.LabState) -> Topology:
    """The topology the lab was deployed from (warns when the file changed since)."""
    topo = _topology(Path(state.topology))
    if deploy.digest(topo) != state.digest:
        Console(stderr=True).print(f"[yellow]warning:[/] {state.topology} changed since lab {state.name} "
                                   "was deployed", highlight=False)
    return topo


def l3fab_command() -> str:
    """How to type ``l3fab`` here: plain when PATH finds this installation, else its path."""
    mine = Path(sys.executable).parent / "l3fab"
    found = shutil.which("l3fab")
    if found and Path(found).resolve() == mine.resolve():
        return "l3fab"
    try:
        return str(mine.relative_to(Path.cwd()))
    except ValueError:
        return str(mine)


@app.command("up")
def up(file: Path = typer.Argument(DEFAULT_LAB, help="The containerlab topology (.clab.yml)."),
       engine: Optional[str] = typer.Option(None, "--engine",
                                            help="Leaves and spines: frr, l3fab or mixed (FRR spines, l3fab "
                                                 "leaves). Default: each node's l3fab.engine label."),
       name: Optional[str] = NameOpt) -> None:
    """Bring the lab up: namespaces, veths, FRR/l3fab, tenants and endpoints. Idempotent."""
    topo = _topology(file)
    lab_name = _name(name or os.environ.get("L3FAB_LAB") or topo.name)
    _need_root()
    try:
        outcome = deploy.up(topo, lab_name, engine, say)
    except labstate.LabStateError as e:
        fail(str(e), 2)
    except (deploy.DeployError, OSError) as e:
        fail(f"{e} - inspect with `lab status`, remove with `lab down`", 1)
    if outcome != "unchanged":
        flag = "" if lab_name == _default_name() else f" --name {lab_name}"
        console.print(f"lab [bold]{lab_name}[/] is up: `{l3fab_command()} lab ping-matrix{flag}` checks it",
                      highlight=False)


@app.command("down")
def down(name: Optional[str] = NameOpt) -> None:
    """Remove everything the lab's state file records (also after a crashed `up`)."""
    lab_name = _name(name)
    _need_root()
    try:
        deploy.down(lab_name, say)
    except labstate.LabStateError as e:
        fail(str(e), 2)
    except (deploy.DeployError, OSError) as e:
        fail(str(e), 1)
    console.print(f"lab [bold]{lab_name}[/] is down", highlight=False)


@app.command("status")
def status(name: Optional[str] = NameOpt, as_json: bool = JsonOpt) -> None:
    """Nodes, processes, BGP sessions Established, VPN routes per host VRF."""
    state = _state(name)
    rows = labstatus.status(state)
    problem = deploy.health(state)
    if as_json:
        emit_json({"name": state.name, "topology": state.topology, "engine": state.engine, "phase": state.phase,
                   "healthy": problem is None, "problem": problem, "nodes": [r.to_dict() for r in rows]})
        raise typer.Exit(0 if problem is None else 1)
    t = Table(title=f"lab {state.name} ({state.topology}, engine {state.engine})", header_style="bold")
    for col in ("Node", "Role", "Engine", "Namespace", "Processes", "BGP sessions", "VPN routes per VRF"):
        t.add_column(col, overflow="fold")
    for r in rows:
        ns = "[green]up[/]" if r.namespace else "[red]missing[/]"
        alive, total = r.processes
        procs = "-" if total == 0 else (f"[green]{alive}/{total}[/]" if alive == total else f"[red]{alive}/{total}[/]")
        if r.error:
            sess = f"[red]{r.error[:60]}[/]"
        elif r.sessions:
            n = len(r.sessions)
            colour = "green" if r.established == n else "yellow"
            sess = f"[{colour}]{r.established}/{n} Established[/]"
        else:
            sess = "-"
        routes = ", ".join(f"{k}: {v}" for k, v in sorted(r.routes.items())) or "-"
        t.add_row(r.name, r.role, r.engine, ns, procs, sess, routes)
    console.print(t)
    if problem:
        console.print(f"[red]not healthy:[/] {problem} (`lab up` rebuilds it, `lab down` removes it)",
                      highlight=False)
        raise typer.Exit(1)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(node: str = typer.Argument(..., help="Node name (e.g. host1, leaf1, ep-a1)."),
          command: Optional[List[str]] = typer.Argument(None, help="The command, after `--`."),
          name: Optional[str] = NameOpt) -> None:
    """Run a command inside a node (network + UTS namespace); its exit code is passed through.

    On l3fab nodes L3FAB_SOCKET points at the node's API (`lab exec host1 -- l3fab show rib`);
    on FRR nodes `vtysh` reaches the node's FRR instance (`lab exec leaf1 -- vtysh -c 'show bgp summary'`).
    """
    state = _state(name)
    try:
        rec = state.node(node)
    except labstate.LabStateError as e:
        fail(str(e), 2)
    if not command:
        fail("command: missing (l3fab lab exec NODE -- COMMAND [ARGS...])", 2)
    argv = list(command)
    if argv[0] == "vtysh" and rec.engine == "frr" and "-N" not in argv:
        argv = [*labstate.vtysh_argv(rec), *argv[1:]]
    full = labstate.enter_argv(rec, argv)
    sys.stdout.flush()
    os.execvpe(full[0], full, deploy.lab_env(rec))


def matrix_table(topo: Topology, results: list[pingmatrix.Result]) -> Table:
    """Sources down, destinations across; each cell is IPv4 then IPv6."""
    eps = topo.endpoints
    cell: dict[tuple[str, str], list[pingmatrix.Result]] = {}
    for r in results:
        cell.setdefault((r.probe.src, r.probe.dst), []).append(r)
    t = Table(title="ping matrix (IPv4 IPv6; verdict read from the destination's own ICMP counters)",
              header_style="bold")
    t.add_column("from \\ to")
    for e in eps:
        t.add_column(f"{e.name}\n{e.tenant}@{e.host}", justify="center")
    marks = {"reached": "[green]✓[/]", "isolated": "[dim]·[/]", "unreached": "[bold red]✗[/]",
             "leaked": "[bold red]✗[/]"}
    for s in eps:
        row = [f"{s.name} ({s.tenant})"]
        for d in eps:
            if s.name == d.name:
                row.append("[dim]-[/]")
                continue
            rs = sorted(cell.get((s.name, d.name), []), key=lambda r: r.probe.family)
            row.append(" ".join(marks[r.verdict] for r in rs) or "[dim]n/a[/]")
        t.add_row(*row)
    t.caption = ("[green]✓[/] same tenant, reached   [dim]·[/] other tenant, nothing arrived (isolated)   "
                 "[bold red]✗[/] wrong")
    return t


def print_matrix(topo: Topology, results: list[pingmatrix.Result]) -> dict:
    s = pingmatrix.summary(results)
    console.print(matrix_table(topo, results))
    colour = "green" if s["ok"] else "red"
    console.print(f"[{colour}]same tenant: {s['same_tenant_reached']}/{s['same_tenant']} reached; "
                  f"other tenant: {s['cross_tenant_leaked']}/{s['cross_tenant']} leaked[/]", highlight=False)
    for w in s["wrong"]:
        console.print(f"[red]wrong:[/] {w}", highlight=False)
    return s


@app.command("ping-matrix")
def ping_matrix(name: Optional[str] = NameOpt, as_json: bool = JsonOpt) -> None:
    """Every endpoint to every endpoint (IPv4, IPv6): same tenant reached, other tenants isolated.
    Exit code 1 if any same-tenant pair fails or any other-tenant pair gets through."""
    state = _state(name)
    topo = _lab_topology(state)
    if not as_json:
        console.print(f"[dim]lab:[/] {len(pingmatrix.probes(topo))} probes, one at a time ...", highlight=False)
    results = pingmatrix.run(state, topo)
    if as_json:
        summary = pingmatrix.summary(results)
        emit_json({"name": state.name, **summary, "results": [r.to_dict() for r in results]})
    else:
        summary = print_matrix(topo, results)
    raise typer.Exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    app()
