"""The lab topology: a containerlab ``*.clab.yml`` file read into plain frozen dataclasses.

One file describes the lab for containerlab and for everything here: the renderer
(:mod:`lab.render`) and the namespace deployer read the :class:`Topology` this module
builds. What containerlab does not know (ASNs, router ids, loopbacks, locators, tenants,
endpoint addresses, the engine of a node) is read from the nodes' ``l3fab.*`` labels,
merged the way containerlab merges them: ``topology.defaults`` < ``kinds.<kind>`` <
``groups.<group>`` < the node itself.

Interface names: containerlab names a link end ``ethN``. On ``sonic-vs`` the port behind
``ethN`` is ``Ethernet<4(N-1)>`` (SONiC's virtual switch maps one port per four lanes), and
that is the name FRR and config_db use, so :attr:`Port.ifname` carries it. A namespace
deployment names its veths by ``ifname`` so the same rendered configs work there.

Every problem is one :class:`TopologyError` line naming the field and the value.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

DEFAULT_LAB = Path(__file__).resolve().parent / "clos-topology.clab.yml"
LABEL = "l3fab."
ROLES = ("spine", "leaf", "host", "endpoint")
FABRIC_ROLES = ("spine", "leaf")
KINDS = ("sonic-vs", "linux")
ENGINES = {"spine": ("frr", "l3fab"), "leaf": ("frr", "l3fab"), "host": ("l3fab", "frr"), "endpoint": ("none",)}
# Which node roles a link may join (order-free) - anything else is a cabling mistake.
LINK_ROLES = ({"spine", "leaf"}, {"leaf", "host"}, {"host", "endpoint"})
DEFAULT_MTU = 9500  # what containerlab gives a veth link that names no mtu
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_SONIC_ETH = re.compile(r"^eth([1-9][0-9]*)$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class TopologyError(ValueError):
    """A problem in the topology file: ``<field>: <value> <problem>`` on one line."""

    def __init__(self, path: str, value: Any, problem: str) -> None:
        self.path = path
        self.value = value
        super().__init__(f"{path}: {value!r} {problem}")


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Port:
    """One end of a link: ``clab`` is containerlab's name (``eth1``), ``ifname`` the
    device name inside the node (``Ethernet0`` on sonic-vs, else the same)."""

    node: str
    clab: str
    ifname: str


@dataclass(frozen=True)
class Link:
    a: Port
    b: Port
    mtu: int

    @property
    def endpoints(self) -> tuple[Port, Port]:
        return (self.a, self.b)

    def other(self, node: str) -> Port:
        return self.b if self.a.node == node else self.a


@dataclass(frozen=True)
class Adjacency:
    """A directly connected BGP neighbour, seen from one node: our port, the peer's."""

    port: Port
    peer: str
    peer_port: Port
    peer_role: str
    peer_asn: int
    mtu: int

    @property
    def ifname(self) -> str:
        return self.port.ifname


@dataclass(frozen=True)
class Tenant:
    name: str
    vni: int


@dataclass(frozen=True)
class Endpoint:
    """A tenant endpoint node and the host it hangs off (``host_port`` is the host's
    side of the link: the interface l3fab attaches the endpoint to)."""

    name: str
    tenant: str
    vni: int
    ipv4: str | None
    ipv6: str | None
    host: str
    host_port: Port
    port: Port
    mtu: int


@dataclass(frozen=True)
class Node:
    """A lab node. Fabric nodes and hosts carry BGP facts; endpoints carry their
    tenant and addresses (see :class:`Endpoint`). ``neighbors`` are the node's BGP
    sessions, one per link to a spine, leaf or host, in interface order."""

    name: str
    kind: str
    role: str
    engine: str
    image: str = ""
    asn: int | None = None
    router_id: str | None = None
    loopback: str | None = None
    locator: str | None = None
    rack: str | None = None
    max_prefix: int | None = None
    tenant: str | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    ports: tuple[Port, ...] = ()
    neighbors: tuple[Adjacency, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    binds: tuple[str, ...] = ()

    @property
    def fabric(self) -> bool:
        return self.role in FABRIC_ROLES

    @property
    def uplinks(self) -> tuple[Adjacency, ...]:
        """A host's sessions to its leaves (for other roles: toward the next tier up)."""
        up = {"host": "leaf", "leaf": "spine"}.get(self.role)
        return tuple(a for a in self.neighbors if a.peer_role == up)

    @property
    def downlinks(self) -> tuple[Adjacency, ...]:
        down = {"spine": "leaf", "leaf": "host"}.get(self.role)
        return tuple(a for a in self.neighbors if a.peer_role == down)

    def label(self, key: str, default: str | None = None) -> str | None:
        return dict(self.labels).get(key, default)


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    tenants: tuple[Tenant, ...]
    endpoints: tuple[Endpoint, ...]
    fabric_asn: int
    source: str = field(default="", compare=False)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise TopologyError("node", name, f"is not a node of this lab ({', '.join(n.name for n in self.nodes)})")

    def role(self, role: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == role)

    @property
    def spines(self) -> tuple[Node, ...]:
        return self.role("spine")

    @property
    def leaves(self) -> tuple[Node, ...]:
        return self.role("leaf")

    @property
    def hosts(self) -> tuple[Node, ...]:
        return self.role("host")

    def tenant(self, name: str) -> Tenant:
        for t in self.tenants:
            if t.name == name:
                return t
        raise TopologyError("tenant", name, "is not a tenant of this lab")

    def endpoint(self, name: str) -> Endpoint:
        for e in self.endpoints:
            if e.name == name:
                return e
        raise TopologyError("endpoint", name, "is not an endpoint of this lab")

    def endpoints_of(self, host: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.host == host)


# ------------------------------------------------------------------ parsing


def load(path: str | Path = DEFAULT_LAB) -> Topology:
    """Read and check a ``*.clab.yml`` file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError("lab", str(path), f"cannot be read ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise TopologyError("lab", str(path), f"is not valid YAML{where}") from None
    return parse(data, source=str(path))


def parse(data: Any, source: str = "") -> Topology:
    """Check a parsed clab document and build the :class:`Topology`."""
    if not isinstance(data, dict):
        raise TopologyError("(top level)", data, "is not a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise TopologyError("name", name, "is not a lab name")
    topo = _mapping("topology", data.get("topology"))
    raw_nodes = _mapping("topology.nodes", topo.get("nodes"))
    if not raw_nodes:
        raise TopologyError("topology.nodes", raw_nodes, "has no nodes")
    defaults = _mapping("topology.defaults", topo.get("defaults") or {})
    kinds = _mapping("topology.kinds", topo.get("kinds") or {})
    groups = _mapping("topology.groups", topo.get("groups") or {})

    merged = {n: _merged_node(n, spec, defaults, kinds, groups) for n, spec in raw_nodes.items()}
    default_labels = _labels("topology.defaults.labels", defaults.get("labels"))
    fabric_asn = _asn("topology.defaults.labels.l3fab.fabric-asn", _need(
        default_labels, "fabric-asn", "topology.defaults.labels"))
    tenants = (_tenants("topology.defaults.labels.l3fab.tenants", default_labels["tenants"])
               if "tenants" in default_labels else {})

    facts = {n: _node_facts(n, m, tenants) for n, m in merged.items()}
    links = _links(topo.get("links"), facts)
    _check_unique(facts)
    _check_spines_share_asn(facts)

    ports: dict[str, list[Port]] = {n: [] for n in facts}
    for link in links:
        for p in link.endpoints:
            ports[p.node].append(p)
    nodes = []
    endpoints = []
    for n, f in facts.items():
        adj = []
        for link in links:
            if n not in (link.a.node, link.b.node):
                continue
            mine = link.a if link.a.node == n else link.b
            peer = link.other(n)
            pf = facts[peer.node]
            if pf["role"] != "endpoint" and f["role"] != "endpoint":
                adj.append(Adjacency(mine, peer.node, peer, pf["role"], pf["asn"], link.mtu))
        _check_wiring(n, f, adj)
        if f["role"] == "endpoint":
            endpoints.append(_endpoint(n, f, links, facts, tenants))
        nodes.append(Node(
            name=n, kind=f["kind"], role=f["role"], engine=f["engine"], image=f["image"], asn=f["asn"],
            router_id=f["router_id"], loopback=f["loopback"], locator=f["locator"], rack=f["rack"],
            max_prefix=f["max_prefix"], tenant=f["tenant"], ipv4=f["ipv4"], ipv6=f["ipv6"],
            ports=tuple(ports[n]), neighbors=tuple(adj), labels=tuple(sorted(f["labels"].items())),
            binds=f["binds"]))
    _check_endpoint_addresses(endpoints)
    return Topology(name=name, nodes=tuple(nodes), links=tuple(links),
                    tenants=tuple(Tenant(t, v) for t, v in tenants.items()),
                    endpoints=tuple(endpoints), fabric_asn=fabric_asn, source=source)


# ------------------------------------------------------------------ helpers


def _mapping(path: str, v: Any) -> dict:
    if not isinstance(v, dict):
        raise TopologyError(path, v, "is not a mapping")
    return v


def _need(labels: Mapping[str, str], key: str, where: str) -> str:
    if key not in labels:
        raise TopologyError(f"{where}.{LABEL}{key}", None, "is required")
    return labels[key]


def _labels(path: str, v: Any) -> dict[str, str]:
    """The ``l3fab.*`` labels without their prefix, values as strings."""
    if v is None:
        return {}
    v = _mapping(path, v)
    out = {}
    for k, val in v.items():
        if not str(k).startswith(LABEL):
            continue
        if isinstance(val, bool) or not isinstance(val, (str, int, float)) or val == "":
            raise TopologyError(f"{path}.{k}", val, "is not a non-empty string or number")
        out[str(k)[len(LABEL):]] = str(val)
    return out


def _merged_node(name: str, spec: Any, defaults: dict, kinds: dict, groups: dict) -> dict:
    """containerlab's inheritance for the keys we read: kind, image, labels, binds."""
    where = f"topology.nodes.{name}"
    spec = {} if spec is None else _mapping(where, spec)
    group = spec.get("group")
    gspec: dict = {}
    if group is not None:
        if group not in groups:
            raise TopologyError(f"{where}.group", group, "is not defined under topology.groups")
        gspec = _mapping(f"topology.groups.{group}", groups[group])
    kind = spec.get("kind", gspec.get("kind", defaults.get("kind")))
    if kind not in KINDS:
        raise TopologyError(f"{where}.kind", kind, f"is not a supported kind ({', '.join(KINDS)})")
    kspec = _mapping(f"topology.kinds.{kind}", kinds.get(kind) or {})
    labels: dict[str, str] = {}
    for lpath, layer in (("topology.defaults", defaults), (f"topology.kinds.{kind}", kspec),
                         (f"topology.groups.{group}", gspec), (where, spec)):
        labels.update(_labels(f"{lpath}.labels", layer.get("labels")))
    image = spec.get("image", gspec.get("image", kspec.get("image", defaults.get("image", ""))))
    binds = spec.get("binds", gspec.get("binds", kspec.get("binds", defaults.get("binds", []))))
    if not isinstance(binds, list) or not all(isinstance(b, str) for b in binds):
        raise TopologyError(f"{where}.binds", binds, "is not a list of strings")
    return {"kind": kind, "image": str(image or ""), "labels": labels, "binds": tuple(binds), "where": where}


def _asn(path: str, v: Any) -> int:
    text = str(v).strip()
    if not text.isdigit() or not 1 <= int(text) <= 0xFFFFFFFF:
        raise TopologyError(path, v, "is not an AS number (1-4294967295)")
    return int(text)


def _ipv4(path: str, v: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise TopologyError(path, v, "is not an IPv4 address") from None


def _ipv6_prefix(path: str, v: str, *, exact: int | None = None, max_len: int = 128) -> str:
    try:
        net = ipaddress.IPv6Network(v, strict=True)
    except ValueError:
        raise TopologyError(path, v, "is not an IPv6 prefix (host bits must be zero)") from None
    if exact is not None and net.prefixlen != exact:
        raise TopologyError(path, v, f"is not a /{exact}")
    if net.prefixlen > max_len:
        raise TopologyError(path, v, f"is longer than /{max_len}")
    return str(net)


def _host_address(path: str, v: str, version: int) -> str:
    text = v.split("/")[0] if v.endswith(("/32", "/128")) else v
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        raise TopologyError(path, v, f"is not an IPv{version} address")
    if addr.is_link_local or addr.is_loopback or addr.is_multicast or addr.is_unspecified:
        raise TopologyError(path, v, "is not usable by an endpoint (link-local, loopback, multicast or unspecified)")
    return str(addr)


def _tenants(path: str, v: str) -> dict[str, int]:
    out: dict[str, int] = {}
    vnis: dict[int, str] = {}
    for item in v.replace(",", " ").split():
        name, sep, vni = item.partition(":")
        if not sep or not _TENANT.match(name) or not vni.isdigit() or not 1 <= int(vni) <= 16777215:
            raise TopologyError(path, item, "is not NAME:VNI (VNI 1-16777215)")
        if name in out:
            raise TopologyError(path, item, f"repeats tenant {name!r}")
        if int(vni) in vnis:
            raise TopologyError(path, item, f"reuses VNI {vni} of tenant {vnis[int(vni)]!r}")
        out[name] = int(vni)
        vnis[int(vni)] = name
    if not out:
        raise TopologyError(path, v, "names no tenant (NAME:VNI ...)")
    return out


def _node_facts(name: str, m: dict, tenants: dict[str, int]) -> dict:
    labels, where = m["labels"], f"{m['where']}.labels"

    def lab(key: str) -> str:
        return _need(labels, key, where)

    role = lab("role")
    if role not in ROLES:
        raise TopologyError(f"{where}.{LABEL}role", role, f"is not one of {', '.join(ROLES)}")
    engines = ENGINES[role]
    engine = labels.get("engine", engines[0]) if role != "endpoint" else "none"
    if engine not in engines:
        raise TopologyError(f"{where}.{LABEL}engine", engine, f"is not one of {', '.join(engines)} for a {role}")
    f: dict[str, Any] = {"kind": m["kind"], "role": role, "engine": engine, "image": m["image"], "labels": labels,
                         "binds": m["binds"], "where": m["where"], "asn": None, "router_id": None,
                         "loopback": None, "locator": None, "rack": labels.get("rack"), "max_prefix": None,
                         "tenant": None, "ipv4": None, "ipv6": None}
    if role != "endpoint":
        f["asn"] = _asn(f"{where}.{LABEL}asn", lab("asn"))
        f["router_id"] = _ipv4(f"{where}.{LABEL}router-id", lab("router-id"))
    if role in FABRIC_ROLES:
        f["loopback"] = _ipv6_prefix(f"{where}.{LABEL}loopback", lab("loopback"), exact=128)
    if role == "host":
        f["locator"] = _ipv6_prefix(f"{where}.{LABEL}locator", lab("locator"), max_len=120)
        if "max-prefix" in labels:
            mp = labels["max-prefix"]
            if not mp.isdigit() or not 1 <= int(mp) <= 4294967295:
                raise TopologyError(f"{where}.{LABEL}max-prefix", mp, "is not a route count (1-4294967295)")
            f["max_prefix"] = int(mp)
    if role == "endpoint":
        tenant = lab("tenant")
        if tenant not in tenants:
            raise TopologyError(f"{where}.{LABEL}tenant", tenant,
                                f"is not a tenant in topology.defaults.labels.{LABEL}tenants ({', '.join(tenants)})")
        f["tenant"] = tenant
        if "ipv4" in labels:
            f["ipv4"] = _host_address(f"{where}.{LABEL}ipv4", labels["ipv4"], 4)
        if "ipv6" in labels:
            f["ipv6"] = _host_address(f"{where}.{LABEL}ipv6", labels["ipv6"], 6)
        if f["ipv4"] is None and f["ipv6"] is None:
            raise TopologyError(f"{where}.{LABEL}ipv4", None,
                                "is required (or l3fab.ipv6): an endpoint needs an address")
    return f


def _port(path: str, text: Any, facts: dict) -> Port:
    if isinstance(text, dict):
        node, ifname = text.get("node"), text.get("interface")
    elif isinstance(text, str) and text.count(":") == 1:
        node, ifname = text.split(":")
    else:
        raise TopologyError(path, text, "is not NODE:INTERFACE")
    if not isinstance(node, str) or node not in facts:
        raise TopologyError(path, text, f"names node {node!r}, which is not under topology.nodes")
    if not isinstance(ifname, str) or not _IFNAME.match(ifname):
        raise TopologyError(path, text, "has no valid interface name (1-15 of A-Z a-z 0-9 _ . -)")
    if facts[node]["kind"] == "sonic-vs":
        m = _SONIC_ETH.match(ifname)
        if not m:
            raise TopologyError(path, text, "is not ethN (N >= 1): sonic-vs data ports are eth1, eth2, ...")
        return Port(node, ifname, f"Ethernet{4 * (int(m.group(1)) - 1)}")
    return Port(node, ifname, ifname)


def _links(raw: Any, facts: dict) -> list[Link]:
    if not isinstance(raw, list) or not raw:
        raise TopologyError("topology.links", raw, "is not a non-empty list")
    links = []
    used: dict[tuple[str, str], int] = {}
    for i, item in enumerate(raw):
        path = f"topology.links[{i}]"
        item = _mapping(path, item)
        if item.get("type", "veth") != "veth":
            raise TopologyError(f"{path}.type", item["type"], "is not supported (only veth links)")
        eps = item.get("endpoints")
        if not isinstance(eps, list) or len(eps) != 2:
            raise TopologyError(f"{path}.endpoints", eps, "is not a list of two NODE:INTERFACE ends")
        a, b = (_port(f"{path}.endpoints[{j}]", e, facts) for j, e in enumerate(eps))
        for j, p in enumerate((a, b)):
            if (p.node, p.clab) in used:
                raise TopologyError(f"{path}.endpoints[{j}]", f"{p.node}:{p.clab}",
                                    f"is already used by topology.links[{used[(p.node, p.clab)]}]")
            used[(p.node, p.clab)] = i
        if a.node == b.node:
            raise TopologyError(f"{path}.endpoints", eps, "connects a node to itself")
        roles = {facts[a.node]["role"], facts[b.node]["role"]}
        if roles not in LINK_ROLES:
            raise TopologyError(f"{path}.endpoints", eps, "is not a spine-leaf, leaf-host or host-endpoint link")
        mtu = item.get("mtu", DEFAULT_MTU)
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 1280 <= mtu <= 65535:
            raise TopologyError(f"{path}.mtu", mtu, "is not an MTU (1280-65535)")
        links.append(Link(a, b, mtu))
    return links


def _check_unique(facts: dict) -> None:
    for key, label in (("router_id", "router-id"), ("loopback", "loopback"), ("locator", "locator")):
        seen: dict[str, str] = {}
        for n, f in facts.items():
            v = f[key]
            if v is None:
                continue
            if v in seen:
                raise TopologyError(f"{f['where']}.labels.{LABEL}{label}", v, f"is already used by {seen[v]}")
            seen[v] = n
    nets = [(ipaddress.IPv6Network(f["locator"]), n, f) for n, f in facts.items() if f["locator"]]
    nets += [(ipaddress.IPv6Network(f["loopback"]), n, f) for n, f in facts.items() if f["loopback"]]
    for i, (net, _n, f) in enumerate(nets):
        for other, on, _ in nets[:i]:
            if net.overlaps(other):
                what = "locator" if f["locator"] == str(net) else "loopback"
                raise TopologyError(f"{f['where']}.labels.{LABEL}{what}", str(net), f"overlaps {other} of {on}")
    asns: dict[int, str] = {}
    for n, f in facts.items():
        if f["role"] in ("leaf", "host"):
            if f["asn"] in asns:
                raise TopologyError(f"{f['where']}.labels.{LABEL}asn", f["asn"],
                                    f"is already used by {asns[f['asn']]} (RFC 7938: one ASN per leaf and per host)")
            asns[f["asn"]] = n
    spine_asns = {f["asn"] for f in facts.values() if f["role"] == "spine"}
    for _n, f in facts.items():
        if f["role"] in ("leaf", "host") and f["asn"] in spine_asns:
            raise TopologyError(f"{f['where']}.labels.{LABEL}asn", f["asn"], "is the spines' ASN")


def _check_spines_share_asn(facts: dict) -> None:
    spines = [(n, f) for n, f in facts.items() if f["role"] == "spine"]
    for _n, f in spines[1:]:
        if f["asn"] != spines[0][1]["asn"]:
            raise TopologyError(f"{f['where']}.labels.{LABEL}asn", f["asn"],
                                f"differs from {spines[0][0]}'s {spines[0][1]['asn']} "
                                "(RFC 7938: all spines share one ASN)")


def _check_wiring(name: str, f: dict, adj: list[Adjacency]) -> None:
    where = f["where"]
    if f["role"] == "host" and not any(a.peer_role == "leaf" for a in adj):
        raise TopologyError(where, name, "is a host with no link to a leaf")
    if f["role"] == "leaf" and not any(a.peer_role == "spine" for a in adj):
        raise TopologyError(where, name, "is a leaf with no link to a spine")
    peers = [a.peer for a in adj]
    for p in peers:
        if peers.count(p) > 1:
            raise TopologyError(where, name,
                                f"has {peers.count(p)} links to {p}; one session per neighbour is expected")


def _endpoint(name: str, f: dict, links: list[Link], facts: dict, tenants: dict[str, int]) -> Endpoint:
    mine = [lk for lk in links if name in (lk.a.node, lk.b.node)]
    if len(mine) != 1:
        raise TopologyError(f["where"], name,
                            f"is an endpoint with {len(mine)} links; it needs exactly one, to its host")
    link = mine[0]
    host_port = link.other(name)
    port = link.a if link.a.node == name else link.b
    return Endpoint(name=name, tenant=f["tenant"], vni=tenants[f["tenant"]], ipv4=f["ipv4"], ipv6=f["ipv6"],
                    host=host_port.node, host_port=host_port, port=port, mtu=link.mtu)


def _check_endpoint_addresses(endpoints: list[Endpoint]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for e in endpoints:
        for fam, addr in (("ipv4", e.ipv4), ("ipv6", e.ipv6)):
            if addr is None:
                continue
            key = (e.tenant, addr)
            if key in seen:
                raise TopologyError(f"topology.nodes.{e.name}.labels.{LABEL}{fam}", addr,
                                    f"is already used by {seen[key]} in tenant {e.tenant!r}")
            seen[key] = e.name
