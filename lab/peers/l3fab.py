"""An l3fab speaker (``l3fab run``) inside one lab namespace, driven through its API."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from l3fab.lab.netns import Lab, Namespace, Process, run_host, wait_until
from l3fab.speaker.api import ApiClientError, call

REPO = Path(__file__).resolve().parents[2]


class L3fabNode:
    """Start with a node config (the YAML schema of ``speaker.config`` as a dict)."""

    def __init__(self, lab: Lab, ns: Namespace | str, config: dict[str, Any], *, name: str = "l3fab",
                 log_level: str = "debug") -> None:
        self.lab = lab
        self.ns = lab.namespace(ns)
        self.name = name
        self.socket = str(lab.workdir / f"{self.ns.name}-{name}.sock")
        self.config = {**config, "api-socket": self.socket}
        self.config_file = lab.workdir / f"{self.ns.name}-{name}.yaml"
        self.log_level = log_level
        self.process: Process | None = None

    def start(self, timeout: float = 15.0) -> "L3fabNode":
        self.config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        argv = [sys.executable, "-m", "l3fab.cli.main", "run", "--config", str(self.config_file),
                "--log-level", self.log_level]
        self.process = self.lab.popen(self.ns, argv, name=self.name, cwd=REPO)
        wait_until(self._api_up, timeout, 0.05, what=f"l3fab {self.ns.name}: API socket")
        return self

    def _api_up(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"l3fab {self.ns.name} exited: {self.process.log_text(3000)}")
        try:
            call(self.socket, "status", timeout=2)
            return True
        except ApiClientError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.lab.stop(self.process)

    @property
    def pid(self) -> int:
        """The l3fab process's id (once :meth:`start` ran)."""
        if self.process is None:
            raise RuntimeError(f"l3fab {self.ns.name} was not started")
        return self.process.pid

    def api(self, method: str, **params: Any) -> Any:
        return call(self.socket, method, params)

    def cli(self, *args: str, check: bool = True):
        """Run the real ``l3fab`` CLI against this node (outside the namespace: it only needs the socket)."""
        return run_host([sys.executable, "-m", "l3fab.cli.main", *args, "--socket", self.socket], check=check)

    def neighbor(self, name: str) -> dict[str, Any]:
        return self.api("neighbor", neighbor=name)

    def established(self, name: str) -> bool:
        return self.neighbor(name)["state"] == "Established"

    def received(self, name: str, family: str | None = None) -> list[dict[str, Any]]:
        return self.api("rib_received", neighbor=name, family=family)

    def announce(self, *routes: dict[str, Any]) -> int:
        return self.api("announce", routes=list(routes))["announced"]

    def withdraw(self, *routes: dict[str, Any]) -> int:
        return self.api("withdraw", routes=list(routes))["withdrawn"]
