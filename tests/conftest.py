"""Shared fixtures: the network-namespace ``lab`` and the gate for ``interop`` tests.

Tests marked ``interop`` need root (network namespaces) and the real peers
(FRR, gobgpd, ExaBGP, GoBGP's generated stubs); ``@pytest.mark.interop("frr")``
narrows that to the peers named. Where those are missing they
are skipped with the reason, except when the ``CI`` environment variable is
set: CI must run them, so there they fail instead.

When a test using a lab fails, the logs of every process the lab started are
attached to its report and the lab's work directory is kept.
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import Iterator

import pytest

from l3fab.lab.netns import Lab, iter_logs, reap_stale

HOST_TOOLS = ("ip", "unshare", "nsenter", "sysctl")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@functools.cache
def lab_unavailable() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing host tools: {', '.join(missing)}"
    return None


@functools.cache
def interop_unavailable(peers: tuple[str, ...] | None = None) -> str | None:
    """Why interop tests with ``peers`` (default: all of them) cannot run here, or None."""
    reason = lab_unavailable()
    if reason:
        return reason
    from l3fab.lab.peers import PEER_NAMES, missing_binaries

    missing = missing_binaries(peers or PEER_NAMES)
    if missing:
        return f"missing: {', '.join(missing)} (run .ci/setup)"
    return None


def _skip_or_fail(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI is set, so this test must run, but: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_report_header(config: pytest.Config) -> str:
    reason = interop_unavailable()
    state = "available" if reason is None else f"unavailable: {reason}"
    return f"interop peers: {state}; CI={'yes' if in_ci() else 'no'}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove namespaces left by runs that were killed before their teardown."""
    if lab_unavailable() is None:
        from l3fab.lab.peers.frr import reap_stale_run_dirs

        reap_stale()
        reap_stale_run_dirs()


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("interop")
    if marker is not None:
        # @pytest.mark.interop("frr", "gobgp") needs only those peers; bare: all of them.
        reason = interop_unavailable(tuple(marker.args) or None)
        if reason:
            _skip_or_fail(reason)


def _new_lab() -> Iterator[Lab]:
    reason = lab_unavailable()
    if reason:
        _skip_or_fail(reason)
    with Lab() as the_lab:
        yield the_lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh :class:`lab.netns.Lab` per test; everything in it is removed afterwards."""
    yield from _new_lab()


@pytest.fixture(scope="module")
def module_lab() -> Iterator[Lab]:
    """One lab shared by a module's tests (a topology built once, topotests style)."""
    yield from _new_lab()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    labs = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Lab)]
    for the_lab in labs:
        the_lab.keep_workdir = True
        report.sections.append((f"lab {the_lab.run_id} work directory (kept)",
                                str(the_lab.workdir)))
        for label, text in iter_logs(the_lab):
            report.sections.append((f"lab {the_lab.run_id} log {label}", text or "<empty>"))
