"""Per-node configuration rendered from the lab topology (:mod:`lab.topology`).

- FRR (SONiC split mode, one ``frr.conf``) for spines, leaves and FRR hosts, from the
  Jinja2 templates in ``templates/frr/``;
- l3fab node YAML (``speaker.config``'s schema) for hosts, and for fabric nodes whose
  engine is l3fab;
- SONiC ``config_db`` settings and the apply script for ``sonic-vs`` containers;
- the commands that give endpoints their addresses and hosts their tenants.

:func:`write_all` writes every node's files to ``<out>/<node>/``, the paths the
containerlab file binds into the containers.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .topology import Node, Topology

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "frr"
CONTAINER_DIR = "/etc/l3fab"  # where the clab file binds generated files in a container
STATE_FILE = "/var/lib/l3fab/intent.json"
KEEPALIVE, HOLD = 3, 9
MAXIMUM_PATHS = 64
HOST_MAX_UNICAST = 8  # a host announces one locator in IPv6 unicast
HOST_MAX_VPN = 4096  # default VPN routes per host session (label l3fab.max-prefix)
RESTART_MINUTES = 1  # FRR's maximum-prefix restart unit is minutes
FAMILIES = ["ipv6", "vpnv4", "vpnv6"]
GATEWAY4, GATEWAY6 = "169.254.0.1", "fe80::1"


class RenderError(ValueError):
    """A node that cannot be rendered this way: one line naming the node and why."""


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _source(topology: Topology) -> str:
    return Path(topology.source).name if topology.source else topology.name


def _host_policy(topology: Topology, host: Node) -> dict[str, Any]:
    """Names and limits of the per-host filters a leaf applies."""
    return {"locator": host.locator, "locator_list": f"HOST-{host.name}-LOCATOR",
            "sid_list": f"HOST-{host.name}-SIDS", "vpn6_in": f"HOST-{host.name}-VPN6-IN",
            "max_unicast": HOST_MAX_UNICAST, "max_vpn": host.max_prefix or HOST_MAX_VPN}


def _sessions(topology: Topology, node: Node) -> list[dict[str, Any]]:
    out = []
    for a in node.neighbors:
        peer = topology.node(a.peer)
        host = _host_policy(topology, peer) if node.role == "leaf" and peer.role == "host" else None
        out.append({"ifname": a.ifname, "peer": a.peer, "peer_asn": a.peer_asn, "peer_role": a.peer_role,
                    "host": host})
    return out


def render_frr(topology: Topology, node_name: str) -> str:
    """The node's integrated ``frr.conf`` (spine, leaf, or a host that runs FRR)."""
    node = topology.node(node_name)
    if node.role == "endpoint":
        raise RenderError(f"node {node_name!r} is a tenant endpoint: it runs no BGP")
    template = _env().get_template(f"{node.role}.conf.j2")
    return template.render(node=node, source=_source(topology), sessions=_sessions(topology, node),
                           timers={"keepalive": KEEPALIVE, "hold": HOLD}, maximum_paths=MAXIMUM_PATHS,
                           restart_minutes=RESTART_MINUTES)


def l3fab_config(topology: Topology, node_name: str) -> dict[str, Any]:
    """The node's l3fab configuration as a dict (``speaker.config``'s YAML schema)."""
    node = topology.node(node_name)
    if node.role == "endpoint":
        raise RenderError(f"node {node_name!r} is a tenant endpoint: it runs no l3fab")
    neighbors = []
    for a in node.neighbors:
        n: dict[str, Any] = {"name": a.peer, "interface": a.ifname, "remote-as": a.peer_asn,
                             "families": list(FAMILIES), "ttl-security": True}
        peer = topology.node(a.peer)
        if node.role == "leaf" and peer.role == "host":
            n["host-locator"] = peer.locator
            n["max-prefix"] = {"limit": peer.max_prefix or HOST_MAX_VPN, "restart": RESTART_MINUTES * 60}
        neighbors.append(n)
    cfg: dict[str, Any] = {"router-id": node.router_id, "asn": node.asn, "hostname": node.name, "role": node.role,
                           "multipath-relax": True, "maximum-paths": MAXIMUM_PATHS, "mrai": 0,
                           "defaults": {"hold-time": HOLD, "connect-retry": 1}}
    if node.role == "host":
        cfg["tenancy"] = {"fabric-asn": topology.fabric_asn, "locator": node.locator, "state-file": STATE_FILE}
        # Endpoints must never reach any underlay address: every locator and loopback of
        # the fabric, listed exactly.  The endpoint links' MTU is the file's (both ends agree).
        underlay = sorted({n.locator for n in topology.hosts} | {n.loopback for n in topology.nodes if n.loopback},
                          key=lambda p: (p != node.locator, p))
        dataplane: dict[str, Any] = {"underlay-prefixes": underlay}
        mtus = [e.mtu for e in topology.endpoints_of(node.name) if e.mtu]
        if mtus:
            dataplane["endpoint-mtu"] = min(mtus)
        cfg["dataplane"] = dataplane
    else:
        cfg["networks"] = [node.loopback]
    cfg["neighbors"] = neighbors
    cfg["fib"] = {"enabled": True}
    return cfg


def render_l3fab(topology: Topology, node_name: str) -> str:
    """The node's l3fab YAML."""
    node = topology.node(node_name)
    header = (f"# {node.name}: {node.role}, AS {node.asn} - generated by `l3fab render l3fab` from "
              f"{_source(topology)}\n# Do not edit: change the topology file and render again.\n")
    return header + yaml.safe_dump(l3fab_config(topology, node_name), sort_keys=False)


def render_config_db(topology: Topology, node_name: str) -> str:
    """SONiC config_db settings for a fabric node (merged with ``sonic-cfggen --write-to-db``):
    split routing config, MTU and admin state per port, link-local-only routed ports
    (unnumbered), Loopback0."""
    node = topology.node(node_name)
    if not node.fabric:
        raise RenderError(f"node {node_name!r} is a {node.role}: config_db is for SONiC leaves and spines")
    db = {"DEVICE_METADATA": {"localhost": {"hostname": node.name, "bgp_asn": str(node.asn),
                                            "docker_routing_config_mode": "split"}},
          "LOOPBACK_INTERFACE": {"Loopback0": {}, f"Loopback0|{node.loopback}": {}},
          "PORT": {a.ifname: {"admin_status": "up", "mtu": str(a.mtu)} for a in node.neighbors},
          "INTERFACE": {a.ifname: {"ipv6_use_link_local_only": "enable"} for a in node.neighbors}}
    return json.dumps(db, indent=4, sort_keys=True) + "\n"


def render_sonic_apply(topology: Topology, node_name: str) -> str:
    node = topology.node(node_name)
    paths = {"config_db": f"{CONTAINER_DIR}/config_db.json", "frr": f"{CONTAINER_DIR}/frr.conf"}
    return _env().get_template("sonic-vs-apply.sh.j2").render(node=node, source=_source(topology), paths=paths)


def endpoint_commands(topology: Topology, name: str) -> list[list[str]]:
    """``ip`` commands that give an endpoint its /32 and /128 and the host as gateway."""
    e = topology.endpoint(name)
    dev = e.port.ifname
    cmds = [["ip", "link", "set", "dev", dev, "up"]]
    if e.ipv4:
        cmds += [["ip", "address", "add", f"{e.ipv4}/32", "dev", dev],
                 ["ip", "route", "add", f"{GATEWAY4}/32", "dev", dev],
                 ["ip", "route", "add", "default", "via", GATEWAY4, "dev", dev]]
    if e.ipv6:
        cmds += [["ip", "-6", "address", "add", f"{e.ipv6}/128", "dev", dev],
                 ["ip", "-6", "route", "add", "default", "via", GATEWAY6, "dev", dev]]
    return cmds


@dataclass(frozen=True)
class IntentRequest:
    """One tenant or endpoint of a host: the API request that creates it, and the
    ``l3fab`` command an operator would type for the same."""

    kind: str  # "tenant" or "endpoint"
    name: str
    method: str
    params: dict[str, Any]
    command: tuple[str, ...]


def intent_requests(topology: Topology, host: str) -> list[IntentRequest]:
    """The API requests that create the host's tenants and endpoints."""
    node = topology.node(host)
    if node.role != "host":
        raise RenderError(f"node {host!r} is a {node.role}: only hosts have tenants")
    eps = topology.endpoints_of(host)
    out = []
    for t in topology.tenants:
        if any(e.tenant == t.name for e in eps):
            out.append(IntentRequest("tenant", t.name, "tenant_create", {"name": t.name, "vni": t.vni},
                                     ("l3fab", "tenant", "create", t.name, "--vni", str(t.vni))))
    for e in eps:
        cmd = ["l3fab", "endpoint", "add", e.name, "--tenant", e.tenant, "--interface", e.host_port.ifname]
        params: dict[str, Any] = {"name": e.name, "tenant": e.tenant, "interface": e.host_port.ifname}
        if e.ipv4:
            cmd += ["--ipv4", e.ipv4]
            params["ipv4"] = e.ipv4
        if e.ipv6:
            cmd += ["--ipv6", e.ipv6]
            params["ipv6"] = e.ipv6
        out.append(IntentRequest("endpoint", e.name, "endpoint_add", params, tuple(cmd)))
    return out


def intent_commands(topology: Topology, host: str) -> list[list[str]]:
    """``l3fab`` commands that create the host's tenants and endpoints."""
    return [list(r.command) for r in intent_requests(topology, host)]


def _script(node: Node, topology: Topology, lines: list[str]) -> str:
    return "\n".join([f"#!/bin/sh\n# {node.name}: generated by `l3fab render` from {_source(topology)} - do not edit.",
                      "set -e", *lines]) + "\n"


def render_endpoint(topology: Topology, name: str) -> str:
    return _script(topology.node(name), topology, [shlex.join(c) for c in endpoint_commands(topology, name)])


def render_intent(topology: Topology, host: str) -> str:
    """Shell script: wait for the local l3fab API, then create what is missing."""
    lines = ['i=0; until l3fab tenant list >/dev/null 2>&1; do',
             '    i=$((i + 1)); [ "$i" -lt 60 ] || { echo "l3fab API not up" >&2; exit 1; }; sleep 1',
             'done']
    for c in intent_commands(topology, host):
        probe = ["l3fab", c[1], "show", c[3]]
        lines.append(f"{shlex.join(probe)} >/dev/null 2>&1 || {shlex.join(c)}")
    return _script(topology.node(host), topology, lines)


def files_for(topology: Topology, node_name: str) -> dict[str, str]:
    """The generated files of one node: file name -> content."""
    node = topology.node(node_name)
    if node.role == "endpoint":
        return {"endpoint.sh": render_endpoint(topology, node_name)}
    files = {}
    if node.engine == "frr":
        files["frr.conf"] = render_frr(topology, node_name)
    else:
        files["l3fab.yaml"] = render_l3fab(topology, node_name)
    if node.role == "host" and node.engine == "l3fab":
        files["intent.sh"] = render_intent(topology, node_name)
    if node.kind == "sonic-vs":
        files["config_db.json"] = render_config_db(topology, node_name)
        files["apply.sh"] = render_sonic_apply(topology, node_name)
    return files


def write_all(topology: Topology, out_dir: str | Path) -> list[Path]:
    """Write every node's files to ``out_dir/<node>/``; returns the paths written."""
    out = Path(out_dir)
    written = []
    for node in topology.nodes:
        d = out / node.name
        d.mkdir(parents=True, exist_ok=True)
        for fname, text in files_for(topology, node.name).items():
            p = d / fname
            p.write_text(text)
            if fname.endswith(".sh"):
                p.chmod(0o755)
            written.append(p)
    return written
