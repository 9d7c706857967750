"""What a namespace lab deployment owns, kept in a state file so it can always be removed.

``l3fab lab up`` records every namespace, run directory and process in
``<state dir>/<lab>.json`` *before* creating it (a process right after its start:
its PID and the kernel's start time of that PID). ``l3fab lab down`` reads the file
and removes exactly that, also after a crash or Ctrl-C in the middle of ``up``:

- a process is signalled only while ``/proc/<pid>/stat`` still shows the start time
  recorded for it, so a PID the kernel reused for something else is never touched;
- anything left inside the lab's own namespaces (their names are unique to the lab)
  is ended by PID too, then the namespaces, UTS bind mounts and run directories go;
- the state file is removed last, and only when every step worked.

The state dir is ``/run/l3fab-lab`` (``L3FAB_LAB_DIR`` overrides it): it is on tmpfs,
so it disappears with the namespaces at reboot. Writes are atomic (temp file +
rename); a lock file keeps two ``up``/``down`` of one lab from running at once.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

STATE_DIR = Path("/run/l3fab-lab")
NETNS_PREFIX = "l3lab"  # namespaces are l3lab-<lab>-<node>
LAB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")
STOP_TIMEOUT = 5.0


class LabStateError(ValueError):
    """Bad input about a lab (its name, or a lab that is not up): one line."""


def state_dir() -> Path:
    return Path(os.environ.get("L3FAB_LAB_DIR") or STATE_DIR)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not LAB_NAME.match(name):
        raise LabStateError(f"--name: {name!r} is not a lab name (1-24 of A-Z a-z 0-9 _ -, "
                            "starting with a letter or digit)")
    return name


def netns_name(lab: str, node: str) -> str:
    return f"{NETNS_PREFIX}-{lab}-{node}"


@dataclass
class NodeRecord:
    """One node's namespace and where its files live."""

    name: str
    role: str
    engine: str  # frr | l3fab | none (endpoints)
    netns: str
    uts_file: str
    dir: str
    socket: str | None = None  # l3fab's API socket
    frr_dir: str | None = None  # /var/run/frr/<netns> (FRR's -N pathspace)
    peers: list[str] = field(default_factory=list)  # BGP neighbours as its engine names them


@dataclass
class ProcessRecord:
    """A daemon: ``pid``/``start_time`` are None between the decision to start it and its start."""

    node: str
    daemon: str
    argv: list[str]
    log: str
    pid: int | None = None
    start_time: int | None = None


@dataclass
class LabState:
    name: str
    topology: str  # absolute path of the .clab.yml
    digest: str  # sha256 of its text when deployed
    engine: str  # file | frr | l3fab | mixed (what `up --engine` asked for)
    workdir: str
    phase: str = "creating"  # creating | up
    created: float = field(default_factory=time.time)
    nodes: list[NodeRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)

    def node(self, name: str) -> NodeRecord:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabStateError(f"node: {name!r} is not a node of lab {self.name!r} "
                            f"({', '.join(n.name for n in self.nodes)})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LabState":
        data = json.loads(text)
        data["nodes"] = [NodeRecord(**n) for n in data.get("nodes", [])]
        data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
        return cls(**data)


# ------------------------------------------------------------------ the state file


def state_path(name: str) -> Path:
    return state_dir() / f"{name}.json"


def save(state: LabState) -> None:
    """Write the state file atomically (temp file in the same dir, fsync, rename)."""
    path = state_path(state.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(state.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(name: str) -> LabState | None:
    path = state_path(check_name(name))
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return LabState.from_json(text)
    except (ValueError, TypeError, KeyError) as e:
        raise LabStateError(f"state file: {str(path)!r} is not a lab state ({e}); "
                            "remove it by hand after checking `ip netns list`") from None


def require(name: str) -> LabState:
    state = load(name)
    if state is None:
        raise LabStateError(f"--name: lab {name!r} is not up (no {state_path(name)})")
    return state


def labs_up() -> list[str]:
    return sorted(p.stem for p in state_dir().glob("*.json"))


def lock_path(name: str) -> Path:
    return state_dir() / f"{name}.lock"


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the lab's lock file (``up`` and ``down`` of one lab never overlap)."""
    path = lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabStateError(f"--name: lab {name!r} is being changed by another `l3fab lab` "
                                f"command (lock {path})") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------ processes


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone
    or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of stat(5); fields[0] is field 3


def is_ours(rec: ProcessRecord) -> bool:
    """True while the recorded PID still is the process we started."""
    return rec.pid is not None and rec.start_time is not None and proc_start_time(rec.pid) == rec.start_time


def _reap(pid: int) -> None:
    try:  # a child of this very process (tests running `up` in-process) must be reaped
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_pids(pids: dict[int, int], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM every ``pid -> start time``, wait, SIGKILL what is left; the start time is
    checked before every signal. Returns the PIDs that had to be killed."""

    def alive(pid: int) -> bool:
        _reap(pid)
        return proc_start_time(pid) == pids[pid]

    live = [p for p in pids if alive(p)]
    for pid in live:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [p for p in live if alive(p)]
    for pid in live:
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while any(alive(p) for p in live) and time.monotonic() < deadline:
        time.sleep(0.02)
    return live


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def netns_pids(netns: str) -> dict[int, int]:
    """PIDs inside a namespace (``ip netns pids``) with their start times."""
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    found = {}
    for word in out.split():
        st = proc_start_time(int(word))
        if st is not None:
            found[int(word)] = st
    return found


def existing_netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


# ------------------------------------------------------------------ teardown


def teardown(state: LabState, say: Callable[[str], None] = lambda s: None) -> list[str]:
    """Remove everything ``state`` records; every step runs even when one fails.

    Returns the errors; the state file is removed only when there were none, so
    ``lab down`` can be repeated."""
    errors: list[str] = []
    ours = {p.pid: p.start_time for p in state.processes
            if p.pid is not None and p.start_time is not None and is_ours(p)}
    if ours:
        say(f"stopping {len(ours)} processes")
        stop_pids(ours)
    present = existing_netns()
    strays: dict[int, int] = {}
    for n in state.nodes:
        if n.netns in present:
            strays.update(netns_pids(n.netns))
    if strays:
        say(f"stopping {len(strays)} other processes inside the lab's namespaces")
        stop_pids(strays)
    gone = 0
    for n in state.nodes:
        if Path(n.uts_file).exists():
            r = subprocess.run(["umount", n.uts_file], capture_output=True, text=True)
            if r.returncode != 0 and "not mounted" not in r.stderr:
                errors.append(f"umount {n.uts_file}: {r.stderr.strip()}")
        if n.netns in present:
            r = subprocess.run(["ip", "netns", "del", n.netns], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append(f"ip netns del {n.netns}: {r.stderr.strip()}")
            else:
                gone += 1
        if n.frr_dir:
            shutil.rmtree(n.frr_dir, ignore_errors=True)
    say(f"removed {gone} namespaces")
    if not errors:
        shutil.rmtree(state.workdir, ignore_errors=True)
        for tmp in state_dir().glob(f"{state.name}.json.tmp*"):  # a save() cut short by a crash
            tmp.unlink(missing_ok=True)
        state_path(state.name).unlink(missing_ok=True)
    return errors


# ------------------------------------------------------------------ entering a node


def enter_argv(node: NodeRecord, argv: list[str]) -> list[str]:
    """The argv that runs ``argv`` inside the node: its network namespace (``ip netns
    exec`` also gives it the namespace's /sys) and its UTS namespace (its hostname)."""
    return ["ip", "netns", "exec", node.netns, "nsenter", f"--uts={node.uts_file}", "--", *argv]


def vtysh_argv(node: NodeRecord) -> list[str]:
    """``vtysh`` for the node's FRR instance. vtysh reads ``<config_dir>/<pathspace>/vtysh.conf``;
    the lab keeps an empty one in the node's directory (not under /etc/frr)."""
    return ["vtysh", "-N", node.netns, "--config_dir", node.dir]
