"""An FRR instance (zebra, bgpd, staticd) inside one lab namespace.

FRR's multi-instance support (``-N <pathspace>``) puts each instance's pid
files, vty sockets and ``zserv.api`` under ``/var/run/frr/<pathspace>/``; we
use the namespace's name as pathspace, so ``vtysh -N <netns>`` reaches exactly
this instance. The daemons run in the foreground (no ``-d``) as children of
the test, so their PIDs are the ones :class:`lab.netns.Lab` tracks and ends.

They start on an empty config; the integrated config is applied afterwards
with ``vtysh -f`` (handing the integrated file to each daemon makes every
daemon complain about the others' lines).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import textwrap
from pathlib import Path
from typing import Any, Sequence

from l3fab.lab.netns import FRR_SBIN, CommandFailed, Lab, Namespace, run_host, wait_until

FRR_USER = "frr"
RUN_ROOT = Path("/var/run/frr")


class FrrRouter:
    """One FRR instance. ``start()`` it, ``configure()`` it, query it with ``vtysh*``.

    ``no_kernel`` runs bgpd with ``-n``: sessions, RIB, best path and
    next-hop tracking as usual, but nothing is installed in the kernel (zebra
    still runs: bgpd needs it for interfaces, addresses and next hops).

    ``zebra=False`` runs bgpd alone with ``-Z`` (measured with FRR 8.4): a
    numbered session comes up and routes are received, but no path is
    valid (no next-hop tracking), so nothing is selected or passed on; an
    RFC 8950 update (IPv4 with global + link-local IPv6 next hop) is even
    answered with NOTIFICATION 3/10. Use it only to receive.
    """

    def __init__(self, lab: Lab, ns: Namespace | str, *, zebra: bool = True,
                 staticd: bool = True, no_kernel: bool = False, profile: str = "datacenter",
                 log_level: str = "informational", bgpd_args: Sequence[str] = ()):
        self.lab = lab
        self.ns = lab.namespace(ns)
        self.name = self.ns.name
        self.pathspace = self.ns.netns
        self.zebra = zebra
        self.staticd = staticd and zebra
        self.no_kernel = no_kernel
        self.profile = profile
        self.log_level = log_level
        self.bgpd_args = list(bgpd_args)
        self.dir = lab.workdir / f"frr-{self.name}"
        self.run_dir = RUN_ROOT / self.pathspace
        self.processes: dict[str, Any] = {}
        self._config_seq = 0

    # -- life cycle ------------------------------------------------------

    @property
    def daemons(self) -> list[str]:
        names = ["zebra"] if self.zebra else []
        names.append("bgpd")
        if self.staticd:
            names.append("staticd")
        return names

    def start(self, config: str | None = None, timeout: float = 15.0) -> "FrrRouter":
        """Start the daemons, wait until vtysh reaches all of them, then apply ``config``."""
        user = pwd.getpwnam(FRR_USER)
        for path in (self.dir, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
        empty = self.dir / "empty.conf"
        empty.write_text("")
        self.lab.on_teardown(f"frr {self.name}", self.stop)
        for daemon in self.daemons:
            self._start_daemon(daemon, empty)
            if daemon == "zebra":
                # Clients that find no zserv.api retry only after 10 s.
                wait_until(self._zebra_listening, timeout, 0.02,
                           what=f"FRR {self.name}: zebra's zserv.api", retry_on=())
        wait_until(self._all_daemons_answer, timeout, 0.05,
                   what=f"FRR {self.name}: vtysh to reach {', '.join(self.daemons)}")
        if config is not None:
            self.configure(config)
        return self

    def _start_daemon(self, daemon: str, config_file: Path) -> None:
        log_file = self.dir / f"{daemon}.log"
        argv: list[str | os.PathLike[str]] = [FRR_SBIN / daemon, "-N", self.pathspace, "-F", self.profile, "-P", "0",
                "-f", config_file, "--log", f"file:{log_file}", "--log-level", self.log_level]
        if daemon == "bgpd":
            if self.no_kernel:
                argv.append("-n")
            if not self.zebra:
                argv.append("-Z")
            argv += self.bgpd_args
        self.processes[daemon] = self.lab.popen(self.ns, argv, name=f"frr-{daemon}")
        self.lab.add_log(f"{self.name}/frr-{daemon}-file", log_file)

    def _check_alive(self) -> None:
        for daemon, proc in self.processes.items():
            if not proc.alive():
                raise RuntimeError(f"FRR {self.name}: {daemon} exited with "
                                   f"{proc.popen.returncode}: {proc.log_text(2000)}")

    def _zebra_listening(self) -> bool:
        self._check_alive()
        return (self.run_dir / "zserv.api").exists()

    def _all_daemons_answer(self) -> bool:
        self._check_alive()
        if not set(self.vtysh("show daemons").split()) >= set(self.daemons):
            return False
        if not self.zebra:
            return True
        # Config applied before bgpd has its zebra session is applied without
        # interface data: bgpd then sends IPv4 routes over an IPv6 session
        # with next hop 0.0.0.0, and cannot register next hops.
        rows = self.vtysh("show zebra client summary").splitlines()
        clients = {row.split()[0] for row in rows if row.strip()}
        wanted = {"bgp"} | ({"static"} if self.staticd else set())
        return clients >= wanted

    def stop(self) -> None:
        """End the daemons by PID and remove the instance's run directory."""
        for daemon in reversed(list(self.processes)):
            self.lab.stop(self.processes[daemon])
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        return {daemon: proc.pid for daemon, proc in self.processes.items()}

    # -- configuration and queries ---------------------------------------

    def configure(self, config: str) -> None:
        """Apply an integrated (frr.conf style) config through ``vtysh -f``.

        The text is dedented, so tests can write it inline. A syntax check
        (``vtysh -C``) runs first, so a typo fails loudly instead of being
        half-applied.
        """
        self._config_seq += 1
        path = self.dir / f"config-{self._config_seq}.conf"
        path.write_text(textwrap.dedent(config).strip() + "\n")
        self._vtysh_args(["-C", "-f", str(path)])
        self._vtysh_args(["-f", str(path)])

    def vtysh(self, *commands: str, check: bool = True) -> str:
        """Run one or more vtysh commands (each as ``-c``) and return their output."""
        args: list[str] = []
        for command in commands:
            args += ["-c", command]
        return self._vtysh_args(args, check=check)

    def vtysh_json(self, command: str) -> Any:
        """Run a ``... json`` show command and decode it (``json`` is appended if missing)."""
        if not command.rstrip().endswith("json"):
            command = f"{command} json"
        out = self.vtysh(command)
        try:
            return json.loads(out) if out.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"FRR {self.name}: {command!r} returned non-JSON: {out[:500]!r}") from exc

    def _vtysh_args(self, args: list[str], check: bool = True) -> str:
        # vtysh only talks to the daemons' unix sockets, so it needn't enter the namespace.
        proc = run_host(["vtysh", "-N", self.pathspace, *args], check=False)
        # vtysh reports some failures ("% Unknown command") with exit code 0 on stdout.
        failed = proc.returncode != 0 or _vtysh_error(proc.stdout)
        if check and failed:
            raise CommandFailed(["vtysh", "-N", self.pathspace, *args], proc.returncode,
                                proc.stdout, proc.stderr)
        return proc.stdout

    # -- common look-ups -------------------------------------------------

    def bgp_neighbors(self) -> dict[str, Any]:
        """``show bgp neighbors json`` keyed by peer (address or interface)."""
        return self.vtysh_json("show bgp neighbors json")

    def established(self, *peers: str) -> bool:
        """True when every given peer (or, with none given, every configured peer) is Established."""
        neighbors = self.bgp_neighbors()
        names = peers or tuple(neighbors)
        return bool(names) and all(
            neighbors.get(p, {}).get("bgpState") == "Established" for p in names)

    def kernel_routes(self, family: str = "4", table: str = "main") -> list[dict[str, Any]]:
        """``ip -j route`` in the router's namespace."""
        return self.ns.ip_json(f"-{family}", "route", "show", "table", table)

    def __repr__(self) -> str:
        return f"FrrRouter({self.name!r}, pids={self.pids()})"


def _vtysh_error(stdout: str) -> bool:
    return any(line.startswith(("% Unknown command", "% Command incomplete",
                                "% Ambiguous command", "% Invalid"))
               for line in stdout.splitlines())


def reap_stale_run_dirs(prefix: str = "l3t") -> list[Path]:
    """Remove ``/var/run/frr/<prefix>-*`` directories whose namespace no longer exists."""
    listed = run_host(["ip", "netns", "list"]).stdout.splitlines()
    alive = {line.split()[0] for line in listed if line.strip()}
    removed = []
    for path in RUN_ROOT.glob(f"{prefix}-*"):
        if path.is_dir() and path.name not in alive:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
