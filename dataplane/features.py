"""What this kernel can do for the dataplane, found out by trying, never assumed.

Production hosts have VRF devices and ip6tnl; the CI kernel has neither (see
LINUX-DATAPLANE.md), and act_police may or may not be built.  So each feature is
*probed*: the probe creates a throwaway object (a device, a route in a scratch
table, a qdisc on a scratch veth), notes whether the kernel accepted it, and
removes it again.  A probe that fails keeps the kernel's own error text as the
reason, so ``show dataplane`` says *why* a feature is missing.

Where the probes run:

- ``detect()``: in a scratch network namespace (``l3fab-probe-<hex>``, always
  deleted), so the host's own namespace is never touched.  Kernel features are
  the same in every namespace.  Only when no namespace can be created (no
  CAP_SYS_ADMIN) do the probes fall back to the current namespace, still with
  uniquely named throwaway objects only.
- ``detect(netns)``: inside that (e.g. a lab) namespace, with the same throwaway
  objects.  One side effect cannot be undone there: the first tunnel device of a
  kind makes the kernel add its fallback device (``ip6tnl0``) to the namespace.

Results are cached per namespace (``refresh=True`` probes again).
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
from dataclasses import dataclass, fields
from typing import Sequence

SCRATCH_PREFIX = "l3fab-probe-"
TIMEOUT = 20.0
_DOC_NET = "2001:db8:ffff"  # documentation prefix: probe routes go to a scratch table only
_NEEDS = {  # what a missing feature points at, added to the kernel's text
    "vrf": "CONFIG_NET_VRF", "ip6tnl": "CONFIG_IPV6_TUNNEL", "seg6": "CONFIG_IPV6_SEG6_LWTUNNEL",
    "seg6_red": "kernel >= 5.14", "seg6local": "CONFIG_IPV6_SEG6_LWTUNNEL",
    "seg6local_dt4_vrftable": "a VRF device and net.vrf.strict_mode=1", "tc_htb": "sch_htb",
    "tc_tbf": "sch_tbf", "tc_police": "act_police", "tc_matchall": "cls_matchall",
    "tc_ifb_redirect": "ifb, cls_u32, act_mirred",
}


def command(argv: Sequence[str], netns: str | None = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``ip``/``tc`` (as ``-n <netns>``) or anything else (through
    ``ip netns exec``) in ``netns``; never raises for a non-zero exit status."""
    argv = [str(a) for a in argv]
    if netns:
        if argv[0] in ("ip", "tc"):
            argv = [argv[0], "-n", netns, *argv[1:]]
        else:
            argv = ["ip", "netns", "exec", netns, *argv]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 127, "", str(exc))


def kernel_reason(proc: subprocess.CompletedProcess[str]) -> str:
    """The first line of the error, without iproute2's ``Error:``/``RTNETLINK answers:``."""
    for line in (proc.stderr or proc.stdout or "").splitlines():
        line = line.strip()
        for noise in ("Error: ", "RTNETLINK answers: "):
            if line.startswith(noise):
                line = line[len(noise):]
        if line:
            return line
    return f"exit status {proc.returncode}"


@dataclass(frozen=True)
class Features:
    """One bool per feature; :meth:`reason` says why a missing one is missing."""

    vrf: bool = False                     # ip link add type vrf
    seg6: bool = False                    # route encap seg6 mode encap
    seg6_red: bool = False                # route encap seg6 mode encap.red (what l3fab installs)
    seg6local: bool = False               # seg6local End.DX4
    seg6local_dt4_vrftable: bool = False  # seg6local End.DT4 vrftable (needs VRF devices)
    nftables: bool = False                # nft binary, and it can list tables
    tc_htb: bool = False
    tc_tbf: bool = False
    tc_police: bool = False               # ingress qdisc + u32 filter + act_police
    tc_matchall: bool = False             # cls_matchall
    tc_ifb_redirect: bool = False         # ifb device + u32 + act_mirred redirect to it
    ip6tnl: bool = False
    reasons: tuple[tuple[str, str], ...] = ()
    probed_in: str = ""                   # the namespace the probes ran in

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.type == "bool")

    def reason(self, name: str) -> str | None:
        """The kernel's error for a missing feature, None when it is available."""
        if name not in self.names():
            raise ValueError(f"feature {name!r}: unknown; known: {', '.join(self.names())}")
        return None if getattr(self, name) else dict(self.reasons).get(name, "not probed")

    def summary(self) -> dict[str, dict[str, object]]:
        """``{feature: {"available": bool, "reason": str | None}}`` for ``show dataplane``."""
        return {n: {"available": getattr(self, n), "reason": self.reason(n)} for n in self.names()}


class _Prober:
    """Runs the probes in one namespace with uniquely named throwaway objects."""

    def __init__(self, netns: str | None, scratch: bool) -> None:
        self.netns = netns
        self.scratch = scratch  # a namespace of our own: sysctls may be set there
        self.tag = secrets.token_hex(3)
        self.results: dict[str, tuple[bool, str]] = {}

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return command(argv, self.netns)

    def attempt(self, name: str, *argv: str) -> bool:
        proc = self.run(*argv)
        why = "" if proc.returncode == 0 else kernel_reason(proc)
        if why and name in _NEEDS:
            why = f"{why} (needs {_NEEDS[name]})"
        self.results[name] = (proc.returncode == 0, why)
        return proc.returncode == 0

    def unused_table(self) -> int:
        """A routing table id with no routes in either family."""
        while True:
            table = 0x10000000 + secrets.randbelow(0x60000000)
            if all(not self.run("ip", f"-{fam}", "route", "show", "table", str(table)).stdout.strip()
                   for fam in (4, 6)):
                return table

    # -- probes --------------------------------------------------------------

    def routing(self) -> None:
        vrf_dev = f"l3p{self.tag}v"
        vrf_table = self.unused_table()
        table = self.unused_table()
        self.run("ip", "link", "set", "dev", "lo", "up")
        try:
            if self.attempt("vrf", "ip", "link", "add", vrf_dev, "type", "vrf", "table", str(vrf_table)):
                self.run("ip", "link", "set", "dev", vrf_dev, "up")
                if self.scratch:  # End.DT4 also wants strict VRF mode; only our own namespace gets it
                    self.run("sysctl", "-q", "-w", "net.vrf.strict_mode=1")
            route = ["ip", "-6", "route", "add"]
            where = ["dev", "lo", "table", str(table)]
            self.attempt("seg6", *route, f"{_DOC_NET}::1/128", "encap", "seg6", "mode", "encap",
                         "segs", f"{_DOC_NET}::100", *where)
            self.attempt("seg6_red", *route, f"{_DOC_NET}::2/128", "encap", "seg6", "mode", "encap.red",
                         "segs", f"{_DOC_NET}::100", *where)
            self.attempt("seg6local", *route, f"{_DOC_NET}::3/128", "encap", "seg6local", "action",
                         "End.DX4", "nh4", "169.254.0.2", *where)
            dt4_dev = vrf_dev if self.results["vrf"][0] else "lo"
            self.attempt("seg6local_dt4_vrftable", *route, f"{_DOC_NET}::4/128", "encap", "seg6local",
                         "action", "End.DT4", "vrftable", str(vrf_table), "dev", dt4_dev,
                         "table", str(table))
        finally:
            for fam in ("-4", "-6"):
                self.run("ip", fam, "route", "flush", "table", str(table))
            self.run("ip", "link", "del", "dev", vrf_dev)

    def tunnels(self) -> None:
        dev = f"l3p{self.tag}t"
        if self.attempt("ip6tnl", "ip", "link", "add", dev, "type", "ip6tnl", "mode", "ip6ip6",
                        "local", f"{_DOC_NET}::1", "remote", f"{_DOC_NET}::2"):
            self.run("ip", "link", "del", "dev", dev)

    def nftables(self) -> None:
        if shutil.which("nft") is None:
            self.results["nftables"] = (False, "nft binary not found in PATH")
        else:
            self.attempt("nftables", "nft", "list", "tables")

    def tc(self) -> None:
        dev, peer, ifb = f"l3p{self.tag}a", f"l3p{self.tag}b", f"l3p{self.tag}i"
        tc_names = ("tc_htb", "tc_tbf", "tc_police", "tc_matchall", "tc_ifb_redirect")
        if not self.attempt("_veth", "ip", "link", "add", dev, "type", "veth", "peer", "name", peer):
            why = f"no scratch veth to probe on: {self.results.pop('_veth')[1]}"
            self.results.update({n: (False, why) for n in tc_names})
            return
        self.results.pop("_veth")
        try:
            self.attempt("tc_htb", "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb")
            self.attempt("tc_tbf", "tc", "qdisc", "replace", "dev", dev, "root", "handle", "2:", "tbf",
                         "rate", "1mbit", "burst", "64kb", "latency", "50ms")
            if not self.attempt("_ingress", "tc", "qdisc", "add", "dev", dev, "ingress"):
                why = f"no ingress qdisc: {self.results.pop('_ingress')[1]}"
                self.results.update({n: (False, why) for n in ("tc_police", "tc_matchall", "tc_ifb_redirect")})
                return
            self.results.pop("_ingress")
            filt = ["tc", "filter", "add", "dev", dev, "ingress", "protocol", "all"]
            self.attempt("tc_police", *filt, "pref", "1", "u32", "match", "u32", "0", "0",
                         "action", "police", "rate", "1mbit", "burst", "64kb", "conform-exceed", "drop/ok")
            self.attempt("tc_matchall", *filt, "pref", "2", "matchall")
            if self.attempt("tc_ifb_redirect", "ip", "link", "add", ifb, "type", "ifb"):
                self.attempt("tc_ifb_redirect", *filt, "pref", "3", "u32", "match", "u32", "0", "0",
                             "action", "mirred", "egress", "redirect", "dev", ifb)
        finally:
            self.run("ip", "link", "del", "dev", dev)  # takes the peer, qdiscs and filters with it
            self.run("ip", "link", "del", "dev", ifb)

    def all(self) -> None:
        self.routing()
        self.tunnels()
        self.nftables()
        self.tc()

    def features(self) -> Features:
        names = Features.names()
        return Features(**{n: self.results.get(n, (False, ""))[0] for n in names},
                        reasons=tuple((n, why) for n, (ok, why) in sorted(self.results.items())
                                      if not ok and n in names),
                        probed_in=self.netns or "(current namespace)")


_cache: dict[str | None, Features] = {}
_lock = threading.Lock()


def _probe_in_scratch() -> Features:
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(4)}"
    created = command(["ip", "netns", "add", name])
    if created.returncode != 0:
        prober = _Prober(None, scratch=False)
        prober.all()
        return prober.features()
    try:
        prober = _Prober(name, scratch=True)
        prober.all()
        return prober.features()
    finally:
        command(["ip", "netns", "del", name])


def detect(netns: str | None = None, *, refresh: bool = False) -> Features:
    """The features of this kernel, probed in a scratch namespace (``netns`` None) or
    inside ``netns``; cached per ``netns``."""
    with _lock:
        if not refresh and netns in _cache:
            return _cache[netns]
        if netns is None:
            found = _probe_in_scratch()
        else:
            prober = _Prober(netns, scratch=False)
            prober.all()
            found = prober.features()
        _cache[netns] = found
        return found
