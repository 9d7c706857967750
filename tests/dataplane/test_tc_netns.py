"""Rate limits with real TCP traffic: an endpoint namespace behind a host namespace
(veth ``vm-e``), the host routing on to a sink namespace (veth ``up0``).

These are functional checks that the limiter acts (generous bands around the
limit), not timing benchmarks.  Foreign qdiscs on other interfaces must survive
every apply, with and without limits.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from itertools import count

from l3fab.dataplane import tc
from l3fab.dataplane.features import detect
from l3fab.dataplane.model import PortSpec
from l3fab.lab.netns import Lab, Namespace

LIMIT = 8_000_000
SECONDS = 2.0
EP, HOST_EP, SINK, HOST_SINK = "10.1.0.2", "10.1.0.1", "10.2.0.2", "10.2.0.1"
PORT = PortSpec(name="ep1", tenant="blue", ifname="vm-e", table=100, rate_limit=LIMIT)

TRAFFIC = r'''
import socket, sys, time
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "recv":
    srv = socket.create_server((addr, port))
    srv.settimeout(30)
    conn, _ = srv.accept()
    conn.settimeout(30)
    total, first = 0, None
    while True:
        data = conn.recv(1 << 16)
        if not data:
            break
        first = first or time.monotonic()
        total += len(data)
    print(total * 8 / max(time.monotonic() - first, 1e-6), total, flush=True)
else:
    deadline = time.monotonic() + 10
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)  # little left queued at the end
    chunk, end = b"x" * 65536, time.monotonic() + float(sys.argv[4])
    while time.monotonic() < end:
        conn.sendall(chunk)
    conn.close()
'''


@dataclass
class Topo:
    lab: Lab
    host: Namespace
    ep: Namespace
    sink: Namespace
    ports = count(5201)

    def apply(self, *ports: PortSpec) -> tc.Result:
        return tc.apply(ports, self.host.netns)

    def throughput(self, src: Namespace, dst: Namespace, addr: str) -> float:
        """bit/s of one TCP flow from ``src`` to ``addr`` in ``dst``, measured by the receiver."""
        script = self.lab.workdir / "traffic.py"
        script.write_text(TRAFFIC)
        port = str(next(self.ports))
        recv = self.lab.popen(dst, [sys.executable, script, "recv", addr, port], name=f"recv{port}")
        self.lab.run(src, [sys.executable, script, "send", addr, port, SECONDS], timeout=60)
        assert recv.popen.wait(timeout=60) == 0, recv.log_text()
        rate = float(recv.log_text().split()[-2])
        print(f"{src.name} -> {dst.name}: {rate / 1e6:.2f} Mbit/s")
        return rate


def _tc_json(ns: Namespace, *args: str) -> list:
    out = ns.lab.run(ns, ["tc", "-j", *args]).stdout.strip()
    return json.loads(out) if out else []


def make_topo(lab: Lab) -> Topo:
    host, ep, sink = lab.add_namespace("host"), lab.add_namespace("ep"), lab.add_namespace("sink")
    lab.link(host, ep, "vm-e", "eth0")
    lab.link(host, sink, "up0", "eth0")
    host.add_address("vm-e", f"{HOST_EP}/24")
    ep.add_address("eth0", f"{EP}/24")
    ep.ip("route", "add", "default", "via", HOST_EP)
    host.add_address("up0", f"{HOST_SINK}/24")
    sink.add_address("eth0", f"{SINK}/24")
    sink.ip("route", "add", "default", "via", HOST_SINK)
    return Topo(lab, host, ep, sink)


def l3fab_objects(topo: Topo) -> dict:
    """Everything on the host that carries one of tc.py's tags."""
    qdiscs = [q for q in _tc_json(topo.host, "qdisc", "show") if q.get("handle") == tc.ROOT_HANDLE]
    ingress = [q for q in _tc_json(topo.host, "qdisc", "show", "dev", "vm-e") if q["kind"] == "ingress"]
    ifbs = [link["ifname"] for link in topo.host.ip_json("link", "show", "type", "ifb")]
    return {"root": [q["dev"] for q in qdiscs], "ingress": len(ingress), "ifbs": ifbs}


def assert_limited(rate: float, what: str) -> None:
    assert 0.3 * LIMIT < rate < 2 * LIMIT, f"{what}: {rate / 1e6:.2f} Mbit/s with a {LIMIT / 1e6:g} Mbit/s limit"


def test_limit_holds_both_ways_and_removal_restores_speed(lab: Lab):
    topo = make_topo(lab)
    mode = tc.ingress_mode(detect(topo.host.netns))

    first = topo.apply(PORT)
    assert first.errors == () and first.actions, first
    assert first.ingress == mode
    assert topo.apply(PORT).actions == ()  # level-triggered: nothing differs the second time
    objects = l3fab_objects(topo)
    assert "vm-e" in objects["root"]
    if mode == tc.INGRESS_IFB:
        assert objects["ifbs"] == [tc.ifb_name("vm-e")] and objects["ingress"] == 1

    towards = topo.throughput(topo.sink, topo.ep, EP)
    assert_limited(towards, "sink -> endpoint (egress tbf)")
    if mode == tc.INGRESS_NONE:
        print(f"ingress not limited on this kernel: {first.notes}")
    else:
        assert_limited(topo.throughput(topo.ep, topo.sink, SINK), f"endpoint -> sink (ingress, {mode})")

    counters = tc.stats([PORT], topo.host.netns)["ep1"]
    assert counters["rate_limit"] == LIMIT and counters["interface"] == "vm-e"
    assert counters["egress"]["sent_bytes"] > towards * SECONDS / 8 / 4
    if mode != tc.INGRESS_NONE:
        assert counters["ingress"]["sent_bytes"] > LIMIT * SECONDS / 8 / 4
        assert counters["ingress"]["mode"] == mode
    assert counters["sent_bytes"] == sum(d["sent_bytes"] for d in (counters["egress"], counters["ingress"]) if d)

    unlimited = replace(PORT, rate_limit=None)
    removed = topo.apply(unlimited)
    assert removed.errors == () and removed.actions
    assert topo.apply(unlimited).actions == ()
    assert l3fab_objects(topo) == {"root": [], "ingress": 0, "ifbs": []}
    assert tc.stats([unlimited], topo.host.netns)["ep1"]["egress"] is None

    assert topo.throughput(topo.sink, topo.ep, EP) > 5 * LIMIT
    assert topo.throughput(topo.ep, topo.sink, SINK) > 5 * LIMIT


def test_rate_change_is_applied_in_place(lab: Lab):
    topo = make_topo(lab)
    topo.apply(PORT)
    faster = replace(PORT, rate_limit=4 * LIMIT)
    changed = topo.apply(faster)
    assert changed.errors == () and changed.actions
    assert not any("add" in s.argv[2:3] and s.argv[1] == "link" for s in changed.actions)  # ifb kept
    root = [q for q in _tc_json(topo.host, "qdisc", "show", "dev", "vm-e") if q.get("root")][0]
    assert root["options"]["rate"] == 4 * LIMIT // 8
    assert topo.apply(faster).actions == ()


def test_foreign_qdiscs_stay_untouched(lab: Lab):
    topo = make_topo(lab)
    host = topo.host
    for name in ("vm-f", "vm-g"):
        other = lab.add_namespace(f"ep-{name}")
        lab.link(host, other, name, "eth0")
    lab.run(host, ["tc", "qdisc", "add", "dev", "vm-f", "root", "handle", "7:", "htb", "default", "1"])
    lab.run(host, ["tc", "qdisc", "add", "dev", "vm-g", "ingress"])
    lab.run(host, ["tc", "filter", "add", "dev", "vm-g", "ingress", "protocol", "ip", "pref", "5", "u32",
                   "match", "ip", "src", "10.9.9.9/32", "flowid", "1:1"])
    lab.run(host, ["tc", "qdisc", "add", "dev", "up0", "root", "handle", "5:", "tbf", "rate", "1gbit",
                   "burst", "1mb", "latency", "10ms"])  # not an endpoint interface at all

    def foreign() -> dict:
        roots = [q for q in _tc_json(host, "qdisc", "show", "dev", "vm-f") if q.get("root")]
        for q in roots:
            q["options"].pop("direct_packets_stat", None)  # a counter: IPv6 ND passes meanwhile
        return {"vm-f": roots,
                "vm-g": _tc_json(host, "filter", "show", "dev", "vm-g", "ingress"),
                "up0": _tc_json(host, "qdisc", "show", "dev", "up0")}

    before = foreign()
    assert before["vm-f"][0]["kind"] == "htb" and before["vm-g"] and before["up0"][0]["handle"] == "5:"
    ports = [PORT, PortSpec("ep-f", "blue", "vm-f", 100, rate_limit=LIMIT),
             PortSpec("ep-g", "blue", "vm-g", 100, rate_limit=LIMIT)]
    result = topo.apply(*ports)
    assert "endpoint ep-f (interface vm-f): foreign root qdisc htb 7: present, not replacing it; " \
           "egress not limited" in result.errors
    ingress_errors = [e for e in result.errors if e.startswith("endpoint ep-g (interface vm-g): foreign")]
    if tc.ingress_mode(detect(host.netns)) != tc.INGRESS_NONE:
        assert len(ingress_errors) == 1 and len(result.errors) == 2, result.errors
    assert all("\n" not in e for e in result.errors)
    assert foreign() == before
    assert "vm-g" in l3fab_objects(topo)["root"]  # its egress was free, so it is limited

    assert topo.apply(*ports).actions == ()
    cleared = topo.apply(*(replace(p, rate_limit=None) for p in ports))
    assert cleared.errors == ()
    assert foreign() == before
    assert l3fab_objects(topo) == {"root": [], "ingress": 0, "ifbs": []}
