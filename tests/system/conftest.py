"""Run a real ``l3fab run`` process on loopback (no namespaces, no root needed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from l3fab.speaker.api import ApiClientError, call

REPO = Path(__file__).resolve().parents[2]


class Daemon:
    def __init__(self, tmp_path: Path, config: dict) -> None:
        self.socket = str(tmp_path / "l3fab.sock")
        self.config_file = tmp_path / "node.yaml"
        # These daemons run in the host's own network namespace: never let them touch its FIB.
        config = {"fib": {"enabled": False}, **config}
        self.config_file.write_text(yaml.safe_dump({**config, "api-socket": self.socket}))
        self.log = tmp_path / "l3fab.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "l3fab.cli.main", "run", "-c", str(self.config_file),
                                          "--log-level", "debug"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.status = call(self.socket, "status", timeout=2)
                break
            except ApiClientError as e:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"l3fab did not start: {self.log.read_text()[-3000:]}") from e
                time.sleep(0.05)

    def api(self, method: str, **params):
        return call(self.socket, method, params)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def daemon_factory(tmp_path, request):
    started: list[Daemon] = []

    def make(config: dict) -> Daemon:
        d = Daemon(tmp_path, config)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(d.log.read_text()[-5000:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
