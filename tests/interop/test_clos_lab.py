"""``l3fab lab``: the Clos lab of lab/clos-topology.clab.yml as network namespaces.

The CLI runs as a separate process (``python -m l3fab.cli.lab``), as a person would run it,
under a lab name unique to this test run. With FRR on the fabric (the file's engines):

- every BGP session comes up; the configs FRR and l3fab run are the rendered ones;
- the ping matrix shows every same-tenant pair reached and no packet between tenants,
  read on the receiving endpoint's own ICMP counters (tenant B reuses A's addresses);
- leaf1 loses all its links: every endpoint stays reachable through leaf2; it comes
  back and ECMP returns on hosts, spines and leaves;
- ``lab down`` leaves no namespace, process, run directory or state file.

With ``--engine l3fab`` a first ``up`` is killed half-way (SIGKILL): the next ``up``
removes the remains from the state file and builds the lab again.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from l3fab.lab import deploy, labstate, labstatus, pingmatrix, render, topology
from l3fab.lab.netns import wait_until

REPO = Path(__file__).resolve().parents[2]
TOPO = topology.load()
RUN = secrets.token_hex(3)
FABRIC = [n for n in TOPO.nodes if n.fabric]
SESSIONS = sum(len(n.neighbors) for n in TOPO.nodes if n.role != "endpoint")
namespaces_needed = pytest.mark.interop("frr")


def lab_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("L3FAB_LAB", None)
    return subprocess.run([sys.executable, "-m", "l3fab.cli.lab", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ---------------------------------------------------------------- without namespaces


def test_probes_are_every_ordered_pair_and_family():
    probes = pingmatrix.probes(TOPO)
    assert len(probes) == 8 * 7 * 2
    assert sum(p.same_tenant for p in probes) == 2 * 4 * 3 * 2
    twin = [p for p in probes if p.src == "ep-a1" and p.dst == "ep-b2" and p.family == 4]
    assert twin == [pingmatrix.Probe("ep-a1", "ep-b2", 4, "10.0.0.2", False)]


def test_verdict_is_read_on_the_receiving_side():
    same = pingmatrix.Probe("ep-a1", "ep-a2", 4, "10.0.0.2", True)
    cross = pingmatrix.Probe("ep-a1", "ep-b2", 4, "10.0.0.2", False)
    R = pingmatrix.Result
    assert R(same, True, 1).verdict == "reached"
    assert R(same, True, 0).verdict == "unreached"  # someone else answered
    assert R(same, False, 1).verdict == "unreached"
    assert R(cross, True, 0).verdict == "isolated"  # A's own 10.0.0.2 answered: fine
    assert R(cross, False, 1).verdict == "leaked"
    assert not R(cross, True, 1).ok


def test_engines_per_node():
    assert {deploy.node_engines(TOPO, None)[n.name] for n in FABRIC} == {"frr"}
    assert {deploy.node_engines(TOPO, "l3fab")[n.name] for n in FABRIC} == {"l3fab"}
    mixed = deploy.node_engines(TOPO, "mixed")
    assert {mixed[n.name] for n in TOPO.role("spine")} == {"frr"}
    assert {mixed[n.name] for n in TOPO.role("leaf")} == {"l3fab"}
    assert {mixed[n.name] for n in TOPO.hosts} == {"l3fab"}
    assert {mixed[e.name] for e in TOPO.endpoints} == {"none"}
    data = yaml.safe_load(Path(TOPO.source).read_text())
    data["topology"]["nodes"]["host2"]["labels"]["l3fab.engine"] = "frr"
    with pytest.raises(labstate.LabStateError, match=r"topology\.nodes\.host2\.labels\.l3fab\.engine: 'frr'"):
        deploy.node_engines(topology.parse(data, TOPO.source), None)


def test_sysctls_merge_like_containerlab():
    assert deploy.clab_sysctls(TOPO, "host1")["net.ipv6.conf.all.seg6_enabled"] == "1"
    assert deploy.clab_sysctls(TOPO, "leaf1") == {}


def test_bad_input_is_one_line_with_exit_code_2(tmp_path):
    assert "'/nonexistent/lab.clab.yml' cannot be read" in one_line_error(lab_cli("up", "/nonexistent/lab.clab.yml"))
    bad = tmp_path / "bad.clab.yml"
    bad.write_text(Path(TOPO.source).read_text().replace("l3fab.asn: 4200000003", "l3fab.asn: three"))
    assert "topology.nodes.host3.labels.l3fab.asn: 'three'" in one_line_error(lab_cli("up", str(bad)))
    assert "is not up" in one_line_error(lab_cli("down", "--name", f"t{RUN}none"))
    assert "--engine: 'vpp'" in one_line_error(lab_cli("up", "--engine", "vpp", "--name", f"t{RUN}none"))
    assert "--name: 'no/slash'" in one_line_error(lab_cli("status", "--name", "no/slash"))
    assert not labstate.lock_path(f"t{RUN}none").exists()


# ---------------------------------------------------------------- helpers for a running lab


def status(name: str) -> dict:
    proc = lab_cli("status", "--name", name, "--json")
    return json.loads(proc.stdout)


def all_established(name: str) -> bool:
    nodes = status(name)["nodes"]
    return sum(n["established"] for n in nodes) == SESSIONS


def ecmp_expected() -> list[tuple[str, str]]:
    """(node, prefix) whose kernel route must have two next hops: a host to the other
    rack's locators (its two leaves), a spine to every locator (the rack's two leaves),
    a leaf to the other rack's locators (the two spines)."""
    out = []
    for h in TOPO.hosts:
        out += [(h.name, o.locator) for o in TOPO.hosts if o.rack != h.rack]
        out += [(s.name, h.locator) for s in TOPO.role("spine")]
        out += [(leaf.name, h.locator) for leaf in TOPO.role("leaf") if leaf.rack != h.rack]
    return out


def not_ecmp(name: str) -> list[tuple[str, str, list[str]]]:
    wrong = []
    for node, prefix in ecmp_expected():
        devs = labstatus.nexthop_devices(labstate.netns_name(name, node), prefix)
        if len(devs) != 2:
            wrong.append((node, prefix, devs))
    return wrong


def set_links(name: str, node: str, state: str) -> None:
    for port in TOPO.node(node).ports:
        subprocess.run(["ip", "-n", labstate.netns_name(name, node), "link", "set", "dev", port.ifname, state],
                       check=True)


def assert_all_gone(state: labstate.LabState) -> None:
    listed = labstate.existing_netns()
    assert not [ns for ns in listed if ns.startswith(f"{labstate.NETNS_PREFIX}-{state.name}-")]
    alive = [f"{p.node}/{p.daemon} {p.pid}" for p in state.processes if labstate.is_ours(p)]
    assert not alive, alive
    assert not labstate.state_path(state.name).exists()
    assert not labstate.lock_path(state.name).exists()
    assert not list(labstate.state_dir().glob(f"{state.name}.*")), list(labstate.state_dir().glob(f"{state.name}.*"))
    assert not Path(state.workdir).exists()
    assert not [n.frr_dir for n in state.nodes if n.frr_dir and Path(n.frr_dir).exists()]
    root_links = {r["ifname"] for r in json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True,
                                                                 text=True, check=True).stdout)}
    lab_links = {p.ifname for link in TOPO.links for p in link.endpoints}
    assert not root_links & lab_links, root_links & lab_links


def log_tail(name: str, node: str, daemon: str, chars: int = 3000) -> str:
    state = labstate.load(name)
    rec = next(p for p in state.processes if (p.node, p.daemon) == (node, daemon))
    return Path(rec.log).read_text(errors="replace")[-chars:]


def bring_up(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = lab_cli("up", "--name", name, *args)
    if proc.returncode != 0:
        state = labstate.load(name)
        logs = ""
        if state:
            for p in Path(state.workdir).glob("*/*.log"):
                logs += f"\n--- {p}\n{p.read_text(errors='replace')[-1500:]}"
        pytest.fail(f"lab up failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}{logs}")
    return proc


@pytest.fixture(scope="module")
def frr_lab():
    name = f"t{RUN}f"
    try:
        bring_up(name)
        yield name
    finally:
        if labstate.load(name) is not None:
            lab_cli("down", "--name", name)


# ---------------------------------------------------------------- FRR fabric (the file's engines)


@namespaces_needed
def test_every_session_established_with_the_rendered_configs(frr_lab):
    st = status(frr_lab)
    assert st["healthy"], st["problem"]
    by_name = {n["name"]: n for n in st["nodes"]}
    for node in TOPO.nodes:
        row = by_name[node.name]
        assert row["namespace"] and row["processes_alive"] == row["processes"]
        if node.role != "endpoint":
            assert row["established"] == len(node.neighbors) == len(row["sessions"]), row
    assert sum(n["established"] for n in st["nodes"]) == SESSIONS == 32
    for h in TOPO.hosts:
        assert by_name[h.name]["vrf_routes"] == {"A": 6, "B": 6}
    state = labstate.load(frr_lab)
    # the recorded PIDs are the daemons themselves (ip netns exec and nsenter exec, never fork)
    for p in state.processes:
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_text().split("\0")
        assert cmdline[:len(p.argv)] == p.argv and labstate.is_ours(p), (p, cmdline)
    # FRR runs exactly what `l3fab render frr` prints
    printed = subprocess.run([sys.executable, "-m", "l3fab.cli.main", "render", "frr", "--role", "leaf", "--node",
                              "leaf1"],
                             capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert (Path(state.workdir) / "leaf1" / "frr.conf").read_text() == printed
    for n in FABRIC:
        assert (Path(state.workdir) / n.name / "frr.conf").read_text() == render.render_frr(TOPO, n.name)
    running = labstatus.vtysh(state.node("leaf1"), "show running-config")
    assert "neighbor Ethernet8 interface remote-as 4200000001" in running
    assert "neighbor Ethernet8 route-map HOST-host1-VPN6-IN in" in running
    # hosts: the rendered YAML, with only the state file moved into the node's directory
    for h in TOPO.hosts:
        d = Path(state.workdir) / h.name
        assert (d / "l3fab.yaml").read_text() == render.render_l3fab(TOPO, h.name)
        ran = yaml.safe_load((d / "l3fab.lab.yaml").read_text())
        want = render.l3fab_config(TOPO, h.name)
        want["tenancy"]["state-file"] = str(d / "intent.json")
        assert ran == want
    # nodes: own hostname, interfaces named and sized as the file says
    assert lab_cli("exec", "leaf1", "--name", frr_lab, "--", "hostname").stdout.strip() == "leaf1"
    links = {node: {r["ifname"]: r for r in json.loads(subprocess.run(
        ["ip", "-j", "-n", labstate.netns_name(frr_lab, node), "link"], capture_output=True, text=True,
        check=True).stdout)} for node in ("leaf1", "host1", "ep-a1")}
    assert set(links["leaf1"]) == {"lo", "Ethernet0", "Ethernet4", "Ethernet8", "Ethernet12"}
    assert {"eth1", "eth2", "epa", "epb"} <= set(links["host1"])
    for link in TOPO.links:
        for p in link.endpoints:
            # the host side of an endpoint link is the dataplane's: it sets its own MTU there
            if p.node in links and not (p.node == "host1" and p.ifname.startswith("ep")):
                assert links[p.node][p.ifname]["mtu"] == link.mtu and "UP" in links[p.node][p.ifname]["flags"]
    assert links["ep-a1"]["eth1"]["mtu"] == 1500


@namespaces_needed
def test_up_again_changes_nothing(frr_lab):
    before = labstate.load(frr_lab)
    proc = bring_up(frr_lab)
    assert "already up" in proc.stdout and "nothing changed" in proc.stdout
    after = labstate.load(frr_lab)
    assert [(p.pid, p.start_time) for p in after.processes] == [(p.pid, p.start_time) for p in before.processes]
    assert all(labstate.is_ours(p) for p in after.processes)


@namespaces_needed
def test_ping_matrix_same_tenant_reached_other_tenant_isolated(frr_lab):
    proc = lab_cli("ping-matrix", "--name", frr_lab, "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["ok"], out["wrong"]
    assert (out["same_tenant"], out["same_tenant_reached"]) == (48, 48)
    assert (out["cross_tenant"], out["cross_tenant_leaked"]) == (64, 0)
    rows = {(r["src"], r["dst"], r["family"]): r for r in out["results"]}
    # A's 10.0.0.2 answers a1's ping to B's 10.0.0.2, but B's endpoint saw nothing
    assert rows[("ep-a1", "ep-b2", 4)]["answered"] and rows[("ep-a1", "ep-b2", 4)]["received"] == 0
    assert rows[("ep-a1", "ep-a3", 6)]["received"] >= 1


@namespaces_needed
def test_exec_runs_in_the_node(frr_lab):
    proc = lab_cli("exec", "host1", "--name", frr_lab, "--", "l3fab", "show", "rib", "--json")
    assert proc.returncode == 0, proc.stderr
    prefixes = {r["prefix"] for r in json.loads(proc.stdout)}
    assert {h.locator for h in TOPO.hosts} <= prefixes, (sorted(prefixes), log_tail(frr_lab, "host1", "l3fab"))
    assert lab_cli("exec", "ep-a1", "--name", frr_lab, "--", "sh", "-c", "exit 7").returncode == 7
    proc = lab_cli("exec", "leaf1", "--name", frr_lab, "--", "vtysh", "-c", "show bgp summary json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads(proc.stdout)["ipv6Unicast"]["peerCount"] == 4
    assert "'nosuch' is not a node of lab" in one_line_error(lab_cli("exec", "nosuch", "--name", frr_lab, "--",
                                                                      "true"))


@namespaces_needed
def test_leaf_down_endpoints_stay_reachable_then_ecmp_returns(frr_lab):
    assert not_ecmp(frr_lab) == []
    set_links(frr_lab, "leaf1", "down")
    host1, spine1 = labstate.netns_name(frr_lab, "host1"), labstate.netns_name(frr_lab, "spine1")
    try:
        wait_until(lambda: (labstatus.nexthop_devices(host1, TOPO.node("host3").locator) == ["eth2"]
                            and labstatus.nexthop_devices(spine1, TOPO.node("host1").locator) == ["Ethernet4"]),
                   30, 0.2, what="host1 and spine1 route around leaf1")
        proc = lab_cli("ping-matrix", "--name", frr_lab, "--json")
        out = json.loads(proc.stdout)
        assert proc.returncode == 0 and out["ok"], out["wrong"]
        assert out["same_tenant_reached"] == 48
    finally:
        set_links(frr_lab, "leaf1", "up")
    wait_until(lambda: all_established(frr_lab), 60, 0.5, what="every session Established again")
    wait_until(lambda: not_ecmp(frr_lab) == [], 60, 0.5, what="two next hops again on hosts, spines and leaves")


@namespaces_needed
def test_down_leaves_nothing_behind(frr_lab):
    state = labstate.load(frr_lab)
    assert len(state.processes) == 6 * 3 + 4
    proc = lab_cli("down", "--name", frr_lab)
    assert proc.returncode == 0, proc.stderr
    assert_all_gone(state)
    assert "is not up" in one_line_error(lab_cli("down", "--name", frr_lab))


# ---------------------------------------------------------------- l3fab fabric, after a crashed `up`


@namespaces_needed
def test_l3fab_engine_rebuilds_after_a_crashed_up():
    name = f"t{RUN}l"
    env = {**os.environ, "COLUMNS": "200"}
    crashed = None
    try:
        first = subprocess.Popen([sys.executable, "-m", "l3fab.cli.lab", "up", "--engine", "l3fab", "--name", name],
                                 cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: (s := labstate.load(name)) is not None and sum(p.pid is not None
                                                                               for p in s.processes) >= 3,
                       60, 0.05, what="the first `up` started daemons")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        crashed = labstate.load(name)
        assert crashed.phase != "up"
        proc = bring_up(name, "--engine", "l3fab")
        assert "only partly up" in proc.stdout
        assert not [p for p in crashed.processes if labstate.is_ours(p)], "the crashed run's daemons survived"
        st = status(name)
        assert st["healthy"] and st["engine"] == "l3fab"
        assert {n["engine"] for n in st["nodes"] if n["role"] in ("spine", "leaf")} == {"l3fab"}
        assert sum(n["established"] for n in st["nodes"]) == SESSIONS
        proc = lab_cli("ping-matrix", "--name", name)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "same tenant: 48/48 reached; other tenant: 0/64 leaked" in proc.stdout
        assert "✗" not in proc.stdout.split("same tenant:")[0].replace("✗ wrong", "")
        wait_until(lambda: not_ecmp(name) == [], 30, 0.5, what="ECMP with l3fab leaves and spines")
        state = labstate.load(name)
        assert lab_cli("down", "--name", name).returncode == 0
        assert_all_gone(state)
    finally:
        if labstate.load(name) is not None:
            lab_cli("down", "--name", name)
