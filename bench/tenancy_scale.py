"""Scale: one host importing N VPNv4 routes of 10 tenants into its kernel, and what it costs.

::

    gen (l3fab, route generator) ──┬── hut     l3fab host: tenancy + Linux dataplane, 10 tenants
                                   └── gobgpd  the same VPNv4 routes, held in gobgpd's RIB
    kbase-<shape>                  ip -batch: the same kernel routes, no BGP at all

- **The routes.** Route *i* belongs to tenant *i* mod 10 (so 10 tables of N/10);
  tenants reuse each other's addresses (route *i* is 10.64.0.0 + *i* div 10, in
  every tenant), each has its own RD (``<remote router-id>:<vni>``), its tenant's
  route target and label, and its own SID as next hop: 2001:db8:0:99::<i+1>, one
  endpoint per route, all behind one remote host whose locator 2001:db8:0:99::/64
  the generator also announces in IPv6 unicast (next-hop tracking needs it).
  So every route is its own UPDATE, as a fabric with a SID per endpoint sends them.
- **The generator** (an l3fab speaker) takes the whole table in one bulk
  ``announce`` call while its links are down; a link is brought up for one
  receiver at a time, so the first UPDATE follows Established at once.
- **hut** runs four l3fab configurations one after the other, each started fresh
  (:data:`MODES`): the host as deployed (tenancy, Linux dataplane); the same with
  the session's hold timer off (hold time 0), which shows the time the kernel work
  takes when no session reset interrupts it; the dataplane off (VRF import only);
  and a plain speaker without tenancy (RIB only). The kernel ones are timed from
  Established to the last route in the kernel, seen by :mod:`bench.tenancy_watch`
  (route notifications, no polling), must still hold every route 5 s later
  (``ip route show``), and end with a full stop that empties the kernel for the
  next; the others are polled through the API. Resident memory is read before the
  link comes up (10 tenants created, no routes) and once all routes are in.
- **gobgpd** receives the same table (BGP only: no kernel); its memory is the
  comparison for l3fab's bytes per route.
- **kbase-<shape>**, a fresh namespace each, installs the same kernel routes with
  ``ip -batch``, one file per tenant table (lines that fail with ENOMEM are sent
  again, as l3fab's FIB does): as l3fab shapes them (``encap seg6 mode encap.red
  segs <SID> dev l3fab0``), and in two other shapes that put the same forwarding
  in place (one nexthop object per SID; a metric derived from the SID). Those two
  show what the kernel can do when IPv4 routes that differ only in their encap do
  not share one ``fib_info`` hash bucket (see docs/benchmarks.md).
"""
from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from l3fab.lab.netns import Lab, Namespace, run_host, wait_until
from l3fab.lab.peers.l3fab import L3fabNode
from l3fab.lab.tenant_fabric import host_config
from l3fab.speaker.api import call

from .measure import MB
from .procstat import OtherLoad, peak_rss_bytes, rss_bytes
from .receivers import GoBgpReceiver
from .tenancy_watch import WatchLog
from .tenancy_watch import start as start_watch
from .topology import SENDER_AS, Link, connect

TENANTS = 10
VNI_BASE = 1000
FIRST = ipaddress.IPv4Address("10.64.0.0")
REMOTE_LOCATOR = ipaddress.IPv6Network("2001:db8:0:99::/64")
REMOTE_ROUTER_ID = "10.255.3.99"
HUT_ASN = 4200000001
HUT = Link("hut", 1, HUT_ASN)
GOBGPD = Link("gobgpd", 2, 65002)
ANCHOR = "l3fab0"  # the device l3fab's remote routes point at (dataplane.plan.ENCAP_DEVICE)
PROTO = 211
STALL = 180.0  # seconds without a new route in the kernel before giving up


@dataclass(frozen=True)
class Tenant:
    name: str
    vni: int
    table: int
    route_target: str
    label: int


@dataclass(frozen=True)
class TenantRoutes:
    """The N routes, route *i* in tenant *i* mod 10 (see the module docstring)."""

    count: int
    tenants: tuple[Tenant, ...]

    def __post_init__(self) -> None:
        if not TENANTS <= self.count <= 1_000_000:
            raise ValueError(f"routes: {self.count} is not between {TENANTS} and 1,000,000")

    def route(self, i: int) -> tuple[Tenant, str, str]:
        """(tenant, prefix, SID) of route ``i``."""
        tenant = self.tenants[i % len(self.tenants)]
        prefix = f"{FIRST + i // len(self.tenants)}/32"
        return tenant, prefix, str(REMOTE_LOCATOR.network_address + i + 1)

    def announce_specs(self) -> list[dict]:
        specs: list[dict] = [{"prefix": str(REMOTE_LOCATOR)}]
        for i in range(self.count):
            t, prefix, sid = self.route(i)
            specs.append({"prefix": prefix, "rd": f"{REMOTE_ROUTER_ID}:{t.vni}",
                          "route_targets": [t.route_target], "labels": [t.label], "next_hop": sid})
        return specs

    def batches(self, shape: str) -> dict[int, list[str]]:
        """``ip -batch`` lines per table for one route shape: ``l3fab``, ``nexthop`` or ``metric``."""
        out: dict[int, list[str]] = {t.table: [] for t in self.tenants}
        for i in range(self.count):
            t, prefix, sid = self.route(i)
            encap = f"encap seg6 mode encap.red segs {sid} dev {ANCHOR}"
            if shape == "nexthop":
                out[t.table].append(f"nexthop add id {i + 1} {encap}")
                line = f"route add {prefix} nhid {i + 1} table {t.table} proto {PROTO}"
            elif shape == "metric":
                line = f"route add {prefix} {encap} table {t.table} proto {PROTO} metric {i % 1024}"
            else:
                line = f"route add {prefix} {encap} table {t.table} proto {PROTO}"
            out[t.table].append(line)
        return out


MODES = {
    "kernel": "l3fab host (RIB, VRF import, kernel)",
    "kernel-nohold": "l3fab host, hold timer off (RIB, VRF import, kernel)",
    "import": "l3fab host, dataplane off (RIB, VRF import)",
    "bgp": "l3fab, no tenancy (RIB only)",
}
API_TIMEOUT = 900.0  # the speaker answers between two pieces of work; a long one must not fail the poll
STABLE = 5.0  # seconds the kernel must keep every route after the last arrived


class _PerRoute:
    """What the receivers' results share: resident memory before and after, per route."""

    routes: int
    rss_before: int
    rss_after: int

    @property
    def bytes_per_route(self) -> float:
        return (self.rss_after - self.rss_before) / self.routes


@dataclass
class ImportResult(_PerRoute):
    """An l3fab in hut taking the routes: into its kernel (``kernel``), its VRF import
    only (``import``: dataplane off) or its RIB only (``bgp``: no tenancy)."""

    mode: str
    routes: int
    seconds: float | None = None  # Established -> the last route in (the kernel, the VRFs, the RIB)
    first_s: float | None = None  # Established -> the first route in the kernel
    rib_s: float | None = None  # Established -> Adj-RIB-In complete (polled)
    held: int = 0  # kernel: counted with ip route show afterwards; else what the API counts
    most: int = 0  # kernel: the most routes the listener saw in the tables at once
    rss_before: int = 0
    rss_after: int = 0
    peak_rss: int = 0
    resets: int = 0  # hut's session came up again during the measurement
    api_stall: float = 0.0  # the longest the API took to answer a poll
    endpoint_add_s: float | None = None  # one `endpoint add` on the host holding every route
    errors: list[str] = field(default_factory=list)  # the dataplane's own errors, last few
    progress: list[tuple[float, int]] = field(default_factory=list)  # (s after Established, routes in the kernel)
    other_cpu: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None and self.held == self.routes


@dataclass
class BatchResult:
    """``ip -batch`` installing the same kernel routes in one shape."""

    shape: str
    routes: int
    seconds: float = 0.0
    per_table: list[float] = field(default_factory=list)  # seconds of each table's file, in order
    retries: int = 0  # rounds of lines sent again after ENOMEM
    in_kernel: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.in_kernel == self.routes


@dataclass
class HoldResult(_PerRoute):
    """gobgpd holding the routes (BGP only)."""

    routes: int
    seconds: float | None = None
    held: int = 0
    rss_before: int = 0
    rss_after: int = 0
    peak_rss: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.held == self.routes


@dataclass
class ScaleReport:
    routes: int
    batches: list[BatchResult] = field(default_factory=list)
    l3fab: list[ImportResult] = field(default_factory=list)
    gobgpd: HoldResult | None = None


def count_routes(ns: Namespace, tables) -> int:
    """Routes with a destination in the given tables (``ip route show``: fast even for 100,000)."""
    total = 0
    for table in tables:
        out = ns.ip("-4", "route", "show", "table", str(table)).stdout
        total += sum(1 for line in out.splitlines() if line[:1].isdigit())
    return total


def add_anchor(ns: Namespace) -> None:
    """``l3fab0`` as the dataplane creates it where there is no dummy driver: a veth pair."""
    ns.ip("link", "add", ANCHOR, "mtu", "9100", "type", "veth", "peer", "name", f"{ANCHOR}-peer", "mtu", "9100")
    for dev in (ANCHOR, f"{ANCHOR}-peer"):
        ns.ip("link", "set", "dev", dev, "up")


# What a burst of seg6 encap creations may answer (per-CPU atomic allocations run dry,
# LINUX-DATAPLANE.md), and what a route answers whose nexthop object failed that way.
TRANSIENT = ("Cannot allocate memory", "Nexthop id does not exist")
FAILED_LINE = re.compile(r"^Command failed \S+:(\d+)$")
RETRY_ROUNDS = 60


def batch_with_retries(ns: Namespace, path: Path, lines: list[str]) -> int:
    """``ip -force -batch``, then the lines that failed transiently again, as l3fab's FIB
    retries ENOMEM; returns the retry rounds. Any other error raises."""
    rounds = 0
    while lines:
        path.write_text("\n".join(lines) + "\n")
        proc = run_host(["ip", "-n", ns.netns, "-force", "-batch", str(path)], check=False, timeout=7200)
        failed = []
        for line in proc.stderr.splitlines():
            m = FAILED_LINE.match(line)
            if m:
                failed.append(int(m.group(1)))
            elif line.strip() and not any(t in line for t in TRANSIENT):
                raise RuntimeError(f"ip -batch: {line.strip()}")
        if not failed:
            break
        rounds += 1
        if rounds > RETRY_ROUNDS:
            raise RuntimeError(f"ip -batch: {len(failed)} routes still failing after {RETRY_ROUNDS} rounds")
        lines = [lines[i - 1] for i in failed]
        time.sleep(min(0.001 * 2 ** (rounds - 1), 0.1))
    path.unlink(missing_ok=True)
    return rounds


def ip_batch(lab: Lab, routes: TenantRoutes, shape: str, log) -> BatchResult:
    """The routes in one shape, one file per table, into a namespace of their own (IPv4
    routes of other namespaces do not slow these down: measured)."""
    result = BatchResult(shape, routes.count)
    tables = [t.table for t in routes.tenants]
    ns = lab.add_namespace(f"kbase-{shape}", forwarding=False)
    try:
        add_anchor(ns)
        for table, lines in routes.batches(shape).items():
            started = time.perf_counter()
            result.retries += batch_with_retries(ns, Path(lab.workdir) / f"batch-{shape}-{table}.txt", lines)
            result.per_table.append(time.perf_counter() - started)
        result.seconds = sum(result.per_table)
        result.in_kernel = count_routes(ns, tables)
        if result.in_kernel != routes.count:
            result.error = f"{result.in_kernel:,} routes in the kernel, expected {routes.count:,}"
    except Exception as exc:  # noqa: BLE001 - one shape failing must not end the run
        result.error = f"{type(exc).__name__}: {exc}"
    finally:  # free the kernel's memory now; the namespace goes with the lab
        for table in tables:
            ns.ip("-4", "route", "flush", "table", str(table), check=False)
    log(f"  ip -batch {shape:8} {summary(result)}")
    return result


def generator_config() -> dict:
    return {
        "router-id": "10.255.9.1", "asn": SENDER_AS, "fib": {"enabled": False},
        "neighbors": [
            # min-hold-time 0: the kernel-nohold mode's host asks for hold time 0
            {"name": "hut", "address": HUT.address, "remote-as": HUT.asn, "families": ["ipv6", "vpnv4"],
             "connect-retry": 1, "min-hold-time": 0},
            {"name": "gobgpd", "address": GOBGPD.address, "remote-as": GOBGPD.asn, "families": ["vpnv4"],
             "connect-retry": 1},
        ],
    }


def hut_config(workdir: Path, mode: str) -> dict:
    """The tenant fabric's host config, its uplinks replaced by one numbered session to the generator."""
    cfg = host_config(1, workdir, tenancy=mode != "bgp")
    cfg["neighbors"] = [{"name": "gen", "address": HUT.sender_address, "remote-as": SENDER_AS,
                         "families": ["ipv6", "vpnv4"], "connect-retry": 1}]
    if mode == "import":
        cfg["dataplane"] = {"enabled": False}
    if mode == "kernel-nohold":
        cfg["neighbors"][0]["hold-time"] = 0  # negotiated as 0: no keepalives, no hold timer
    return cfg


def set_link(ns: Namespace, link: Link, up: bool) -> None:
    ns.ip("link", "set", "dev", link.sender_ifname, "up" if up else "down")


class Api:
    """API calls to one node that note the longest wait: the speaker answers only
    between two pieces of work, so a long wait means it was busy that long."""

    def __init__(self, node: L3fabNode):
        self.node = node
        self.stall = 0.0

    def __call__(self, method: str, **params):
        began = time.monotonic()
        try:
            return call(self.node.socket, method, params, timeout=API_TIMEOUT)
        finally:
            self.stall = max(self.stall, time.monotonic() - began)


def kernel_mode(mode: str) -> bool:
    return mode.startswith("kernel")


def receive(lab: Lab, gen: L3fabNode, node: L3fabNode, routes: TenantRoutes, mode: str, log) -> ImportResult:
    """Bring the generator's link to hut up; time until ``node`` holds every route (see :data:`MODES`)."""
    result = ImportResult(mode, routes.count)
    tables = [t.table for t in routes.tenants]
    watcher = watch = None
    api = Api(node)
    connections = None
    try:
        if kernel_mode(mode):
            watcher, watch = start_watch(lab, node.ns, Path(lab.workdir) / f"watch-hut-{mode}.jsonl", tables,
                                         "--every", str(max(1, routes.count // 100)), name=f"tenancy-watch-{mode}")
        pid = node.pid
        result.rss_before = rss_bytes([pid])
        load = OtherLoad([pid, gen.pid] + ([watcher.pid] if watcher else []))
        set_link(gen.ns, HUT, True)
        wait_until(lambda: api("neighbor", neighbor="gen")["state"] == "Established", 60, 0.01,
                   what="hut: session with the generator")
        view = api("neighbor", neighbor="gen")
        established, connections = view["state_since"], view["established_count"]
        done_at, held = wait_held(api, watch, routes.count, mode, established, result)
        result.other_cpu = load.cores()
        result.seconds = done_at - established
        if watch is not None:
            result.first_s = next(r["first"] for r in watch.records if "first" in r) - established
            result.progress = [(r["t"] - established, r["count"]) for r in watch.records if "count" in r]
        time.sleep(STABLE)  # the last flush finishes; a session reset would show now
        result.rss_after = rss_bytes([pid])
        result.peak_rss = peak_rss_bytes([pid])
        result.held = count_routes(node.ns, tables) if watch is not None else held
        if watch is not None:
            result.errors += api("dataplane").get("errors", [])[-3:]
        if watch is not None and result.held == routes.count:
            result.endpoint_add_s = time_endpoint_add(lab, node, routes.tenants[0])
        if result.held != routes.count:
            result.error = (f"had all {routes.count:,} routes after {result.seconds:.0f} s, {result.held:,} "
                            f"{STABLE:.0f} s later")
    except Exception as exc:  # noqa: BLE001 - one measurement failing must not end the run
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.api_stall = api.stall
        if watch is not None:
            result.most = max((r["count"] for r in watch.records if "count" in r), default=0)
        if connections is not None:
            try:
                view = api("neighbor", neighbor="gen")
                result.resets = view["established_count"] - connections
                if result.resets:
                    result.errors.append(f"last session error: {view['last_error']}")
            except Exception as exc:  # noqa: BLE001
                result.errors.append(f"neighbor view: {exc}")
        set_link(gen.ns, HUT, False)
        if kernel_mode(mode):
            full_stop(lab, node)  # the next measurement starts on an empty kernel
        node.stop()
        if watcher is not None:
            lab.stop(watcher)
    log(f"  {MODES[mode]:52} {summary(result)}")
    return result


def time_endpoint_add(lab: Lab, node: L3fabNode, tenant: Tenant) -> float:
    """Seconds one ``endpoint add`` takes (API) on a host holding the whole table; removed again."""
    if node.ns.ip("link", "show", "dev", "vm-probe", check=False).returncode != 0:
        lab.link(node.ns, node.ns, "vm-probe", "vp-probe")
    began = time.monotonic()
    call(node.socket, "endpoint_add", {"name": "probe", "tenant": tenant.name, "interface": "vm-probe",
                                       "ipv4": "10.200.0.1"}, timeout=API_TIMEOUT)
    seconds = time.monotonic() - began
    call(node.socket, "endpoint_remove", {"name": "probe"}, timeout=API_TIMEOUT)
    return seconds


def full_stop(lab: Lab, node: L3fabNode, timeout: float = 300.0) -> None:
    """SIGUSR1: l3fab's full stop, which removes its routes from the kernel (SIGTERM keeps them)."""
    if node.process is None or not node.process.alive():
        return
    os.kill(node.pid, signal.SIGUSR1)
    try:
        node.process.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        pass  # node.stop() ends it


def wait_held(api: Api, watch: WatchLog | None, count: int, mode: str, established: float,
              result: ImportResult) -> tuple[float, int]:
    """Poll until ``count`` routes are in; (when the last arrived, how many)."""
    last, last_change = -1, time.monotonic()
    deadline = time.monotonic() + 120 + count / 100
    while True:
        received = api("rib_received_count", neighbor="gen").get("vpnv4", 0)
        seen = time.time()
        if result.rib_s is None and received >= count:
            result.rib_s = seen - established
        held, done_at = received, seen
        if mode == "import":
            held, done_at = sum(v["imported_routes"] for v in api("vrfs")), time.time()
        elif watch is not None:
            watch.read()
            if watch.last("overflow"):
                raise RuntimeError("the route listener lost notifications (ENOBUFS)")
            counts = [r for r in watch.records if "count" in r]
            held, done_at = (counts[-1]["count"], counts[-1]["t"]) if counts else (0, seen)
        if held >= count:
            return done_at, held
        if held != last:
            last, last_change = held, time.monotonic()
        elif time.monotonic() - last_change > STALL:
            raise TimeoutError(f"{held:,} of {count:,} routes in, none more for {STALL:.0f} s")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{held:,} of {count:,} routes in after {time.time() - established:.0f} s")
        time.sleep(0.5 if watch is not None else 0.1)


def gobgpd_holds(lab: Lab, gen: L3fabNode, ns: Namespace, routes: TenantRoutes, log) -> HoldResult:
    result = HoldResult(routes.count)
    receiver = GoBgpReceiver(lab, ns, GOBGPD)
    try:
        receiver.start()
        pids = receiver.pids()
        result.rss_before = rss_bytes(pids)
        set_link(gen.ns, GOBGPD, True)
        wait_until(receiver.established, 60, 0.01, what="gobgpd: session with the generator")
        established = receiver.established_at() or time.time()
        deadline = time.monotonic() + 120 + routes.count / 1000
        while (held := receiver.count("vpnv4")) < routes.count and time.monotonic() < deadline:
            time.sleep(0.1)
        result.seconds = time.time() - established
        result.held = held
        time.sleep(2)
        result.rss_after = rss_bytes(pids)
        result.peak_rss = peak_rss_bytes(pids)
        if held != routes.count:
            result.error = f"holds {held:,} of {routes.count:,}"
    except Exception as exc:  # noqa: BLE001
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        set_link(gen.ns, GOBGPD, False)
        receiver.stop()
    log(f"  gobgpd      {summary(result)}")
    return result


def run(lab: Lab, count: int, log=lambda text: None, shapes=("l3fab", "nexthop", "metric"),
        modes=tuple(MODES)) -> ScaleReport:
    report = ScaleReport(count)
    gen_ns = lab.add_namespace("gen")
    hut_ns = connect(lab, gen_ns, HUT, "hut")
    gobgp_ns = connect(lab, gen_ns, GOBGPD, "gobgpd")
    for link in (HUT, GOBGPD):
        set_link(gen_ns, link, False)
    # The host that creates the tenants is the one measured first (kernel mode), so it
    # starts on an empty kernel instead of finding a previous run's state.
    hut = L3fabNode(lab, hut_ns, hut_config(Path(lab.workdir), "kernel"), log_level="info").start()
    tenants = []
    for k in range(TENANTS):
        row = hut.api("tenant_create", name=f"t{k}", vni=VNI_BASE + k)
        tenants.append(Tenant(row["name"], row["vni"], row["table"], row["route_target"], row["label"]))
    routes = TenantRoutes(count, tuple(tenants))
    for shape in shapes:
        log(f"ip -batch, {shape} shape ({count:,} routes in {TENANTS} tables)")
        report.batches.append(ip_batch(lab, routes, shape, log))
    gen = L3fabNode(lab, gen_ns, generator_config(), name="generator", log_level="info").start()
    call(gen.socket, "announce", {"routes": routes.announce_specs()}, timeout=API_TIMEOUT)
    if "kernel" not in modes:
        full_stop(lab, hut)
        hut.stop()
    for mode in MODES:
        if mode not in modes:
            continue
        log(f"{MODES[mode]} receiving {count:,} VPNv4 routes")
        node = hut if mode == "kernel" else L3fabNode(lab, hut_ns, hut_config(Path(lab.workdir), mode),
                                                       name=f"l3fab-{mode}", log_level="info").start()
        report.l3fab.append(receive(lab, gen, node, routes, mode, log))
    log(f"gobgpd receiving {count:,} VPNv4 routes")
    report.gobgpd = gobgpd_holds(lab, gen, gobgp_ns, routes, log)
    gen.stop()
    return report


def failure(result) -> str:
    """The error, with what an l3fab kernel run reached before it."""
    text = result.error or ""
    if isinstance(result, ImportResult) and kernel_mode(result.mode):
        text += (f"; at most {result.most:,} routes in the kernel; session reset {result.resets}x; "
                 f"API stalled up to {result.api_stall:.0f} s")
    return text


def summary(result) -> str:
    if not result.ok:
        return f"FAILED: {failure(result)}"
    if isinstance(result, BatchResult):
        return f"{result.seconds:.1f} s, {result.routes / result.seconds:,.0f} routes/s"
    if isinstance(result, HoldResult):
        return f"{result.seconds:.1f} s, {result.bytes_per_route:,.0f} bytes/route"
    return (f"{result.seconds:.1f} s, {result.routes / result.seconds:,.0f} routes/s, "
            f"{result.bytes_per_route:,.0f} bytes/route (RSS {result.rss_before / MB:.1f} -> "
            f"{result.rss_after / MB:.1f} MB)")
