"""``l3fab lab up``/``down``: a containerlab file deployed as Linux network namespaces.

What containerlab would make a container, this makes a namespace pair (network +
UTS, so every node has its own hostname), named ``l3lab-<lab>-<node>``:

- every link is a veth whose ends carry the node-side names :mod:`lab.topology`
  gives them (``Ethernet0`` on a sonic-vs node, else the file's name) and the link's
  MTU; sysctls come from the file (defaults < kinds < groups < node), on top of
  forwarding for routers;
- SONiC leaves and spines run FRR (zebra, bgpd, staticd with ``-N <netns>``),
  configured with exactly the file ``l3fab render frr`` prints (kept as
  ``<workdir>/<node>/frr.conf``);
- hosts run ``l3fab run`` with their rendered YAML (``l3fab.yaml``); the copy it runs
  (``l3fab.lab.yaml``) differs only in ``tenancy.state-file``, which must be per node
  here because the nodes share one file system, and its API socket is given with
  ``--socket``. Tenants and endpoints are then created through the l3fab CLI
  (:func:`lab.render.intent_requests`);
- endpoints are namespaces configured as guests by :func:`lab.render.endpoint_commands`.

``--engine`` overrides the leaves' and spines' engine: ``frr``, ``l3fab`` (their
rendered l3fab YAML: role leaf/spine, host-locator filters on leaves) or ``mixed``
(FRR spines, l3fab leaves).

Everything is recorded in the state file before it is created (:mod:`lab.labstate`).
``up`` on a lab that is up and healthy changes nothing. A lab that is only partly up
(an ``up`` that crashed or was interrupted, a daemon that died, a namespace someone
deleted) is torn down from its state file and built again from scratch: rebuilding
is quick and leaves no doubt about what runs.
"""
from __future__ import annotations

import hashlib
import os
import pwd
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from l3fab.lab.netns import BASE_SYSCTLS, FORWARDING_SYSCTLS, FRR_SBIN
from l3fab.lab.render import endpoint_commands, intent_requests, l3fab_config, render_frr, render_l3fab
from l3fab.lab.topology import Topology

from . import labstatus
from .labstate import (LabState, LabStateError, NodeRecord, ProcessRecord, check_name, enter_argv,
                       existing_netns, is_ours, load, lock_path, locked, netns_name, proc_start_time, require, save,
                       state_dir, teardown, vtysh_argv)

REPO = Path(__file__).resolve().parents[1]
ENGINE_CHOICES = ("frr", "l3fab", "mixed")
FRR_DAEMONS = ("zebra", "bgpd", "staticd")
FRR_USER = "frr"
FRR_RUN_ROOT = Path("/var/run/frr")
START_TIMEOUT = 30.0
SESSION_TIMEOUT = 90.0
ROUTE_TIMEOUT = 60.0
_SYSCTL_KEY = re.compile(r"^net\.[A-Za-z0-9_.-]+$")
# vtysh reports config errors on stdout, some with exit code 0 ("% Can't open ... vtysh.conf" is harmless)
_VTYSH_ERROR = re.compile(r"% (Unknown command|Command incomplete|Ambiguous command|Invalid)")

Say = Callable[[str], None]


class DeployError(RuntimeError):
    """Bringing the lab up failed (a daemon died, a wait timed out): one line, the lab is
    left as it is for inspection and ``lab down`` removes it."""


# ------------------------------------------------------------------ what runs where


def node_engines(topo: Topology, engine: str | None) -> dict[str, str]:
    """Node -> ``frr`` | ``l3fab`` | ``none``; ``engine`` overrides the fabric nodes' label."""
    if engine is not None and engine not in ENGINE_CHOICES:
        raise LabStateError(f"--engine: {engine!r} is not one of {', '.join(ENGINE_CHOICES)}")
    out = {}
    for n in topo.nodes:
        if n.role == "endpoint":
            out[n.name] = "none"
        elif n.role == "host":
            if n.engine != "l3fab":
                raise LabStateError(f"topology.nodes.{n.name}.labels.l3fab.engine: {n.engine!r} is not supported "
                                    "by `lab up` on a host (tenant endpoints need l3fab's dataplane)")
            out[n.name] = "l3fab"
        elif engine is None:
            out[n.name] = n.engine
        elif engine == "mixed":
            out[n.name] = "frr" if n.role == "spine" else "l3fab"
        else:
            out[n.name] = engine
    return out


def clab_sysctls(topo: Topology, node: str) -> dict[str, str]:
    """The node's ``sysctls`` merged as containerlab does (defaults < kind < group < node);
    only ``net.*`` keys exist per network namespace."""
    data = yaml.safe_load(Path(topo.source).read_text()) if topo.source else {}
    t = (data or {}).get("topology") or {}
    spec = (t.get("nodes") or {}).get(node) or {}
    kind = topo.node(node).kind
    layers = [("topology.defaults", t.get("defaults") or {}),
              (f"topology.kinds.{kind}", (t.get("kinds") or {}).get(kind) or {})]
    if spec.get("group"):
        layers.append((f"topology.groups.{spec['group']}", (t.get("groups") or {}).get(spec["group"]) or {}))
    layers.append((f"topology.nodes.{node}", spec))
    out: dict[str, str] = {}
    for where, layer in layers:
        values = layer.get("sysctls") or {}
        if not isinstance(values, dict):
            raise LabStateError(f"{where}.sysctls: {values!r} is not a mapping")
        for k, v in values.items():
            if not _SYSCTL_KEY.match(str(k)) or isinstance(v, (dict, list, bool)) or v is None:
                raise LabStateError(f"{where}.sysctls.{k}: {v!r} is not a net.* sysctl with a value")
            out[str(k)] = str(v)
    return out


def digest(topo: Topology) -> str:
    return hashlib.sha256(Path(topo.source).read_bytes()).hexdigest() if topo.source else ""


def health(state: LabState) -> str | None:
    """None when the lab is completely up, else what is wrong (one phrase)."""
    if state.phase != "up":
        return f"its `lab up` stopped while {state.phase}"
    present = existing_netns()
    missing = [n.name for n in state.nodes if n.netns not in present]
    if missing:
        return f"namespaces missing: {', '.join(missing)}"
    dead = [f"{p.node}/{p.daemon}" for p in state.processes if not is_ours(p)]
    if dead:
        return f"processes gone: {', '.join(dead)}"
    return None


# ------------------------------------------------------------------ up / down


def up(topo: Topology, name: str | None = None, engine: str | None = None, say: Say = print) -> str:
    """Bring the lab up (or find it up); returns ``"up"``, ``"rebuilt"`` or ``"unchanged"``."""
    name = check_name(name or topo.name)
    engines = node_engines(topo, engine)
    label = engine or "file"
    with locked(name):
        state = load(name)
        outcome = "up"
        if state is not None:
            problem = health(state)
            same = (state.topology, state.digest, state.engine) == (str(Path(topo.source).resolve()),
                                                                     digest(topo), label)
            if problem is None and same:
                say(f"lab {name} is already up ({len(state.nodes)} nodes, engine {state.engine}); nothing changed")
                return "unchanged"
            if problem is None:
                raise LabStateError(f"--name: lab {name!r} is up from {state.topology} (engine {state.engine}); "
                                    f"run `l3fab lab down --name {name}` first")
            say(f"lab {name} is only partly up ({problem}): removing it and building it again")
            errors = teardown(state, say)
            if errors:
                raise DeployError(f"lab {name}: could not remove the partial lab: {'; '.join(errors)}")
            outcome = "rebuilt"
        taken = sorted({netns_name(name, n.name) for n in topo.nodes} & existing_netns())
        if taken:
            raise LabStateError(f"--name: namespace {taken[0]!r} exists but lab {name!r} has no state file; "
                                f"remove it (ip netns del) or pick another --name")
        Deployment(topo, name, label, engines, say).create()
    return outcome


def down(name: str, say: Say = print) -> None:
    require(check_name(name))  # before taking the lock: a lab that is not up leaves no lock file behind
    with locked(name):
        errors = teardown(require(name), say)
        if not errors:
            lock_path(name).unlink(missing_ok=True)
    if errors:
        raise DeployError(f"lab {name}: teardown incomplete (state kept, run `lab down` again): {'; '.join(errors)}")


class Deployment:
    """One ``create()``: every step records before it acts."""

    def __init__(self, topo: Topology, name: str, engine_label: str, engines: dict[str, str], say: Say) -> None:
        self.topo = topo
        self.say = say
        self.popens: dict[tuple[str, str], subprocess.Popen] = {}
        workdir = state_dir() / name
        self.state = LabState(name=name, topology=str(Path(topo.source).resolve()), digest=digest(topo),
                              engine=engine_label, workdir=str(workdir))
        for n in topo.nodes:
            eng = engines[n.name]
            netns = netns_name(name, n.name)
            d = workdir / n.name
            self.state.nodes.append(NodeRecord(
                name=n.name, role=n.role, engine=eng, netns=netns, uts_file=str(d / "uts"), dir=str(d),
                socket=str(d / "l3fab.sock") if eng == "l3fab" else None,
                frr_dir=str(FRR_RUN_ROOT / netns) if eng == "frr" else None,
                peers=[a.ifname if eng == "frr" else a.peer for a in n.neighbors]))

    def nodes(self, *engines: str) -> list[NodeRecord]:
        return [n for n in self.state.nodes if n.engine in engines]

    def create(self) -> None:
        t0 = time.monotonic()
        save(self.state)  # nothing exists yet: from here on `lab down` can remove what follows
        n_frr, n_l3 = len(self.nodes("frr")), len(self.nodes("l3fab"))
        self.say(f"lab {self.state.name}: {len(self.state.nodes)} nodes from {self.state.topology} "
                 f"(FRR on {n_frr}, l3fab on {n_l3}, {len(self.topo.endpoints)} endpoints)")
        self._files()
        self._namespaces()
        self._links()
        self.say(f"namespaces and {len(self.topo.links)} veth links ready ({time.monotonic() - t0:.1f} s)")
        for n in self.nodes("l3fab"):
            self._start_l3fab(n)
        self._start_frr()
        self._wait_l3fab_api()
        self._intent()
        self._wait_sessions()
        self._wait_routes()
        self.state.phase = "up"
        save(self.state)
        self.say(f"lab {self.state.name} is up ({time.monotonic() - t0:.1f} s)")

    # -- files, namespaces, links ------------------------------------------

    def _files(self) -> None:
        self.state.phase = "writing configs"
        frr_user = pwd.getpwnam(FRR_USER) if self.nodes("frr") else None
        for n in self.state.nodes:
            d = Path(n.dir)
            d.mkdir(parents=True, exist_ok=True)
            d.parent.chmod(0o755)
            d.chmod(0o755)
            Path(n.uts_file).touch()
            if n.engine == "frr":
                (d / "frr.conf").write_text(render_frr(self.topo, n.name))
                (d / "empty.conf").write_text("")
                (d / n.netns).mkdir(exist_ok=True)
                (d / n.netns / "vtysh.conf").write_text("")
                assert frr_user is not None  # looked up since there are FRR nodes
                os.chown(d, frr_user.pw_uid, frr_user.pw_gid)
            elif n.engine == "l3fab":
                (d / "l3fab.yaml").write_text(render_l3fab(self.topo, n.name))
                if n.role == "host":
                    cfg = l3fab_config(self.topo, n.name)
                    cfg["tenancy"]["state-file"] = str(d / "intent.json")
                    (d / "l3fab.lab.yaml").write_text(
                        f"# {n.name}: l3fab.yaml (rendered) with a per-node tenancy.state-file for this lab\n"
                        + yaml.safe_dump(cfg, sort_keys=False))
        save(self.state)

    def _namespaces(self) -> None:
        self.state.phase = "creating namespaces"
        save(self.state)
        for n in self.state.nodes:
            _run(["ip", "netns", "add", n.netns])
            _run(["unshare", f"--uts={n.uts_file}", "hostname", n.name])
            values = dict(BASE_SYSCTLS)
            if n.role != "endpoint":
                values.update(FORWARDING_SYSCTLS)
            values.update(clab_sysctls(self.topo, n.name))
            _run(enter_argv(n, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())]))

    def _links(self) -> None:
        self.state.phase = "creating links"
        save(self.state)
        rec = {n.name: n for n in self.state.nodes}
        for link in self.topo.links:
            a, b = link.a, link.b
            _run(["ip", "-n", rec[a.node].netns, "link", "add", a.ifname, "mtu", str(link.mtu), "type", "veth",
                  "peer", "name", b.ifname, "netns", rec[b.node].netns, "mtu", str(link.mtu)])
        for node in self.topo.nodes:
            lines = ["link set dev lo up"] + [f"link set dev {p.ifname} up" for p in node.ports]
            if node.loopback:
                lines.append(f"address add {node.loopback} dev lo")
            _run(["ip", "-n", rec[node.name].netns, "-batch", "-"], input="\n".join(lines) + "\n")
        for ep in self.topo.endpoints:
            for cmd in endpoint_commands(self.topo, ep.name):
                _run(["ip", "-n", rec[ep.name].netns, *cmd[1:]])

    # -- daemons -------------------------------------------------------------

    def _spawn(self, node: NodeRecord, daemon: str, argv: list[str]) -> None:
        log = Path(node.dir) / f"{daemon}.stdout.log"
        rec = ProcessRecord(node.name, daemon, [str(a) for a in argv], str(log))
        self.state.processes.append(rec)
        save(self.state)
        with open(log, "ab") as out:
            p = subprocess.Popen(enter_argv(node, rec.argv), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        rec.pid, rec.start_time = p.pid, proc_start_time(p.pid)
        save(self.state)
        self.popens[(node.name, daemon)] = p

    def _check_alive(self) -> None:
        for (node, daemon), p in self.popens.items():
            if p.poll() is not None:
                rec = next(r for r in self.state.processes if (r.node, r.daemon) == (node, daemon))
                tail = Path(rec.log).read_text(errors="replace").strip().splitlines()[-3:]
                raise DeployError(f"{node}: {daemon} exited with {p.returncode}: {' | '.join(tail)} "
                                  f"(logs in {Path(rec.log).parent})")

    def _start_l3fab(self, n: NodeRecord) -> None:
        cfg = Path(n.dir) / ("l3fab.lab.yaml" if n.role == "host" else "l3fab.yaml")
        self._spawn(n, "l3fab", [sys.executable, "-m", "l3fab.cli.main", "run", "--config", str(cfg),
                                 "--socket", _socket(n), "--log-level", "info"])

    def _frr_argv(self, n: NodeRecord, daemon: str) -> list[str]:
        return [str(FRR_SBIN / daemon), "-N", n.netns, "-F", "datacenter", "-P", "0",
                "-f", str(Path(n.dir) / "empty.conf"), "--log", f"file:{Path(n.dir) / daemon}.log",
                "--log-level", "informational"]

    def _start_frr(self) -> None:
        nodes = self.nodes("frr")
        if not nodes:
            return
        self.state.phase = "starting FRR"
        user = pwd.getpwnam(FRR_USER)
        for n in nodes:
            Path(_frr_dir(n)).mkdir(parents=True, exist_ok=True)
            os.chown(_frr_dir(n), user.pw_uid, user.pw_gid)
            self._spawn(n, "zebra", self._frr_argv(n, "zebra"))
        # bgpd and staticd that find no zserv.api retry only after 10 s
        self._wait("FRR zebra", lambda: self._count(nodes, lambda n: (Path(_frr_dir(n)) / "zserv.api").exists()),
                   START_TIMEOUT, "zebras listening", quiet=True)
        for n in nodes:
            for daemon in FRR_DAEMONS[1:]:
                self._spawn(n, daemon, self._frr_argv(n, daemon))
        self._wait("FRR daemons", lambda: self._count(nodes, _frr_ready), START_TIMEOUT, "FRR instances ready",
                   quiet=True)
        procs = [(n, subprocess.Popen([*vtysh_argv(n), "-f", str(Path(n.dir) / "frr.conf")],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)) for n in nodes]
        for n, p in procs:
            out, _ = p.communicate(timeout=60)
            bad = [line for line in out.splitlines() if _VTYSH_ERROR.search(line)]
            if p.returncode != 0 or bad:
                raise DeployError(f"{n.name}: vtysh -f {Path(n.dir) / 'frr.conf'} failed: "
                                  f"{(bad or out.strip().splitlines() or ['exit ' + str(p.returncode)])[0]}")
        self.say(f"FRR running on {len(nodes)} nodes with their rendered frr.conf")

    def _wait_l3fab_api(self) -> None:
        nodes = self.nodes("l3fab")
        self.state.phase = "starting l3fab"

        def api_up(n: NodeRecord) -> bool:
            try:
                labstatus.api(n, "status")
                return True
            except labstatus.QueryError:
                return False

        self._wait("l3fab", lambda: self._count(nodes, api_up), START_TIMEOUT, "l3fab APIs answering", quiet=True)
        self.say(f"l3fab running on {len(nodes)} nodes")

    def _intent(self) -> None:
        """Tenants and endpoints through each host's l3fab API (what is there already is kept)."""
        self.state.phase = "creating tenants and endpoints"
        for n in self.nodes("l3fab"):
            if n.role != "host":
                continue
            have = {"tenant": {t["name"] for t in labstatus.api(n, "tenant_list")},
                    "endpoint": {e["name"] for e in labstatus.api(n, "endpoint_list")}}
            done = []
            for req in intent_requests(self.topo, n.name):
                if req.name in have[req.kind]:
                    continue
                cmd = " ".join(req.command)
                try:
                    labstatus.api(n, req.method, **req.params)
                    err = ""
                except labstatus.QueryError as e:
                    err = str(e)
                with open(Path(n.dir) / "intent.log", "a") as f:
                    f.write(f"$ {cmd}  -> {err or 'ok'}\n")
                if err:
                    raise DeployError(f"{n.name}: `{cmd}` failed: {err}")
                done.append(f"{req.kind} {req.name}")
            self.say(f"{n.name}: " + (", ".join(done) if done else "tenants and endpoints already there"))

    # -- waiting -------------------------------------------------------------

    @staticmethod
    def _count(nodes: list[NodeRecord], ok: Callable[[NodeRecord], bool]) -> tuple[int, int, str]:
        good = [n.name for n in nodes if ok(n)]
        return len(good), len(nodes), ", ".join(n.name for n in nodes if n.name not in good)

    def _wait(self, what: str, fn: Callable[[], tuple[int, int, str]], timeout: float, unit: str,
              quiet: bool = False, interval: float = 0.1) -> None:
        """Poll ``fn`` -> (done, total, what is missing) until done == total, reporting progress."""
        start = time.monotonic()
        last = None
        while True:
            self._check_alive()
            try:
                done, total, missing = fn()
            except (labstatus.QueryError, subprocess.TimeoutExpired) as e:
                done, total, missing = -1, 0, str(e)
            if done == total:
                if not quiet:
                    self.say(f"{what}: {done}/{total} {unit} ({time.monotonic() - start:.1f} s)")
                return
            if not quiet and done >= 0 and (done, total) != last:
                self.say(f"waiting for {what}: {done}/{total} {unit}")
                last = (done, total)
            if time.monotonic() - start > timeout:
                raise DeployError(f"{what}: not ready after {timeout:g} s ({max(done, 0)}/{total} {unit}); "
                                  f"waiting for: {missing[:300]} (logs in {self.state.workdir})")
            time.sleep(interval)

    def _wait_sessions(self) -> None:
        self.state.phase = "waiting for BGP"
        nodes = self.nodes("frr", "l3fab")

        def count() -> tuple[int, int, str]:
            done = total = 0
            missing = []
            for n in nodes:
                for peer, st in labstatus.sessions(n).items():
                    total += 1
                    if st == "Established":
                        done += 1
                    else:
                        missing.append(f"{n.name}/{peer} {st}")
            return done, total, ", ".join(missing)

        self._wait("BGP", count, SESSION_TIMEOUT, "sessions Established", interval=0.3)

    def expected_routes(self, host: str) -> dict[str, int]:
        """Tenant -> VPN routes the host must import: the addresses of the tenant's
        endpoints behind other hosts (only tenants with a local endpoint exist there)."""
        local = {e.tenant for e in self.topo.endpoints_of(host)}
        out = {t: 0 for t in local}
        for e in self.topo.endpoints:
            if e.host != host and e.tenant in local:
                out[e.tenant] += (e.ipv4 is not None) + (e.ipv6 is not None)
        return out

    def _wait_routes(self) -> None:
        self.state.phase = "waiting for VPN routes"
        hosts = [n for n in self.nodes("l3fab") if n.role == "host"]
        want = {n.name: self.expected_routes(n.name) for n in hosts}

        def count() -> tuple[int, int, str]:
            done = total = 0
            missing = []
            for n in hosts:
                have = labstatus.vrf_routes(n)
                for tenant, w in want[n.name].items():
                    total += w
                    done += min(w, have.get(tenant, 0))
                    if have.get(tenant, 0) < w:
                        missing.append(f"{n.name}/VRF {tenant} {have.get(tenant, 0)}/{w}")
            return done, total, ", ".join(missing)

        self._wait("VPN routes in the hosts' VRFs", count, ROUTE_TIMEOUT, "imported", interval=0.3)


def _socket(n: NodeRecord) -> str:
    """An l3fab node's API socket (set for every l3fab node)."""
    assert n.socket is not None, f"{n.name} has no l3fab API socket"
    return n.socket


def _frr_dir(n: NodeRecord) -> str:
    """An FRR node's pathspace directory (set for every FRR node)."""
    assert n.frr_dir is not None, f"{n.name} has no FRR directory"
    return n.frr_dir


def _frr_ready(n: NodeRecord) -> bool:
    try:
        daemons = set(labstatus.vtysh(n, "show daemons").split())
        clients = {row.split()[0] for row in labstatus.vtysh(n, "show zebra client summary").splitlines()
                   if row.strip()}
    except (labstatus.QueryError, subprocess.TimeoutExpired):
        return False
    return daemons >= set(FRR_DAEMONS) and clients >= {"bgp", "static"}


def _run(argv: list[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=60)
    if p.returncode != 0:
        raise DeployError(f"`{' '.join(argv)}` failed: {(p.stderr or p.stdout).strip()[:300]}")
    return p


def lab_env(node: NodeRecord) -> dict[str, Any]:
    """Environment for a command run inside ``node`` (``lab exec``): the l3fab CLI finds
    the node's API socket, and ``l3fab`` itself is on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if node.socket:
        env["L3FAB_SOCKET"] = node.socket
    return env
