"""A small RFC 7938 Clos in network namespaces: spines and leaves running l3fab or FRR.

Address plan (IPv6-only underlay, unnumbered links):

- spine i (1-based): AS 65000 (all spines share it), router-id 10.255.0.i,
  loopback 2001:db8:ffff::i/128; its link to leaf j is ``l<j>``
- leaf j: AS 65100+j, router-id 10.255.1.j, loopback 2001:db8:ffff:1::j/128,
  and a host locator 2001:db8:0:j::/64 it originates (standing in for a host behind it);
  its link to spine i is ``s<i>``
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from l3fab.lab.netns import Lab, Namespace
from l3fab.lab.peers.frr import FrrRouter
from l3fab.lab.peers.l3fab import L3fabNode

SPINE_AS = 65000
MTU = 9100


@dataclass
class FabricNode:
    name: str
    role: str  # spine | leaf
    index: int
    kind: str  # l3fab | frr
    ns: Namespace
    asn: int
    router_id: str
    loopback: str
    interfaces: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    l3fab: L3fabNode | None = None
    frr: FrrRouter | None = None
    extra_neighbors: list[dict] = field(default_factory=list)

    def kernel_route(self, prefix: str) -> dict | None:
        """``ip -j -6 route show <prefix>`` in this node (exact prefix), or None."""
        rows = self.ns.ip_json("-6", "route", "show", prefix)
        for r in rows:
            dst = r.get("dst", "")
            if dst == prefix or dst == prefix.split("/")[0]:
                return r
        return None

    def next_hop_devices(self, prefix: str) -> list[str]:
        """Devices of the route's next hops (one entry per ECMP member)."""
        r = self.kernel_route(prefix)
        if r is None:
            return []
        if "nexthops" in r:
            return sorted(nh.get("dev", "") for nh in r["nexthops"])
        return [r.get("dev", "")]

    def established(self) -> bool:
        if self.l3fab is not None:
            return all(n["state"] == "Established" for n in self.l3fab.api("neighbors"))
        assert self.frr is not None  # a node runs l3fab or FRR
        return self.frr.established()


def _l3fab_config(n: FabricNode, multipath_relax: bool) -> dict[str, Any]:
    neighbors = [{"name": ifname, "interface": ifname, "remote-as": "external",
                  "families": ["ipv6", "vpnv4", "vpnv6"], "connect-retry": 1, "hold-time": 9}
                 for ifname in n.interfaces]
    return {"router-id": n.router_id, "asn": n.asn, "role": n.role, "hostname": n.name,
            "multipath-relax": multipath_relax, "networks": n.networks,
            "neighbors": neighbors + n.extra_neighbors}


def _frr_config(n: FabricNode) -> str:
    # Zebra installs ECMP routes without kernel nexthop objects: with them, FRR 8.4 left
    # the kernel's group at one member after a link flap while its own RIB had two.
    lines = ["no zebra nexthop kernel enable",
             f"router bgp {n.asn}", f" bgp router-id {n.router_id}", " no bgp ebgp-requires-policy",
             " no bgp network import-check", " no bgp default ipv4-unicast",
             " bgp bestpath as-path multipath-relax"]
    lines += [f" neighbor {i} interface remote-as external" for i in n.interfaces]
    lines += [" address-family ipv6 unicast"]
    lines += [f"  network {p}" for p in n.networks]
    lines += [f"  neighbor {i} activate" for i in n.interfaces]
    lines += [" exit-address-family"]
    for afi in ("ipv4", "ipv6"):
        lines += [f" address-family {afi} vpn"]
        for i in n.interfaces:
            lines += [f"  neighbor {i} activate", f"  neighbor {i} attribute-unchanged next-hop"]
        lines += [" exit-address-family"]
    return "\n".join(lines) + "\n"


@dataclass
class Fabric:
    lab: Lab
    spines: list[FabricNode]
    leaves: list[FabricNode]

    @property
    def nodes(self) -> list[FabricNode]:
        return self.spines + self.leaves

    def node(self, name: str) -> FabricNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def all_established(self) -> bool:
        return all(n.established() for n in self.nodes)

    def ping(self, src: FabricNode, dst: str, count: int = 3) -> bool:
        r = self.lab.run(src.ns, ["ping", "-6", "-c", str(count), "-i", "0.2", "-W", "1", "-I",
                                  src.loopback.split("/")[0], dst], check=False)
        return r.returncode == 0

    def set_links(self, node: FabricNode, up: bool) -> None:
        for ifname in node.interfaces:
            node.ns.ip("link", "set", "dev", ifname, "up" if up else "down")


def build(lab: Lab, spines: list[str], leaves: list[str], *, multipath_relax: bool = True,
          leaf_extra: dict[int, list[dict]] | None = None) -> Fabric:
    """Create and start the fabric.  ``spines``/``leaves`` list each node's kind:
    ``"l3fab"`` or ``"frr"``.  ``leaf_extra`` adds neighbours to l3fab leaves (by index)."""
    sp = []
    for i, kind in enumerate(spines, 1):
        sp.append(FabricNode(f"spine{i}", "spine", i, kind, lab.add_namespace(f"spine{i}"), SPINE_AS,
                             f"10.255.0.{i}", f"2001:db8:ffff::{i}/128"))
    lf = []
    for j, kind in enumerate(leaves, 1):
        lf.append(FabricNode(f"leaf{j}", "leaf", j, kind, lab.add_namespace(f"leaf{j}"), 65100 + j,
                             f"10.255.1.{j}", f"2001:db8:ffff:1::{j}/128"))
    for s in sp:
        for leaf in lf:
            lab.link(s.ns, leaf.ns, f"l{leaf.index}", f"s{s.index}", mtu=MTU)
            s.interfaces.append(f"l{leaf.index}")
            leaf.interfaces.append(f"s{s.index}")
    for n in sp + lf:
        n.ns.ip("-6", "addr", "add", n.loopback, "dev", "lo")
        n.networks.append(n.loopback)
        if n.role == "leaf":
            n.networks.append(f"2001:db8:0:{n.index}::/64")
            n.extra_neighbors = list((leaf_extra or {}).get(n.index, []))
    for n in sp + lf:
        if n.kind == "frr":
            n.frr = FrrRouter(lab, n.ns).start(textwrap.dedent(_frr_config(n)))
        else:
            n.l3fab = L3fabNode(lab, n.ns, _l3fab_config(n, multipath_relax), log_level="info").start()
    return Fabric(lab, sp, lf)
