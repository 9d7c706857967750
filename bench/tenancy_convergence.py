"""Endpoint convergence: ``l3fab endpoint add`` on host1 until the route is in host2's kernel.

Two fabrics of the same shape, built one after the other in one lab (the first is
stopped before the second starts)::

    leaf1 ──┬── host1 (endpoints added here, on veths)
    leaf2 ──┴── host2 (a netlink listener in its namespace: bench.tenancy_watch)

- **l3fab leaves**: :func:`lab.tenant_fabric.build` as the namespace tests use it
  (per-host filter, GTSM, the leaves' FIB on);
- **FRR leaves**: FRR 8.4 with the VPN transit config of :mod:`lab.fabric`
  (``attribute-unchanged next-hop``, no per-host filter) plus GTSM and
  ``advertisement-interval 0`` as the SONiC leaf template has them.

The hosts are the same l3fab hosts in both (tenancy and the Linux dataplane on).
Endpoints are added one at a time, alternately through the API (one request on
the unix socket) and the real CLI (``python -m l3fab.cli.main endpoint add``, a new
process each time), and each is timed from just before the request until the
listener on host2 saw both its /32 and its /128 arrive in the tenant table.
The next endpoint is added only after that.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from l3fab.lab.fabric import FabricNode, _frr_config
from l3fab.lab.netns import Lab, wait_until
from l3fab.lab.peers.frr import FrrRouter
from l3fab.lab.peers.l3fab import L3fabNode
from l3fab.lab.tenant_fabric import MTU, Host, build, host_config
from l3fab.speaker.api import call

from .procstat import OtherLoad
from .tenancy_watch import WatchLog
from .tenancy_watch import start as start_watch

TENANT, VNI = "bench", 100
ARRIVAL_TIMEOUT = 30.0
GAP = 0.05  # between an arrival and the next command: lets the fabric's last UPDATEs settle
VIAS = ("API", "CLI")


@dataclass
class ConvergenceResult:
    fabric: str
    via: str  # API | CLI
    samples: list[float] = field(default_factory=list)  # seconds, in the order the endpoints were added
    returned: list[float] = field(default_factory=list)  # seconds until the command returned
    missing: list[str] = field(default_factory=list)  # endpoints that never arrived
    other_cpu: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing and bool(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def max(self) -> float:
        return max(self.samples)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with ``pct`` % of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


@dataclass
class TwoHostFabric:
    label: str
    hosts: list[Host]
    stop: Callable[[], None]

    def established(self) -> bool:
        return all(n["state"] == "Established" for h in self.hosts for n in h.api("neighbors"))


def l3fab_leaves(lab: Lab) -> TwoHostFabric:
    fabric = build(lab, hosts=2)

    def stop() -> None:
        for node in fabric.leaves + [h.node for h in fabric.hosts]:
            node.stop()

    return TwoHostFabric("l3fab leaves", fabric.hosts, stop)


def frr_leaf_config(j: int, hosts: list[int], ns) -> str:
    node = FabricNode(f"fleaf{j}", "leaf", j, "frr", ns, 65100 + j, f"10.255.1.{j}", "",
                      interfaces=[f"h{i}" for i in hosts])
    # The session settings of templates/frr/_bgp.j2: the hosts run GTSM, so must the leaf.
    extra = [f"router bgp {node.asn}"]
    extra += [f" neighbor h{i} {setting}" for i in hosts
              for setting in ("ttl-security hops 1", "advertisement-interval 0")]
    return _frr_config(node) + "\n".join(extra) + "\n"


def frr_leaves(lab: Lab, hosts: int = 2) -> TwoHostFabric:
    """The fabric of :func:`lab.tenant_fabric.build` with FRR in place of the l3fab leaves."""
    ids = list(range(1, hosts + 1))
    leaf_ns = [lab.add_namespace(f"fleaf{j}") for j in (1, 2)]
    host_ns = {i: lab.add_namespace(f"fhost{i}") for i in ids}
    for j, lns in enumerate(leaf_ns, 1):
        for i in ids:
            lab.link(lns, host_ns[i], f"h{i}", f"l{j}", mtu=MTU)
    routers = [FrrRouter(lab, lns).start(frr_leaf_config(j, ids, lns)) for j, lns in enumerate(leaf_ns, 1)]
    hs = []
    for i in ids:
        cfg = host_config(i, lab.workdir)
        cfg["tenancy"]["state-file"] = str(lab.workdir / f"fhost{i}-intent.json")
        hs.append(Host(i, host_ns[i], L3fabNode(lab, host_ns[i], cfg, log_level="info").start()))

    def stop() -> None:
        for h in hs:
            h.node.stop()
        for r in routers:
            r.stop()

    return TwoHostFabric("FRR leaves", hs, stop)


FABRICS: dict[str, Callable[[Lab], TwoHostFabric]] = {"l3fab": l3fab_leaves, "frr": frr_leaves}


def endpoint_addresses(i: int) -> tuple[str, str]:
    return f"10.1.{i >> 8}.{i & 255}", f"fd00::1:{i:x}"


class Arrivals:
    """When each prefix was added to host2's tenant table, from the listener's records."""

    def __init__(self, log: WatchLog, table: int):
        self.log = log
        self.table = table
        self.added: dict[str, float] = {}

    def poll(self) -> None:
        for r in self.log.read():
            if r.get("op") == "add" and r["table"] == self.table:
                self.added.setdefault(r["prefix"], r["t"])
            elif "overflow" in r:
                raise RuntimeError("the route listener lost notifications (ENOBUFS)")

    def wait(self, prefixes: list[str], timeout: float) -> float | None:
        """The time the last of ``prefixes`` arrived, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if all(p in self.added for p in prefixes):
                return max(self.added[p] for p in prefixes)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.002)


def measure(lab: Lab, fabric: TwoHostFabric, endpoints: int, log=lambda text: None) -> list[ConvergenceResult]:
    """Add ``endpoints`` endpoints through each of API and CLI (alternately) on host1."""
    results = {via: ConvergenceResult(fabric.label, via) for via in VIAS}
    h1, h2 = fabric.hosts[:2]
    try:
        wait_until(fabric.established, 90, 0.3, what=f"{fabric.label}: every host session Established")
        for h in (h1, h2):
            h.api("tenant_create", name=TENANT, vni=VNI)
        table = h2.api("tenant_show", name=TENANT)["table"]
        watcher, watch = start_watch(lab, h2.ns, lab.workdir / f"watch-{h2.ns.name}.jsonl", [table],
                                     "--per-route")
        arrivals = Arrivals(watch, table)
        total = 2 * endpoints + 1
        for i in range(total):
            lab.link(h1.ns, h1.ns, f"vm-e{i}", f"vp-e{i}")
        load = OtherLoad([h.node.pid for h in fabric.hosts] + [watcher.pid])
        for i in range(total):
            via = VIAS[i % 2]
            seconds, returned = add_endpoint(h1, i, via, arrivals)
            if i == 0:
                continue  # warm-up: the first endpoint also creates the host's nft table, tc, ...
            res = results[via]
            if seconds is None:
                res.missing.append(f"e{i}")
            else:
                res.samples.append(seconds)
                res.returned.append(returned)
            time.sleep(GAP)
        other = load.cores()
        for res in results.values():
            res.other_cpu = other
        lab.stop(watcher)
    except Exception as exc:  # noqa: BLE001 - one fabric failing must not end the run
        for res in results.values():
            res.error = f"{type(exc).__name__}: {exc}"
    finally:
        fabric.stop()
    for res in results.values():
        log(f"  {res.fabric:12} {res.via}: {summary(res)}")
    return list(results.values())


def add_endpoint(host: Host, i: int, via: str, arrivals: Arrivals) -> tuple[float | None, float]:
    """Add endpoint ``e<i>``; (seconds until host2 has both its routes or None, seconds until
    the command returned)."""
    v4, v6 = endpoint_addresses(i)
    name, ifname = f"e{i}", f"vm-e{i}"
    started = time.time()
    if via == "API":
        call(host.node.socket, "endpoint_add", {"name": name, "tenant": TENANT, "interface": ifname,
                                                "ipv4": v4, "ipv6": v6})
    else:
        host.node.cli("endpoint", "add", name, "--tenant", TENANT, "--interface", ifname,
                      "--ipv4", v4, "--ipv6", v6)
    returned = time.time() - started
    arrived = arrivals.wait([f"{v4}/32", f"{v6}/128"], ARRIVAL_TIMEOUT)
    return (None if arrived is None else arrived - started), returned


def summary(res: ConvergenceResult) -> str:
    if not res.ok:
        return f"FAILED: {res.error or f'{len(res.missing)} endpoints never arrived'}"
    return f"median {res.median:.3f} s, p99 {res.p99:.3f} s, max {res.max:.3f} s ({len(res.samples)} endpoints)"
