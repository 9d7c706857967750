"""Per-endpoint rate limits against noisy neighbours, reconciled like the FIB.

Both directions of an endpoint's host-side interface (``PortSpec.ifname``) are
limited to ``PortSpec.rate_limit`` bit/s:

- **towards the endpoint** (egress of the interface): a ``tbf`` root qdisc.
- **from the endpoint** (ingress, what limits a noisy sender), in the first way
  the kernel offers (:func:`ingress_mode`, from :mod:`dataplane.features`):

  1. ``police``: an ``ingress`` qdisc with one u32 match-all filter whose
     act_police drops what exceeds the rate (``conform-exceed drop/ok``);
  2. ``ifb``: without act_police (the CI kernel has neither act_police nor
     cls_matchall, but has ifb, cls_u32 and act_mirred), the same filter
     redirects every packet to an ifb device ``l3r<crc32 of ifname>`` whose own
     ``tbf`` shapes it; ifb hands the packet back to the interface's ingress path,
     so routing, nftables (``iifname``) and ip rules still see the endpoint's
     interface;
  3. ``none``: neither; :class:`Result` says so in ``notes``, egress still applies.

**Why tbf, not htb.**  Both hold 8 Mbit/s within 4 % for a TCP flow between two
veths here (htb 7.7-7.9 Mbit/s, tbf 7.7-7.9 Mbit/s with a 64 KiB burst; ingress
through the ifb's tbf 7.0-7.9 Mbit/s; unlimited 4-12 Gbit/s).  One
classless tbf is one object to own and compare (iproute2 6.1 prints htb classes
as text even with ``-j``), and its queue is bounded in *time* (``latency 50ms``)
while an htb leaf queues ``txqueuelen`` packets (1000 x 1500 B is 1.5 s at
8 Mbit/s): a noisy neighbour's backlog never becomes seconds of delay.

**Burst** (:func:`burst_for`): 10 ms of traffic at the rate, at least 64 KiB.  The
floor matters: GSO packets on veth/TAP reach 64 KiB, and a policer whose burst is
smaller than one packet drops all of them (tbf splits them; police cannot).
Below :data:`MIN_RATE` tc's timing overflows, so slower limits are refused.  Above
:data:`MAX_RATE` the tbf queue limit overflows: tc passes the rate itself as a 64-bit
attribute, but the limit is a 32-bit byte count of rate x (latency + burst time), which
wraps above ~572 Gbit/s - tc accepts the qdisc and it queues a few bytes.  Faster
limits are refused too (``tenancy.rate`` refuses both before they are stored).

**What l3fab owns (its tags)** - it never changes anything else:

- a root qdisc with handle ``1a3f:`` (:data:`ROOT_HANDLE`);
- ingress filters at pref 0x1a3f (:data:`FILTER_PREF`) whose action carries a
  cookie starting with ``l3fb`` (:func:`cookie`, which also records kind and rate);
- the ``ingress`` qdisc when every filter on it is l3fab's;
- ifb devices named ``l3r...`` *and* with ifalias ``l3fab-rate:<ifname>``.

A foreign root qdisc (any handle but ``0:``, the kernel's default, and ``1a3f:``)
on a limited endpoint's interface is an error for that port and stays; so do
foreign ingress filters or a ``clsact`` qdisc.  ``apply`` gets *all* local ports:
an interface of a port without a limit loses l3fab's objects, and l3fab's ifbs
that no port needs any more are deleted.
"""
from __future__ import annotations

import json
import subprocess
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence, overload

from .features import Features, command, detect, kernel_reason
from .model import PortSpec

ROOT_HANDLE = "1a3f:"
FILTER_PREF = 0x1a3f
IFB_PREFIX = "l3r"
IFB_ALIAS = "l3fab-rate:"
COOKIE_MAGIC = b"l3fb"
LATENCY_US = 50_000
MIN_RATE = 8_000          # bit/s
MAX_RATE = 500 * 10**9    # bit/s: (MAX_RATE / 8) x (LATENCY + BURST_SECONDS) < 2**32 bytes
MIN_BURST = 65_536        # bytes
BURST_SECONDS = 0.01
POLICE_MTU = 65_535       # act_police's default (2 KiB) would drop jumbo frames
DEFAULT_HANDLE = "0:"     # the kernel's own root qdisc (noqueue, pfifo_fast, mq...)
INGRESS_PARENT = "ffff:fff1"

INGRESS_POLICE, INGRESS_IFB, INGRESS_NONE = "police", "ifb", "none"


def ingress_mode(features: Features) -> str:
    if features.tc_police:
        return INGRESS_POLICE
    if features.tc_ifb_redirect:
        return INGRESS_IFB
    return INGRESS_NONE


def burst_for(rate: int) -> int:
    """Bytes of burst for ``rate`` bit/s: 10 ms of traffic, at least 64 KiB."""
    return max(MIN_BURST, int(rate * BURST_SECONDS) // 8)


def ifb_name(ifname: str) -> str:
    """The ifb of ``ifname``: ``l3r`` + crc32 (11 characters, within IFNAMSIZ)."""
    return f"{IFB_PREFIX}{zlib.crc32(ifname.encode()):08x}"


def cookie(kind: str, rate: int = 0) -> str:
    """16 bytes, hex: magic, kind (``p`` police, ``r`` redirect), rate in bit/s."""
    return (COOKIE_MAGIC + kind.encode()[:1] + rate.to_bytes(11, "big")).hex()


def ours_cookie(value: str | None) -> bool:
    return bool(value and value.lower().startswith(COOKIE_MAGIC.hex()))


def _label(endpoint: str, ifname: str) -> str:
    return f"endpoint {endpoint} (interface {ifname})"


@dataclass(frozen=True)
class Step:
    """One ``tc``/``ip`` command and the port it is for."""

    endpoint: str
    ifname: str
    what: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{_label(self.endpoint, self.ifname)}: {self.what}"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    errors: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()  # limited ports whose interface does not exist (yet)
    ingress: str = INGRESS_NONE
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """What :func:`apply` did: ``actions`` are the commands run (empty: nothing differed)."""

    actions: tuple[Step, ...] = ()
    errors: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    ingress: str = INGRESS_NONE
    notes: tuple[str, ...] = ()


@dataclass
class Snapshot:
    """What the kernel holds now, as ``ip -j``/``tc -j`` print it."""

    links: dict[str, dict] = field(default_factory=dict)    # ifname -> ip -j link entry
    ifbs: set[str] = field(default_factory=set)             # names of ifb devices
    root: dict[str, dict] = field(default_factory=dict)     # dev -> root qdisc
    ingress: dict[str, dict] = field(default_factory=dict)  # dev -> ingress/clsact qdisc
    filters: dict[str, list[dict]] = field(default_factory=dict)  # dev -> its ingress filters

    def add_qdiscs(self, qdiscs: Iterable[dict]) -> None:
        for q in qdiscs:
            if q.get("root"):
                self.root[q["dev"]] = q
            elif q.get("parent") == INGRESS_PARENT:
                self.ingress[q["dev"]] = q


# ------------------------------------------------------------------ comparing


def tbf_matches(qdisc: dict | None, rate: int) -> bool:
    """``qdisc`` (tc -j) is l3fab's tbf at ``rate`` bit/s; tc rounds burst and latency a little."""
    if not qdisc or qdisc.get("handle") != ROOT_HANDLE or qdisc.get("kind") != "tbf":
        return False
    opts = qdisc.get("options", {})
    want_burst = burst_for(rate)
    try:
        return (int(opts["rate"]) == rate // 8
                and abs(int(opts["burst"]) - want_burst) <= max(64, want_burst // 100)
                and abs(int(opts["lat"]) - LATENCY_US) <= LATENCY_US // 20)
    except (KeyError, TypeError, ValueError):
        return False


def tbf_args(rate: int) -> tuple[str, ...]:
    return ("root", "handle", ROOT_HANDLE, "tbf", "rate", f"{rate}bit", "burst", str(burst_for(rate)),
            "latency", f"{LATENCY_US}us")


def _actions(entry: dict) -> list[dict]:
    return entry.get("options", {}).get("actions", []) or []


def split_filters(entries: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """(l3fab's filter entries, foreign ones).  u32 also lists a header and a hash table
    entry per pref; those have no actions and belong to whoever owns the pref."""
    ours, foreign = [], []
    for e in entries:
        acts = _actions(e)
        if e.get("pref") == FILTER_PREF and all(ours_cookie(a.get("cookie")) for a in acts):
            ours.append(e)
        else:
            foreign.append(e)
    return ours, foreign


def filter_matches(ours: list[dict], mode: str, ifname: str, rate: int) -> bool:
    acts = [a for e in ours for a in _actions(e)]
    if len(acts) != 1:
        return False
    act = acts[0]
    if mode == INGRESS_POLICE:
        return act.get("kind") == "police" and act.get("cookie", "").lower() == cookie("p", rate)
    return (act.get("kind") == "mirred" and act.get("to_dev") == ifb_name(ifname)
            and act.get("cookie", "").lower() == cookie("r"))


def filter_args(mode: str, ifname: str, rate: int) -> tuple[str, ...]:
    head = ("tc", "filter", "add", "dev", ifname, "ingress", "protocol", "all", "pref", str(FILTER_PREF),
            "u32", "match", "u32", "0", "0", "action")
    if mode == INGRESS_POLICE:
        return (*head, "police", "rate", f"{rate}bit", "burst", str(burst_for(rate)), "mtu", str(POLICE_MTU),
                "conform-exceed", "drop/ok", "cookie", cookie("p", rate))
    return (*head, "mirred", "egress", "redirect", "dev", ifb_name(ifname), "cookie", cookie("r"))


def is_our_ifb(snap: Snapshot, name: str) -> bool:
    link = snap.links.get(name) or {}
    return (name in snap.ifbs and name.startswith(IFB_PREFIX)
            and str(link.get("ifalias", "")).startswith(IFB_ALIAS))


# ------------------------------------------------------------------ planning


def _rate_error(port: PortSpec) -> str | None:
    rate = port.rate_limit
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int):
        return f"{_label(port.name, port.ifname)}: rate_limit {rate!r} is not a number of bit/s"
    if rate < MIN_RATE:
        return (f"{_label(port.name, port.ifname)}: rate_limit {rate} bit/s is below the minimum "
                f"{MIN_RATE} bit/s tc can time")
    if rate > MAX_RATE:
        return (f"{_label(port.name, port.ifname)}: rate_limit {rate} bit/s is above the maximum "
                f"{MAX_RATE} bit/s tc's tbf queue limit can hold")
    return None


class _Planner:
    def __init__(self, snap: Snapshot, mode: str) -> None:
        self.snap = snap
        self.mode = mode
        self.steps: list[Step] = []
        self.errors: list[str] = []
        self.waiting: list[str] = []
        self.keep_ifbs: set[str] = set()

    def step(self, port: PortSpec, what: str, *argv: str) -> None:
        self.steps.append(Step(port.name, port.ifname, what, tuple(argv)))

    def port(self, port: PortSpec) -> None:
        error = _rate_error(port)
        if error:
            self.errors.append(error + "; its current limits are kept")
            self.keep_ifbs.add(ifb_name(port.ifname))
            return
        if port.ifname not in self.snap.links:
            if port.rate_limit is not None:
                self.waiting.append(f"{_label(port.name, port.ifname)}: interface does not exist (yet)")
            return
        self.egress(port)
        self.ingress(port)

    def egress(self, port: PortSpec) -> None:
        dev, rate = port.ifname, port.rate_limit
        root = self.snap.root.get(dev)
        handle = (root or {}).get("handle", DEFAULT_HANDLE)
        if rate is None:
            if handle == ROOT_HANDLE:
                self.step(port, "remove egress limit", "tc", "qdisc", "del", "dev", dev, "root")
        elif handle not in (DEFAULT_HANDLE, ROOT_HANDLE):
            self.errors.append(f"{_label(port.name, dev)}: foreign root qdisc {(root or {}).get('kind')} "
                               f"{handle} present, not replacing it; egress not limited")
        else:
            self.tbf(port, dev, rate, f"limit egress to {rate} bit/s")

    def tbf(self, port: PortSpec, dev: str, rate: int, what: str) -> None:
        """Steps that make ``dev``'s root l3fab's tbf at ``rate`` (the caller checked ownership)."""
        root = self.snap.root.get(dev)
        if tbf_matches(root, rate):
            return
        handle = (root or {}).get("handle", DEFAULT_HANDLE)
        kind = (root or {}).get("kind")  # a handle other than the default means root is there
        if handle != DEFAULT_HANDLE and (handle, kind) != (ROOT_HANDLE, "tbf"):
            # replace cannot change a qdisc's kind or handle ("must match existing qdisc")
            self.step(port, f"remove old {kind} qdisc of {dev}", "tc", "qdisc", "del", "dev", dev,
                      "root")
        self.step(port, what, "tc", "qdisc", "replace", "dev", dev, *tbf_args(rate))

    def ingress(self, port: PortSpec) -> None:
        dev, rate = port.ifname, port.rate_limit
        qdisc = self.snap.ingress.get(dev)
        ours, foreign = split_filters(self.snap.filters.get(dev, []))
        kind = qdisc.get("kind") if qdisc else None
        if rate is not None and self.mode != INGRESS_NONE and (foreign or kind not in (None, "ingress")):
            self.errors.append(f"{_label(port.name, dev)}: foreign {kind} qdisc or filters on ingress, "
                               "not touching them; ingress not limited")
            self.keep_ifbs.add(ifb_name(dev))
            return
        if rate is None or self.mode == INGRESS_NONE:
            if ours and not foreign and kind == "ingress":
                self.step(port, "remove ingress limit", "tc", "qdisc", "del", "dev", dev, "ingress")
            elif ours:
                self.step(port, "remove ingress limit", "tc", "filter", "del", "dev", dev, "ingress",
                          "pref", str(FILTER_PREF))
            return
        if self.mode == INGRESS_IFB and not self.ifb(port):
            return
        if filter_matches(ours, self.mode, dev, rate):
            return
        if not qdisc:
            self.step(port, "add ingress qdisc", "tc", "qdisc", "add", "dev", dev, "ingress")
        elif ours:
            self.step(port, "replace ingress filter", "tc", "filter", "del", "dev", dev, "ingress",
                      "pref", str(FILTER_PREF))
        what = (f"police ingress at {rate} bit/s" if self.mode == INGRESS_POLICE
                else f"redirect ingress to {ifb_name(dev)}")
        self.step(port, what, *filter_args(self.mode, dev, rate))

    def ifb(self, port: PortSpec) -> bool:
        """The port's ifb exists, is up and shapes at the rate; False when its name is taken."""
        name, rate = ifb_name(port.ifname), port.rate_limit
        assert rate is not None  # ingress() asks for an ifb only for a port with a limit
        link = self.snap.links.get(name)
        if link is not None and not is_our_ifb(self.snap, name):
            self.errors.append(f"{_label(port.name, port.ifname)}: device {name} exists and is not "
                               "l3fab's ifb; ingress not limited")
            return False
        self.keep_ifbs.add(name)
        if link is None:
            self.step(port, f"add ifb {name}", "ip", "link", "add", name, "type", "ifb")
            self.step(port, f"set up ifb {name}", "ip", "link", "set", "dev", name,
                      "alias", IFB_ALIAS + port.ifname, "up")
        elif "UP" not in link.get("flags", []):
            self.step(port, f"set up ifb {name}", "ip", "link", "set", "dev", name, "up")
        self.tbf(port, name, rate, f"limit ingress (ifb {name}) to {rate} bit/s")
        return True

    def orphans(self, by_ifname: dict[str, PortSpec]) -> None:
        for name in sorted(self.snap.ifbs):
            if name in self.keep_ifbs or not is_our_ifb(self.snap, name):
                continue
            owner = str(self.snap.links[name].get("ifalias", ""))[len(IFB_ALIAS):]
            port = by_ifname.get(owner)
            self.steps.append(Step(port.name if port else "-", owner, f"delete unused ifb {name}",
                                   ("ip", "link", "del", "dev", name)))


def diff(ports: Sequence[PortSpec], snap: Snapshot, mode: str,
         previous: Sequence[PortSpec] = ()) -> Plan:
    """The steps that make ``snap`` hold ``ports``' limits (pure: no kernel access).

    Interfaces of ``previous`` ports that are no longer in ``ports`` are treated as
    ports without a limit, so their l3fab objects go."""
    planner = _Planner(snap, mode)
    by_ifname: dict[str, PortSpec] = {}
    for port in ports:
        if port.ifname in by_ifname:
            planner.errors.append(f"{_label(port.name, port.ifname)}: interface also belongs to endpoint "
                                  f"{by_ifname[port.ifname].name}; its limit is ignored")
            continue
        by_ifname[port.ifname] = port
        planner.port(port)
    for old in previous:
        if old.ifname not in by_ifname:
            gone = PortSpec(name=old.name, tenant=old.tenant, ifname=old.ifname, table=old.table)
            by_ifname[old.ifname] = gone
            planner.port(gone)
    planner.orphans(by_ifname)
    notes: tuple[str, ...] = ()
    if mode == INGRESS_NONE and any(p.rate_limit for p in ports):
        notes = ("this kernel has neither act_police nor ifb redirection: traffic from endpoints "
                 "is not limited, only traffic towards them",)
    elif mode == INGRESS_IFB and any(p.rate_limit for p in ports):
        notes = ("no act_police in this kernel: traffic from endpoints is shaped on ifb devices",)
    return Plan(tuple(planner.steps), tuple(planner.errors), tuple(planner.waiting), mode, notes)


# ------------------------------------------------------------------ the kernel


class TcError(RuntimeError):
    """Reading tc/ip state failed; the message names the command and the kernel's reason."""


Runner = Callable[[Sequence[str], "str | None"], "subprocess.CompletedProcess[str]"]


def _json(argv: Sequence[str], netns: str | None, run: Runner = command) -> list[dict]:
    proc = run(argv, netns)
    if proc.returncode != 0:
        raise TcError(f"{' '.join(argv)}: {kernel_reason(proc)}")
    out = proc.stdout.strip()
    return json.loads(out) if out else []


def read(ifnames: Iterable[str], netns: str | None = None, *, stats: bool = False,
         run: Runner = command) -> Snapshot:
    """The links, qdiscs and (for ``ifnames`` with an ingress qdisc) ingress filters."""
    s = ["-s"] if stats else []
    snap = Snapshot()
    snap.links = {link["ifname"]: link for link in _json(["ip", "-j", "link", "show"], netns, run)}
    snap.ifbs = {link["ifname"] for link in _json(["ip", "-j", "link", "show", "type", "ifb"], netns, run)}
    snap.add_qdiscs(_json(["tc", "-j", *s, "qdisc", "show"], netns, run))
    for dev in ifnames:
        if dev in snap.ingress:
            snap.filters[dev] = _json(["tc", "-j", *s, "filter", "show", "dev", dev, "ingress"], netns, run)
    return snap


def plan(ports: Sequence[PortSpec], netns: str | None = None, *, previous: Sequence[PortSpec] = (),
         features: Features | None = None, run: Runner = command) -> Plan:
    """Compare the kernel with ``ports`` (all local ports) and say what would change."""
    mode = ingress_mode(features or detect(netns))
    ifnames = {p.ifname for p in (*ports, *previous)}
    return diff(ports, read(ifnames, netns, run=run), mode, previous)


def execute(the_plan: Plan, netns: str | None = None, run: Runner = command) -> Result:
    """Run the plan's steps in order; after a failed step the rest of that port's steps
    are skipped (other ports go on) and the failure is a one-line error."""
    done: list[Step] = []
    errors = list(the_plan.errors)
    failed: set[tuple[str, str]] = set()
    for step in the_plan.steps:
        key = (step.endpoint, step.ifname)
        if key in failed:
            continue
        proc = run(step.argv, netns)
        if proc.returncode != 0:
            failed.add(key)
            errors.append(f"{step} failed: {kernel_reason(proc)}")
            continue
        done.append(step)
    return Result(tuple(done), tuple(errors), the_plan.waiting, the_plan.ingress, the_plan.notes)


def apply(ports: Sequence[PortSpec], netns: str | None = None, *, previous: Sequence[PortSpec] = (),
          features: Features | None = None, run: Runner = command) -> Result:
    """Make the kernel hold exactly ``ports``' rate limits; the result lists what was run."""
    try:
        the_plan = plan(ports, netns, previous=previous, features=features, run=run)
    except TcError as e:
        return Result(errors=(f"reading tc state: {e}",))
    return execute(the_plan, netns, run)


# ------------------------------------------------------------------ counters


@overload
def _counts(obj: dict) -> dict[str, int]: ...


@overload
def _counts(obj: None) -> None: ...


def _counts(obj: dict | None) -> dict[str, int] | None:
    if obj is None:
        return None
    stats = obj.get("stats", obj)  # actions nest their counters, qdiscs do not
    return {"sent_bytes": int(stats.get("bytes", 0)), "dropped": int(stats.get("drops", 0)),
            "overlimits": int(stats.get("overlimits", 0))}


def port_stats(port: PortSpec, snap: Snapshot) -> dict:
    """One endpoint's counters: egress (tbf), ingress (police action or the ifb's tbf), totals."""
    root = snap.root.get(port.ifname)
    egress = _counts(root if root and root.get("handle") == ROOT_HANDLE else None)
    ingress = None
    ours, _ = split_filters(snap.filters.get(port.ifname, []))
    for act in (a for e in ours for a in _actions(e)):
        if act.get("kind") == "police":
            ingress = {**_counts(act), "mode": INGRESS_POLICE}
        elif act.get("kind") == "mirred":
            qdisc = snap.root.get(act.get("to_dev", ""))
            if qdisc and qdisc.get("handle") == ROOT_HANDLE:
                ingress = {**_counts(qdisc), "mode": INGRESS_IFB, "ifb": act["to_dev"]}
    out: dict = {"interface": port.ifname, "rate_limit": port.rate_limit}
    for key in ("sent_bytes", "dropped", "overlimits"):
        out[key] = sum(d[key] for d in (egress, ingress) if d)
    out["egress"], out["ingress"] = egress, ingress
    return out


def stats(ports: Sequence[PortSpec], netns: str | None = None, *, run: Runner = command) -> dict[str, dict]:
    """Per endpoint name: ``{"interface", "rate_limit", "sent_bytes", "dropped", "overlimits",
    "egress", "ingress"}`` - the top-level counters add up both directions; a direction
    l3fab does not limit is None there."""
    snap = read({p.ifname for p in ports}, netns, stats=True, run=run)
    return {p.name: port_stats(p, snap) for p in ports}
