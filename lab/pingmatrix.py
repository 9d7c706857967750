"""Every endpoint pings every other endpoint (IPv4 and IPv6 where both have it), and
the verdict is read on the receiving side.

Tenants may reuse addresses (B's 10.0.0.2 is A's 10.0.0.2), so a ping's answer does
not say *who* answered: from an A endpoint, B's 10.0.0.2 is A's own 10.0.0.2. The
matrix is therefore defined by endpoint identity. For each (source, destination,
family) the source pings the destination's address once, and the destination's own
stack counts the echo requests it received (``Icmp InEchos`` in /proc/net/snmp,
``Icmp6InEchos`` in /proc/net/snmp6, read in its namespace before and after):

- same tenant: *reached* when the ping was answered and the destination counted it;
- different tenants: *isolated* when the destination counted nothing, whatever the
  ping did (it may well be answered by the source tenant's own twin address).

Probes run one at a time so that no other probe can move a counter. A same-tenant
probe that fails is tried twice more (the first packet may wait for ARP/ND, a loaded
machine may be slow).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass

from .labstate import LabState, enter_argv
from .topology import Topology

PING_WAIT = 1  # seconds ping waits for the answer
RETRIES = 2  # extra attempts for a same-tenant probe


@dataclass(frozen=True)
class Probe:
    src: str
    dst: str
    family: int  # 4 or 6
    address: str  # the destination's address, pinged from the source
    same_tenant: bool


@dataclass(frozen=True)
class Result:
    probe: Probe
    answered: bool  # the ping got a reply (from whoever holds that address in the source's tenant)
    received: int  # echo requests the destination endpoint's own stack counted

    @property
    def verdict(self) -> str:
        """reached | isolated (as expected) or unreached | leaked (wrong)."""
        if self.probe.same_tenant:
            return "reached" if self.answered and self.received > 0 else "unreached"
        return "isolated" if self.received == 0 else "leaked"

    @property
    def ok(self) -> bool:
        return self.verdict in ("reached", "isolated")

    def to_dict(self) -> dict:
        return {**asdict(self.probe), "answered": self.answered, "received": self.received,
                "verdict": self.verdict, "ok": self.ok}


def probes(topo: Topology) -> list[Probe]:
    out = []
    for s in topo.endpoints:
        for d in topo.endpoints:
            if s.name == d.name:
                continue
            for fam, src_addr, dst_addr in ((4, s.ipv4, d.ipv4), (6, s.ipv6, d.ipv6)):
                if src_addr and dst_addr:
                    out.append(Probe(s.name, d.name, fam, dst_addr, s.tenant == d.tenant))
    return out


def echo_counts(state: LabState, endpoint: str) -> tuple[int, int]:
    """(IPv4, IPv6) echo requests the endpoint's stack has received."""
    text = subprocess.run(enter_argv(state.node(endpoint), ["cat", "/proc/net/snmp", "/proc/net/snmp6"]),
                          capture_output=True, text=True, check=True, timeout=10).stdout
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Icmp:"))
    v4 = dict(zip(lines[head].split()[1:], lines[head + 1].split()[1:]))["InEchos"]
    m = re.search(r"^Icmp6InEchos\s+(\d+)", text, re.M)
    return int(v4), int(m.group(1)) if m else 0


def ping(state: LabState, src: str, family: int, address: str) -> bool:
    argv = ["ping", f"-{family}", "-n", "-q", "-c", "1", "-W", str(PING_WAIT), address]
    return subprocess.run(enter_argv(state.node(src), argv), capture_output=True,
                          timeout=PING_WAIT + 10).returncode == 0


def run_probe(state: LabState, p: Probe) -> Result:
    idx = 0 if p.family == 4 else 1
    before = echo_counts(state, p.dst)[idx]
    answered = False
    for _ in range(1 + (RETRIES if p.same_tenant else 0)):
        answered = ping(state, p.src, p.family, p.address)
        if answered:
            break
    return Result(p, answered, echo_counts(state, p.dst)[idx] - before)


def run(state: LabState, topo: Topology) -> list[Result]:
    return [run_probe(state, p) for p in probes(topo)]


def summary(results: list[Result]) -> dict:
    same = [r for r in results if r.probe.same_tenant]
    cross = [r for r in results if not r.probe.same_tenant]
    return {"ok": all(r.ok for r in results), "probes": len(results),
            "same_tenant": len(same), "same_tenant_reached": sum(r.verdict == "reached" for r in same),
            "cross_tenant": len(cross), "cross_tenant_leaked": sum(r.verdict == "leaked" for r in cross),
            "wrong": [f"{r.probe.src} -> {r.probe.dst} IPv{r.probe.family} {r.verdict}"
                      for r in results if not r.ok]}

