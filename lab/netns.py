"""Linux network namespaces for lab tests, with guaranteed cleanup.

A :class:`Lab` owns everything it creates during one run:

* network namespaces named ``l3t-<6 hex>-<name>`` (the hex part is unique to
  the run, so parallel or leftover runs never collide);
* optionally one UTS namespace per network namespace, so that every simulated
  router has its own hostname (FRR announces it in the hostname capability);
* veth pairs created directly inside the two namespaces;
* background processes, tracked by PID and ended by PID (SIGTERM, then SIGKILL)
  — never by name;
* a per-run work directory for configs and logs.

Leaving the ``with`` block (normally or by an exception) tears all of it down
in reverse order. The logs of every process are registered in
:attr:`Lab.logs` so that a failing test can print them.

:func:`wait_until` polls a condition against a deadline, in the spirit of FRR
topotests' ``run_and_expect``: tests never sleep for a fixed time.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

IFNAMSIZ = 15  # Linux interface names are at most 15 bytes (IFNAMSIZ - 1)
NAME_PREFIX = "l3t"
OWNER_FILE = "owner.pid"
# Where the Debian frr package installs zebra, bgpd and staticd (used by lab.peers.frr
# and lab.deploy; here rather than in lab.peers so that ``l3fab lab`` does not import
# the peer harnesses, whose GoBGP module loads grpc).
FRR_SBIN = Path("/usr/lib/frr")

# Applied to every namespace right after creation, before any link exists, so
# that the "default" values reach the veths created afterwards.
BASE_SYSCTLS: Mapping[str, str] = {
    # Addresses are usable at once: no tentative state, no 1-2 s DAD wait.
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    # Keep addresses when a link flaps, as a router would.
    "net.ipv6.conf.all.keep_addr_on_down": "1",
}
FORWARDING_SYSCTLS: Mapping[str, str] = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.default.forwarding": "1",
}


class CommandFailed(RuntimeError):
    """A command exited non-zero; the message carries its argv and output."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        parts = [f"command {' '.join(self.argv)!r} exited with {returncode}"]
        if stderr.strip():
            parts.append(f"stderr: {stderr.strip()[-2000:]}")
        if stdout.strip():
            parts.append(f"stdout: {stdout.strip()[-2000:]}")
        super().__init__("\n".join(parts))


class WaitTimeout(AssertionError):
    """:func:`wait_until` gave up; the message says what was awaited and the last value seen."""


def run_host(argv: Sequence[str | os.PathLike[str]], *, check: bool = True, timeout: float = 60,
             input: str | None = None, env: Mapping[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """Run a command to completion in the test's own namespaces, capturing text output."""
    args = [str(a) for a in argv]
    proc = subprocess.run(args, input=input, capture_output=True, text=True,
                          timeout=timeout, env=None if env is None else dict(env))
    if check and proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def wait_until(fn: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2,
               what: str | None = None, retry_on: tuple[type[BaseException], ...] = (Exception,),
               ) -> Any:
    """Call ``fn`` until it returns a truthy value, and return that value.

    Exceptions listed in ``retry_on`` (all ``Exception`` by default, since a
    daemon that is still starting refuses connections) count as "not yet".
    After ``timeout`` seconds, raise :class:`WaitTimeout` naming ``what`` and
    showing the last value returned or the last exception raised.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            last = fn()
            last_exc = None
            if last:
                return last
        except retry_on as exc:  # noqa: PERF203 - polling on purpose
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    label = what or getattr(fn, "__name__", repr(fn))
    detail = (f"last exception: {type(last_exc).__name__}: {last_exc}" if last_exc is not None
              else f"last value: {_clip(repr(last))}")
    raise WaitTimeout(f"timed out after {timeout:g}s ({attempts} attempts) waiting for {label}; "
                      f"{detail}")


def _clip(text: str, limit: int = 3000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more chars)"


def check_ifname(ifname: str) -> str:
    """Return ``ifname`` if Linux accepts it as an interface name, else raise ValueError."""
    if not ifname or len(ifname.encode()) > IFNAMSIZ or any(c in ifname for c in "/: \t\n"):
        raise ValueError(f"interface name {ifname!r}: must be 1-{IFNAMSIZ} bytes "
                         "without '/', ':' or whitespace")
    return ifname


@dataclass
class Namespace:
    """One network namespace of a :class:`Lab`. ``name`` is the short name given by the test."""

    lab: "Lab" = field(repr=False)
    name: str
    netns: str
    uts_file: Path | None = None

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self, argv, **kwargs)

    def popen(self, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> "Process":
        return self.lab.popen(self, argv, **kwargs)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n <netns> args...`` (no process is entered into the namespace)."""
        return run_host(["ip", "-n", self.netns, *args], check=check)

    def ip_json(self, *args: str) -> Any:
        """``ip -j -n <netns> args...``, decoded. ``ip -j`` prints nothing for an empty table."""
        out = run_host(["ip", "-j", "-n", self.netns, *args]).stdout.strip()
        return json.loads(out) if out else []

    def sysctl(self, values: Mapping[str, str | int]) -> None:
        self.lab.sysctl(self, values)

    def add_address(self, ifname: str, cidr: str) -> None:
        self.lab.add_address(self, ifname, cidr)

    def link_local(self, ifname: str) -> str:
        """The fe80:: address of ``ifname`` (without prefix length)."""
        for info in self.ip_json("-6", "addr", "show", "dev", ifname, "scope", "link"):
            for addr in info.get("addr_info", []):
                if addr.get("family") == "inet6" and addr["local"].startswith("fe80:"):
                    return addr["local"]
        raise LookupError(f"{self.name}: no IPv6 link-local address on {ifname}")

    def __str__(self) -> str:
        return self.netns


@dataclass
class Process:
    """A background process started by :meth:`Lab.popen`; ended by its PID only."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes] = field(repr=False)
    log: Path
    namespace: Namespace | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self, tail: int | None = None) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if tail is None else text[-tail:]


@dataclass
class _Teardown:
    label: str
    fn: Callable[[], None]


@dataclass(repr=False)
class Lab:
    """A set of namespaces, links and processes that is removed as a whole.

    Use as a context manager. ``keep_workdir`` keeps the per-run directory (logs,
    configs) after teardown; the test fixture turns it on when a test fails.
    """

    prefix: str = NAME_PREFIX
    # None (the default): a new temporary directory, made by __post_init__; a Path from then on.
    workdir: Path = None  # type: ignore[assignment]
    keep_workdir: bool = False
    uts: bool = True
    stop_timeout: float = 5.0
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    logs: dict[str, Path] = field(default_factory=dict)
    _teardowns: list[_Teardown] = field(default_factory=list)
    _closed: bool = False

    def __post_init__(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-{self.run_id}-"))
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Daemons that drop privileges (FRR runs as user frr) must reach their files.
        self.workdir.chmod(0o755)
        (self.workdir / OWNER_FILE).write_text(f"{os.getpid()}\n")

    def __repr__(self) -> str:
        return (f"Lab(run_id={self.run_id!r}, workdir={str(self.workdir)!r}, "
                f"namespaces={sorted(self.namespaces)}, processes={len(self.processes)})")

    # -- context manager -------------------------------------------------

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(raise_errors=exc_type is None)

    # -- namespaces ------------------------------------------------------

    def netns_name(self, name: str) -> str:
        return f"{self.prefix}-{self.run_id}-{name}"

    def add_namespace(self, name: str, *, forwarding: bool = True,
                      sysctls: Mapping[str, str | int] | None = None,
                      hostname: str | None = None) -> Namespace:
        """Create namespace ``name`` with ``lo`` up; routers forward by default."""
        if name in self.namespaces:
            raise ValueError(f"namespace {name!r} already exists in this lab")
        if not name or any(c in name for c in "/ \t\n"):
            raise ValueError(f"namespace name {name!r}: no '/' or whitespace allowed")
        ns = Namespace(self, name, self.netns_name(name))
        run_host(["ip", "netns", "add", ns.netns])
        self.namespaces[name] = ns  # registered before anything else can fail
        if self.uts:
            ns.uts_file = self._new_uts(ns, hostname or name)
        ns.ip("link", "set", "dev", "lo", "up")
        values: dict[str, str | int] = dict(BASE_SYSCTLS)
        if forwarding:
            values.update(FORWARDING_SYSCTLS)
        values.update(sysctls or {})
        self.sysctl(ns, values)
        return ns

    def _new_uts(self, ns: Namespace, hostname: str) -> Path:
        """A persistent UTS namespace, bound to a file, with its own hostname."""
        uts_dir = self.workdir / "uts"
        uts_dir.mkdir(exist_ok=True)
        path = uts_dir / ns.name
        path.touch()
        run_host(["unshare", f"--uts={path}", "hostname", hostname])
        return path

    def namespace(self, ns: Namespace | str) -> Namespace:
        if isinstance(ns, Namespace):
            return ns
        try:
            return self.namespaces[ns]
        except KeyError:
            raise KeyError(f"no namespace {ns!r} in this lab; have {sorted(self.namespaces)}") from None

    def enter_argv(self, ns: Namespace | str, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        """The argv that runs ``argv`` inside the namespace (network and UTS)."""
        ns = self.namespace(ns)
        prefix = ["ip", "netns", "exec", ns.netns]
        if ns.uts_file is not None:
            prefix += ["nsenter", f"--uts={ns.uts_file}", "--"]
        return prefix + [str(a) for a in argv]

    def sysctl(self, ns: Namespace | str, values: Mapping[str, str | int]) -> None:
        if values:
            self.run(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])

    # -- links and addresses ---------------------------------------------

    def link(self, ns_a: Namespace | str, ns_b: Namespace | str, ifname_a: str, ifname_b: str,
             mtu: int | None = None) -> tuple[str, str]:
        """Create a veth pair ``ifname_a`` (in ``ns_a``) <-> ``ifname_b`` (in ``ns_b``), both up."""
        a, b = self.namespace(ns_a), self.namespace(ns_b)
        check_ifname(ifname_a)
        check_ifname(ifname_b)
        mtu_args = ["mtu", str(mtu)] if mtu else []
        run_host(["ip", "-n", a.netns, "link", "add", ifname_a, *mtu_args, "type", "veth",
                  "peer", "name", ifname_b, "netns", b.netns, *mtu_args])
        a.ip("link", "set", "dev", ifname_a, "up")
        b.ip("link", "set", "dev", ifname_b, "up")
        return ifname_a, ifname_b

    def add_address(self, ns: Namespace | str, ifname: str, cidr: str) -> None:
        """Add an address (``10.0.0.1/31``, ``2001:db8::1/64``) to an interface."""
        extra = ["nodad"] if ":" in cidr else []
        self.namespace(ns).ip("addr", "add", cidr, "dev", ifname, *extra)

    # -- commands and processes ------------------------------------------

    def run(self, ns: Namespace | str, argv: Sequence[str], *, check: bool = True,
            timeout: float = 60, input: str | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion inside ``ns``; raise :class:`CommandFailed` if ``check``."""
        return run_host(self.enter_argv(ns, argv), check=check, timeout=timeout, input=input,
                        env=env)

    def popen(self, ns: Namespace | str | None, argv: Sequence[str | os.PathLike[str]], *, name: str | None = None,
              log: Path | None = None, stdin: int | None = subprocess.DEVNULL,
              env: Mapping[str, str] | None = None, cwd: Path | str | None = None) -> Process:
        """Start ``argv`` in the background inside ``ns`` (or on the host if ``ns`` is None).

        stdout and stderr go to ``log`` (default ``<workdir>/<ns>-<name>.log``),
        which is registered in :attr:`logs`. The process leads its own process
        group, so teardown can end it and any helper it spawned by that PID.
        """
        namespace = self.namespace(ns) if ns is not None else None
        name = name or Path(str(argv[0])).name
        label = f"{namespace.name}/{name}" if namespace else name
        if log is None:
            log = self.workdir / f"{label.replace('/', '-')}.log"
        full = self.enter_argv(namespace, argv) if namespace else [str(a) for a in argv]
        with open(log, "ab") as out:
            popen = subprocess.Popen(full, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=cwd,
                                     env=None if env is None else dict(env))
        proc = Process(name=label, argv=full, popen=popen, log=log, namespace=namespace)
        self.processes.append(proc)
        self.logs[label] = log
        return proc

    def stop(self, proc: Process, timeout: float | None = None) -> int | None:
        """End ``proc`` (and its process group) with SIGTERM, then SIGKILL after ``timeout``
        (default :attr:`stop_timeout`)."""
        timeout = self.stop_timeout if timeout is None else timeout
        pgid = proc.pid  # start_new_session=True: the group id is the leader's PID

        def running() -> bool:  # alive() also reaps the leader once it exits
            return proc.alive() or _send(os.killpg, pgid, 0)

        if running():
            _send(os.killpg, pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while running() and time.monotonic() < deadline:
                time.sleep(0.02)
            if running():
                _send(os.killpg, pgid, signal.SIGKILL)
                proc.popen.wait(timeout=timeout)
        return proc.popen.returncode

    def add_log(self, label: str, path: Path) -> None:
        """Register a log written by something else (a daemon's own log file)."""
        self.logs[label] = Path(path)

    def on_teardown(self, label: str, fn: Callable[[], None]) -> None:
        """Call ``fn`` at teardown, before processes are killed; last registered runs first."""
        self._teardowns.append(_Teardown(label, fn))

    # -- teardown --------------------------------------------------------

    def close(self, raise_errors: bool = True) -> None:
        """Tear everything down; every step runs even when an earlier one fails."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []

        def attempt(label: str, fn: Callable[[], Any]) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - collect, keep tearing down
                errors.append(f"{label}: {type(exc).__name__}: {exc}")

        for td in reversed(self._teardowns):
            attempt(td.label, td.fn)
        for proc in reversed(self.processes):
            attempt(f"stop {proc.name}", functools.partial(self.stop, proc))
        for ns in reversed(list(self.namespaces.values())):
            attempt(f"strays in {ns.netns}", functools.partial(_kill_strays, ns.netns))
            if ns.uts_file is not None:
                attempt(f"umount {ns.uts_file}", functools.partial(run_host, ["umount", ns.uts_file]))
            attempt(f"delete {ns.netns}", functools.partial(run_host, ["ip", "netns", "del", ns.netns]))
        if not self.keep_workdir:
            attempt(f"remove {self.workdir}", lambda: shutil.rmtree(self.workdir))
        if errors:
            message = "lab teardown had errors:\n  " + "\n  ".join(errors)
            if raise_errors:
                raise RuntimeError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)


def _send(kill: Callable[[int, int], None], ident: int, sig: int) -> bool:
    """``kill(ident, sig)`` for a PID (os.kill) or process group (os.killpg).

    ``sig`` 0 only probes. Returns False when the target no longer exists.
    """
    try:
        kill(ident, sig)
    except ProcessLookupError:
        return False
    return True


def netns_pids(netns: str) -> list[int]:
    out = run_host(["ip", "netns", "pids", netns], check=False).stdout
    return [int(p) for p in out.split()]


def _kill_strays(netns: str, timeout: float = 3.0) -> None:
    """Kill, by PID, processes still inside one of this run's namespaces.

    Only processes started inside the run's own (uniquely named) namespace can
    be there, e.g. a daemon a test started with ``-d`` through :meth:`Lab.run`.
    """
    pids = netns_pids(netns)
    for pid in pids:
        _send(os.kill, pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [p for p in pids if _send(os.kill, p, 0)]
    for pid in pids:
        _send(os.kill, pid, signal.SIGKILL)


def _dead_runs(prefix: str, tmp: Path) -> dict[str, Path]:
    """Work directories of earlier runs whose owning test process no longer exists, by run id."""
    dead = {}
    for owner in tmp.glob(f"{prefix}-*/{OWNER_FILE}"):
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if not _send(os.kill, pid, 0):
            dead[owner.parent.name.split("-")[1]] = owner.parent
    return dead


def reap_stale(prefix: str = NAME_PREFIX, tmpdir: str | None = None) -> list[str]:
    """Remove what runs killed before their teardown left behind; return the namespaces removed.

    Only runs whose owner process is gone are touched: their processes (found
    inside their uniquely named namespaces) are killed by PID, their UTS
    bind mounts are unmounted and their namespaces deleted. Work directories
    are left for inspection.
    """
    dead = _dead_runs(prefix, Path(tmpdir or tempfile.gettempdir()))
    if not dead:
        return []
    listed = run_host(["ip", "netns", "list"]).stdout.splitlines()
    names = [line.split()[0] for line in listed if line.strip()]
    removed = []
    for netns in names:
        parts = netns.split("-")
        if netns.startswith(f"{prefix}-") and len(parts) > 2 and parts[1] in dead:
            _kill_strays(netns)
            run_host(["ip", "netns", "del", netns], check=False)
            removed.append(netns)
    for workdir in dead.values():
        for uts in (workdir / "uts").glob("*"):
            run_host(["umount", uts], check=False)
        (workdir / OWNER_FILE).unlink(missing_ok=True)
    return removed


def iter_logs(lab: Lab, tail: int = 6000) -> Iterable[tuple[str, str]]:
    """(label, last ``tail`` characters) for every log the lab knows of."""
    for label, path in sorted(lab.logs.items()):
        try:
            text = Path(path).read_text(errors="replace")
        except OSError as exc:
            text = f"<unreadable: {exc}>"
        yield label, text[-tail:]
