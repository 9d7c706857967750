"""One measurement each: a receiver ingesting a table, a sender feeding one to FRR.

Times are wall clock (``time.time()``) on the one machine everything runs on.
Every function leaves the network as it found it: the receiver stopped, the
sender's session to it shut down, the routes gone.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from l3fab.lab.netns import Lab, Namespace, wait_until
from l3fab.lab.peers.l3fab import L3fabNode
from l3fab.speaker.api import call

from .procstat import OtherLoad, descendants, peak_rss_bytes, rss_bytes, wait_quiet
from .receivers import BENCH_DIR, Receiver, _ScriptedExaBgp, wait_established
from .routes import RouteSet
from .topology import EXABGP_SENDER, INJECTOR, SENDER_AS, Link, SenderFrr

MB = 1_000_000


class _Timed:
    """What both results share: success means every route arrived, and a rate."""

    routes: int
    held: int
    seconds: float | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.held == self.routes and self.seconds is not None

    @property
    def rate(self) -> float | None:
        seconds = self.seconds
        return self.routes / seconds if self.ok and seconds is not None and seconds > 0 else None


@dataclass
class IngestResult(_Timed):
    """A receiver taking a full table from the FRR sender."""

    family: str
    packing: str
    receiver: str
    routes: int
    held: int = 0
    seconds: float | None = None
    baseline_rss: int = 0
    peak_rss: int = 0
    poll_gap: float = 0.0  # the finish lies in the last gap between two polls
    other_cpu: float = 0.0  # cores busy with processes outside the measurement
    error: str | None = None
    runs: list[float] = field(default_factory=list)  # seconds of every successful repetition
    note: str = ""  # something that went wrong but did not stop the routes arriving

    @property
    def bytes_per_route(self) -> float | None:
        return (self.peak_rss - self.baseline_rss) / self.routes if self.ok else None


@dataclass
class SendResult(_Timed):
    """A sender's routes reaching FRR: from the first command to FRR's ``pfxRcd`` equal to all."""

    sender: str
    method: str
    family: str
    packing: str
    routes: int
    held: int = 0
    seconds: float | None = None
    api_seconds: float | None = None  # until the sender's API had taken every route
    other_cpu: float = 0.0
    error: str | None = None
    runs: list[float] = field(default_factory=list)
    note: str = ""


R = TypeVar("R", IngestResult, SendResult)


def _seconds(r: _Timed) -> float:
    """A successful result's time (``ok`` means it is set)."""
    assert r.seconds is not None
    return r.seconds


def best_of(results: list[R]) -> R:
    """The fastest successful repetition (the least disturbed), knowing all their times."""
    ok = [r for r in results if r.ok]
    if not ok:
        return results[-1]
    best = min(ok, key=_seconds)
    best.runs = sorted(_seconds(r) for r in ok)
    return best


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class SessionWatch:
    """Notices when FRR's session on ``link`` went down during a measurement."""

    def __init__(self, sender: SenderFrr, link: Link):
        self.sender = sender
        self.link = link
        self.dropped, _ = sender.session_drops(link)

    def note(self) -> str:
        dropped, reason = self.sender.session_drops(self.link)
        if dropped == self.dropped:
            return ""
        return f"session reset {dropped - self.dropped}x: {reason}"


def hold_timeout(routes: int, slowest_rate: float = 1000) -> float:
    """Generous: a minute plus the time at ``slowest_rate`` routes a second."""
    return 60.0 + routes / slowest_rate


def measure_ingest(sender: SenderFrr, receiver: Receiver, routes: RouteSet,
                   log=lambda text: None) -> IngestResult:
    """Start ``receiver`` fresh, open its session, time it until it holds every route."""
    result = IngestResult(routes.family, routes.packing, receiver.label, routes.count)
    wait_quiet()
    receiver.start()
    try:
        result.baseline_rss = rss_bytes(receiver.pids())
        session = SessionWatch(sender, receiver.link)
        sender.set_shutdown(receiver.link, False)
        established = wait_established(receiver)
        load = OtherLoad([*receiver.pids(), sender.bgpd_pid])
        deadline = time.monotonic() + hold_timeout(routes.count)
        previous = asked = established
        while True:
            asked, previous = time.time(), asked
            held = receiver.count(routes.family)
            seen = time.time()
            if held >= routes.count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"held {held:,} of {routes.count:,} after "
                                   f"{seen - established:.0f} s")
            time.sleep(receiver.poll_interval)
        result.other_cpu = load.cores()
        finished = receiver.done_at() or seen
        result.seconds = finished - established
        # A poll can only bound the finish: after the previous poll was asked, before the
        # last one answered.
        result.poll_gap = 0.0 if receiver.done_at() else seen - previous
        result.peak_rss = peak_rss_bytes(receiver.pids())
        result.held = receiver.count(routes.family)  # not more than sent, either
        result.note = session.note()
        if result.held != routes.count:
            result.error = f"holds {result.held:,}, expected {routes.count:,}"
    except Exception as exc:  # noqa: BLE001 - one receiver failing must not end the run
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        sender.set_shutdown(receiver.link, True)
        receiver.stop()
    log(f"  {receiver.label:12} {_summary(result)}")
    return result


def _summary(result: IngestResult | SendResult) -> str:
    if not result.ok:
        return f"FAILED: {result.error or f'held {result.held:,} of {result.routes:,}'}"
    note = f" ({result.note})" if result.note else ""
    return f"{result.seconds:.3f} s, {result.rate:,.0f} routes/s{note}"


def wait_held(sender: SenderFrr, link, family: str, count: int, timeout: float,
              interval: float = 0.01) -> tuple[int, float]:
    """Poll FRR until it holds ``count`` routes from ``link``; (held, time seen)."""
    deadline = time.monotonic() + timeout
    while True:
        held = sender.prefixes_from(link, family)
        seen = time.time()
        if held == count or time.monotonic() > deadline:
            return held, seen
        time.sleep(interval)


INJECTOR_CONFIG = {
    "router-id": INJECTOR.router_id, "asn": INJECTOR.asn, "fib": {"enabled": False},
    "neighbors": [{"name": "frr", "address": INJECTOR.sender_address, "remote-as": SENDER_AS,
                   "families": ["ipv4", "vpnv4"], "connect-retry": 1}],
}


def start_injector(lab: Lab, ns: Namespace) -> L3fabNode:
    """The l3fab that originates every table the FRR sender passes on."""
    node = L3fabNode(lab, ns, INJECTOR_CONFIG, name="injector", log_level="info").start()
    wait_until(lambda: node.established("frr"), 30, what="injector: session with FRR Established")
    return node


def l3fab_send(sender: SenderFrr, injector: L3fabNode, routes: RouteSet,
               log=lambda text: None) -> SendResult:
    """Announce the table with one API call; time until FRR holds all of it."""
    result = SendResult("l3fab", "one API call", routes.family, routes.packing, routes.count)
    specs = routes.l3fab_routes()
    wait_quiet()
    load = OtherLoad([sender.bgpd_pid, injector.pid])
    session = SessionWatch(sender, INJECTOR)
    started = time.time()
    try:
        call(injector.socket, "announce", {"routes": specs}, timeout=hold_timeout(routes.count))
        result.api_seconds = time.time() - started
        result.held, seen = wait_held(sender, INJECTOR, routes.family, routes.count,
                                      hold_timeout(routes.count))
        result.other_cpu = load.cores()
        result.seconds = seen - started
        result.note = session.note()
        if result.held != routes.count:
            result.error = f"FRR holds {result.held:,} of {routes.count:,}"
    except Exception as exc:  # noqa: BLE001
        result.error = f"{type(exc).__name__}: {exc}"
    log(f"  {'l3fab -> FRR':12} {_summary(result)}")
    return result


def l3fab_withdraw(sender: SenderFrr, injector: L3fabNode, routes: RouteSet) -> None:
    call(injector.socket, "withdraw", {"routes": routes.l3fab_keys()},
         timeout=hold_timeout(routes.count))
    held, _ = wait_held(sender, INJECTOR, routes.family, 0, hold_timeout(routes.count), 0.1)
    if held:
        raise RuntimeError(f"FRR still holds {held:,} {routes.family} routes after the withdrawal")


def exabgp_send(lab: Lab, sender: SenderFrr, ns: Namespace, routes: RouteSet,
                log=lambda text: None) -> SendResult:
    """ExaBGP announcing one API command per route; time from the first command to FRR holding all."""
    result = SendResult("ExaBGP", "one command per route", routes.family, routes.packing,
                        routes.count)
    commands = Path(lab.workdir) / f"exabgp-{routes.family}-{routes.count}.txt"
    commands.write_text("\n".join(routes.exabgp_commands(EXABGP_SENDER.address)) + "\n")
    exabgp = _ScriptedExaBgp(lab, ns, BENCH_DIR / "exabgp_sender.py", str(commands))
    if exabgp.events_file.exists():
        exabgp.events_file.unlink()
    wait_quiet()
    try:
        exabgp.start(**exabgp.neighbor_config(EXABGP_SENDER))
        session = SessionWatch(sender, EXABGP_SENDER)
        sender.set_shutdown(EXABGP_SENDER, False)
        first = wait_until(lambda: exabgp.last("first_command"), 60, 0.01,
                           what="ExaBGP sender: session up and first command written")
        started = first["first_command"]
        load = OtherLoad([sender.bgpd_pid, *descendants(exabgp.pid)])
        # ExaBGP sends ~1,000 routes a second when one command carries one route
        result.held, seen = wait_held(sender, EXABGP_SENDER, routes.family, routes.count,
                                      hold_timeout(routes.count, slowest_rate=100), interval=0.1)
        result.other_cpu = load.cores()
        result.seconds = seen - started
        result.note = session.note()
        acked = exabgp.last("acked")
        if acked is not None:
            result.api_seconds = acked["time"] - started
            if acked["errors"]:
                result.error = f"ExaBGP answered 'error' to {acked['errors']} commands"
        if result.held != routes.count:
            result.error = f"FRR holds {result.held:,} of {routes.count:,}"
    except Exception as exc:  # noqa: BLE001
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        sender.set_shutdown(EXABGP_SENDER, True)
        exabgp.stop()
    log(f"  {'ExaBGP -> FRR':12} {_summary(result)}")
    return result
