"""``make demo``: the Clos lab of ``lab/clos-topology.clab.yml``, up as network namespaces.

Two spines and four leaves run FRR 8.4 (the SONiC stand-in) with their rendered
frr.conf, four dual-homed hosts run l3fab with the kernel dataplane, and two tenants
with the same addresses (A and B, 10.0.0.N / fd00::N) get an endpoint behind every
host. The demo waits for BGP and the VPN routes, prints the ping matrix (same tenant
reached, other tenant isolated, read from the receivers' own counters), says where to
look next, and leaves the lab running until ``l3fab lab down``.

Run as root:  ``make demo``  (or ``.venv/bin/python -m l3fab.cli.demo``); running it again
while the lab is up only prints the matrix again.
"""
from __future__ import annotations

import os
import sys
import time

from l3fab.lab import deploy, pingmatrix
from l3fab.lab.labstate import LabStateError, require
from l3fab.lab.topology import DEFAULT_LAB, load

from .lab import l3fab_command, print_matrix, say
from .output import console


def main() -> int:
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces)", file=sys.stderr)
        return 2
    if "COLUMNS" not in os.environ:
        console.width = 120  # the matrix needs room; a terminal may say less
    t0 = time.monotonic()
    topo = load(DEFAULT_LAB)
    console.rule(f"[bold]l3fab Clos lab {topo.name}: {DEFAULT_LAB.relative_to(DEFAULT_LAB.parents[1])} "
                 "as network namespaces")
    try:
        deploy.up(topo, say=say)
    except (LabStateError, deploy.DeployError) as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False)
        console.print("inspect with `lab status`, remove with `lab down`", highlight=False)
        return 1
    console.rule("[bold]ping matrix: every endpoint to every endpoint, IPv4 and IPv6")
    results = pingmatrix.run(require(topo.name), topo)
    ok = print_matrix(topo, results)["ok"]
    cmd = l3fab_command()
    hints = [
        (f"{cmd} lab status", "nodes, sessions, VPN routes per host VRF"),
        (f"{cmd} lab exec host1 -- l3fab show rib", "host1's Loc-RIB: locators, VPN routes with SIDs"),
        (f"{cmd} lab exec host1 -- l3fab show vrf", "tenants A and B: table, RD, route target"),
        (f"{cmd} lab exec host1 -- l3fab show fib --vrf A", "A's kernel table: seg6 encap to each SID"),
        (f"{cmd} lab exec leaf1 -- vtysh -c 'show bgp ipv6 vpn'", "the SONiC/FRR leaf's view"),
        (f"{cmd} lab exec ep-a1 -- ping -c 2 10.0.0.3", "from inside tenant A's endpoint"),
        (f"{cmd} lab ping-matrix", "run the matrix again"),
        (f"{cmd} lab down", "remove every namespace, process and file of the lab"),
    ]
    console.rule("[bold]where to look next")
    width = max(len(h) for h, _ in hints)
    for h, why in hints:
        console.print(f"  [bold]{h:<{width}}[/]  [dim]# {why}[/]", highlight=False, soft_wrap=True)
    console.print(f"\ndemo took {time.monotonic() - t0:.1f} s; the lab keeps running until "
                  f"`{cmd} lab down`.", highlight=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
