"""Read a running namespace lab: BGP sessions per node, VPN routes per host VRF, the
processes' health and the kernel's ECMP routes. Used by ``lab up`` (to wait), ``lab
status`` and the tests; it only reads."""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

from l3fab.speaker.api import ApiClientError, call

from .labstate import LabState, NodeRecord, existing_netns, is_ours, vtysh_argv

QUERY_TIMEOUT = 10.0


class QueryError(RuntimeError):
    """A node's daemon did not answer (it is starting, or it died)."""


def vtysh(node: NodeRecord, *commands: str) -> str:
    args = []
    for c in commands:
        args += ["-c", c]
    proc = subprocess.run([*vtysh_argv(node), *args], capture_output=True, text=True,
                          timeout=QUERY_TIMEOUT)
    if proc.returncode != 0:
        raise QueryError(f"{node.name}: vtysh {' '.join(commands)!r}: {(proc.stderr or proc.stdout).strip()[:300]}")
    return proc.stdout


def vtysh_json(node: NodeRecord, command: str):
    out = vtysh(node, command)
    try:
        return json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        raise QueryError(f"{node.name}: {command!r} returned no JSON: {out[:200]!r}") from None


def api(node: NodeRecord, method: str, **params):
    assert node.socket is not None, f"{node.name} has no l3fab API socket"
    try:
        return call(node.socket, method, params, timeout=QUERY_TIMEOUT)
    except ApiClientError as e:
        raise QueryError(f"{node.name}: {e}") from None


def sessions(node: NodeRecord) -> dict[str, str]:
    """Neighbour -> BGP state, for every neighbour the node is configured with."""
    states = {p: "Idle" for p in node.peers}
    if node.engine == "frr":
        for peer, row in vtysh_json(node, "show bgp neighbors json").items():
            if isinstance(row, dict) and "bgpState" in row:
                states[peer] = row["bgpState"]
    elif node.engine == "l3fab":
        for row in api(node, "neighbors"):
            states[row["name"]] = row["state"]
    return states


def established(node: NodeRecord) -> tuple[int, int]:
    s = sessions(node)
    return sum(1 for v in s.values() if v == "Established"), len(s)


def vrf_routes(node: NodeRecord) -> dict[str, int]:
    """A host's tenant VRFs and how many remote VPN routes each imported."""
    return {row["name"]: row["imported_routes"] for row in api(node, "vrfs")}


def nexthop_devices(netns: str, prefix: str) -> list[str]:
    """The devices of the kernel route to exactly ``prefix`` in the main table (one per ECMP
    member; empty when there is no such route)."""
    fam = "-6" if ":" in prefix else "-4"
    out = subprocess.run(["ip", "-j", fam, "-n", netns, "route", "show", "exact", prefix],
                         capture_output=True, text=True, timeout=QUERY_TIMEOUT).stdout.strip()
    for r in json.loads(out) if out else []:
        if "nexthops" in r:
            return sorted(h.get("dev", "") for h in r["nexthops"])
        return [r.get("dev", "")]
    return []


@dataclass
class NodeStatus:
    name: str
    role: str
    engine: str
    netns: str
    namespace: bool
    processes: tuple[int, int]  # (ours and alive, recorded)
    sessions: dict[str, str] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)  # hosts: VRF -> imported VPN routes
    error: str = ""

    @property
    def established(self) -> int:
        return sum(1 for v in self.sessions.values() if v == "Established")

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "engine": self.engine, "netns": self.netns,
                "namespace": self.namespace, "processes_alive": self.processes[0],
                "processes": self.processes[1], "sessions": self.sessions,
                "established": self.established, "vrf_routes": self.routes, "error": self.error}


def status(state: LabState) -> list[NodeStatus]:
    present = existing_netns()
    out = []
    for n in state.nodes:
        procs = [p for p in state.processes if p.node == n.name]
        st = NodeStatus(n.name, n.role, n.engine, n.netns, n.netns in present,
                        (sum(1 for p in procs if is_ours(p)), len(procs)))
        try:
            if n.engine in ("frr", "l3fab"):
                st.sessions = sessions(n)
            if n.role == "host":
                st.routes = vrf_routes(n)
        except (QueryError, subprocess.TimeoutExpired) as e:
            st.error = str(e)
        out.append(st)
    return out
