"""``l3fab render``: per-node configuration from the lab topology (a containerlab file).

Configs go to stdout unchanged (no rich markup), so they can be piped into a file or
``vtysh -f -``; errors are one line on stderr with exit code 2.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from l3fab.lab.render import RenderError, render_frr, render_l3fab, write_all
from l3fab.lab.topology import DEFAULT_LAB, Topology, TopologyError, load

from .output import fail

app = typer.Typer(help="Render node configuration from the lab topology (containerlab file).",
                  no_args_is_help=True)

LabOpt = typer.Option(DEFAULT_LAB, "--lab", help="The containerlab topology file.")
NodeOpt = typer.Option(..., "--node", help="Node name in the topology.")
FRR_ROLES = ("leaf", "spine", "host")


def _topology(path: Path) -> Topology:
    try:
        return load(path)
    except TopologyError as e:
        fail(f"--{e}" if e.path == "lab" else f"{path}: {e}", 2)


def _node_role(topo: Topology, name: str) -> str:
    try:
        return topo.node(name).role
    except TopologyError as e:  # "node: 'x' is not a node of this lab (...)"
        fail(f"--{e}", 2)


@app.command("frr")
def frr(role: str = typer.Option(..., "--role", help="leaf, spine or host (checked against the topology)."),
        node: str = NodeOpt, lab: Path = LabOpt) -> None:
    """Print the node's integrated frr.conf (SONiC split mode)."""
    if role not in FRR_ROLES:
        fail(f"--role: {role!r} is not one of {', '.join(FRR_ROLES)}", 2)
    topo = _topology(lab)
    actual = _node_role(topo, node)
    if actual != role:
        fail(f"--role: {role!r} does not match node {node!r}, which is a {actual} in {lab}", 2)
    sys.stdout.write(render_frr(topo, node))


@app.command("l3fab")
def l3fab(node: str = NodeOpt, lab: Path = LabOpt) -> None:
    """Print the node's l3fab YAML (hosts; leaves and spines whose engine is l3fab)."""
    topo = _topology(lab)
    _node_role(topo, node)
    try:
        sys.stdout.write(render_l3fab(topo, node))
    except RenderError as e:
        fail(f"--node: {e}", 2)


@app.command("all")
def render_all(out: Optional[Path] = typer.Option(None, "--out",
                                                  help="Directory (default: generated/ next to the lab file)."),
               lab: Path = LabOpt) -> None:
    """Write every node's files to OUT/<node>/: the files the topology's binds name."""
    topo = _topology(lab)
    target = out if out is not None else lab.parent / "generated"
    try:
        written = write_all(topo, target)
    except OSError as e:
        fail(f"--out: {str(target)!r} cannot be written ({e.strerror})", 2)
    sys.stdout.write(f"{len(written)} files for {len(topo.nodes)} nodes in {target}\n")
