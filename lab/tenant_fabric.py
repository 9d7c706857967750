"""A one-rack tenant fabric in namespaces: two l3fab leaves, N l3fab hosts (each
dual-homed, unnumbered), tenant endpoints behind the hosts, optionally a rogue
host.  Used by the tenancy/dataplane tests and the convergence benchmark.

Address plan:

- leaf j: AS 65100+j, router-id 10.255.1.j; its link to host i is ``h<i>``, with a
  per-host filter (``host-locator``: only the host's locator in IPv6 unicast, VPN
  routes only with a next hop inside it) and GTSM;
- host i: AS 4200000000+i, router-id 10.255.2.i, locator 2001:db8:0:<i>::/64; its
  links are ``l1``/``l2``; its tenant intent is kept in ``<workdir>/host<i>-intent.json``;
- an endpoint is a namespace whose ``eth0`` is the far end of a veth (or a TAP
  held by :mod:`lab.tapvm`), addressed /32 and /128 with gateways 169.254.0.1 and
  fe80::1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from l3fab.lab.netns import Lab, Namespace, wait_until
from l3fab.lab.peers.l3fab import L3fabNode

FABRIC_ASN = 65000
HOST_AS_BASE = 4200000000
MTU = 9100
UNDERLAY = "2001:db8::/32"  # locators and switch loopbacks: endpoints never reach it


def locator(i: int) -> str:
    return f"2001:db8:0:{i}::/64"


@dataclass
class Host:
    index: int
    ns: Namespace
    node: L3fabNode
    endpoints: dict[str, "Endpoint"] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"host{self.index}"

    def api(self, method: str, **params: Any) -> Any:
        return self.node.api(method, **params)

    def vrf_routes(self, tenant: str) -> dict[str, dict]:
        """The tenant table as the kernel has it (``ip -j route show table T``), by prefix."""
        table = self.api("tenant_show", name=tenant)["table"]
        out = {}
        for fam in ("-4", "-6"):
            for r in self.ns.ip_json(fam, "route", "show", "table", str(table)):
                out[r["dst"]] = r
        return out


@dataclass
class Endpoint:
    name: str
    tenant: str
    host: Host
    ns: Namespace | None  # None: a TAP endpoint (its "inside" is a process)
    ifname: str
    ipv4: str | None
    ipv6: str | None


@dataclass
class TenantFabric:
    lab: Lab
    leaves: list[L3fabNode]
    hosts: list[Host]
    rogue: L3fabNode | None = None

    def host(self, i: int) -> Host:
        return self.hosts[i - 1]

    def established(self) -> bool:
        nodes = self.leaves + [h.node for h in self.hosts] + ([self.rogue] if self.rogue else [])
        return all(n["state"] == "Established" for node in nodes for n in node.api("neighbors"))

    def wait_established(self, timeout: float = 60) -> None:
        wait_until(self.established, timeout, 0.3, what="every session Established")

    def add_endpoint_ns(self, host: Host, name: str, tenant: str, ifname: str, ipv4: str | None = None,
                        ipv6: str | None = None, register: bool = True, rate_limit: str | None = None) -> Endpoint:
        """An endpoint namespace on a veth, configured like a VM: /32 and /128, default
        routes via the host's gateway addresses; then ``endpoint add`` on the host."""
        ns = self.lab.add_namespace(f"ep-{name}")
        self.lab.link(host.ns, ns, ifname, "eth0")
        configure_guest(ns, "eth0", ipv4, ipv6)
        ep = Endpoint(name, tenant, host, ns, ifname, ipv4, ipv6)
        host.endpoints[name] = ep
        if register:
            host.api("endpoint_add", name=name, tenant=tenant, interface=ifname, ipv4=ipv4, ipv6=ipv6,
                     rate_limit=rate_limit)
        return ep


def configure_guest(ns: Namespace, ifname: str, ipv4: str | None, ipv6: str | None) -> None:
    if ipv4:
        ns.ip("addr", "add", f"{ipv4}/32", "dev", ifname)
        ns.ip("route", "add", "169.254.0.1/32", "dev", ifname)
        ns.ip("route", "add", "default", "via", "169.254.0.1", "dev", ifname)
    if ipv6:
        ns.ip("-6", "addr", "add", f"{ipv6}/128", "dev", ifname, "nodad")
        ns.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", ifname)


def host_config(i: int, workdir, *, leaves: int = 2, tenancy: bool = True) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "router-id": f"10.255.2.{i}", "asn": HOST_AS_BASE + i, "role": "host", "hostname": f"host{i}",
        "multipath-relax": True,
        "neighbors": [{"name": f"l{j}", "interface": f"l{j}", "remote-as": "external",
                       "families": ["ipv6", "vpnv4", "vpnv6"], "connect-retry": 1, "hold-time": 9,
                       "ttl-security": True} for j in range(1, leaves + 1)],
    }
    if tenancy:
        cfg["tenancy"] = {"fabric-asn": FABRIC_ASN, "locator": locator(i),
                          "state-file": str(workdir / f"host{i}-intent.json")}
        cfg["dataplane"] = {"underlay-prefixes": [UNDERLAY]}
    else:
        cfg["networks"] = [locator(i)]
    return cfg


def leaf_config(j: int, hosts: list[int]) -> dict[str, Any]:
    return {
        "router-id": f"10.255.1.{j}", "asn": 65100 + j, "role": "leaf", "hostname": f"leaf{j}",
        "multipath-relax": True, "fib": {"enabled": True},
        "neighbors": [{"name": f"h{i}", "interface": f"h{i}", "remote-as": "external",
                       "families": ["ipv6", "vpnv4", "vpnv6"], "connect-retry": 1, "hold-time": 9,
                       "host-locator": locator(i), "ttl-security": True, "max-prefix": 1000,
                       "keep-pre-policy": True} for i in hosts],
    }


def build(lab: Lab, hosts: int = 3, *, rogue: int | None = None, leaves: int = 2) -> TenantFabric:
    """Start the leaves and hosts (and a rogue host with index ``rogue``: it runs l3fab
    without tenancy, so tests can make it announce anything)."""
    host_ids = list(range(1, hosts + 1)) + ([rogue] if rogue else [])
    leaf_ns = [lab.add_namespace(f"leaf{j}") for j in range(1, leaves + 1)]
    host_ns = {i: lab.add_namespace(f"host{i}") for i in host_ids}
    for j, lns in enumerate(leaf_ns, 1):
        for i in host_ids:
            lab.link(lns, host_ns[i], f"h{i}", f"l{j}", mtu=MTU)
    leaf_nodes = [L3fabNode(lab, lns, leaf_config(j, host_ids), log_level="info").start()
                  for j, lns in enumerate(leaf_ns, 1)]
    hs = []
    for i in range(1, hosts + 1):
        node = L3fabNode(lab, host_ns[i], host_config(i, lab.workdir, leaves=leaves), log_level="info").start()
        hs.append(Host(i, host_ns[i], node))
    rogue_node = None
    if rogue:
        rogue_node = L3fabNode(lab, host_ns[rogue], host_config(rogue, lab.workdir, leaves=leaves, tenancy=False),
                               log_level="info").start()
    return TenantFabric(lab, leaf_nodes, hs, rogue_node)
