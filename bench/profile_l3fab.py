"""Where l3fab spends its time receiving or sending a table, sampled with py-spy.

``python -m l3fab.bench.profile_l3fab receive --family vpnv4 --attribute-sets 1000``
builds the benchmark's network (:mod:`bench.topology`), has the FRR sender
feed one table to a fresh l3fab receiver, and samples that daemon with
py-spy from just before its session opens until it holds every route.
``send`` samples the injector from its ``announce`` API call until FRR holds
the table. It prints the functions with the most samples, by their own time
and including what they call.

py-spy reads the daemon's stacks from outside (no instrumentation, nothing
in the daemon changes), so only the window of interest is sampled. It is not
a project dependency: ``pip install --target /tmp/pyspy py-spy`` and pass
``--py-spy /tmp/pyspy/bin/py-spy`` (or have ``py-spy`` on PATH).
"""
from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from l3fab.lab.netns import Lab, wait_until
from l3fab.lab.peers.l3fab import L3fabNode
from l3fab.speaker.api import call

from .ingest import LAB_PREFIX, receiver_links
from .measure import hold_timeout, start_injector, wait_held
from .receivers import L3fabReceiver, wait_established
from .routes import FAMILIES, RouteSet
from .topology import INJECTOR, Link, SenderFrr, connect

RATE = 500  # samples a second
PLUMBING = ("<frozen runpy>", "(typer/", "(cli/main.py)", "(asyncio/")
_LINE = re.compile(r":\d+\)$")


class Sampler:
    """``py-spy record`` attached to one PID; :meth:`stop` ends it and returns its stacks."""

    def __init__(self, py_spy: str, pid: int, output: Path):
        self.output = output
        self.proc = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
             "--nonblocking", "-o", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # attaching takes a moment; it must see the start
        if self.proc.poll() is not None:
            stderr = self.proc.stderr.read() if self.proc.stderr is not None else ""  # (a pipe: never None)
            raise RuntimeError(f"py-spy exited: {stderr[-1000:]}")

    def stop(self) -> list[tuple[list[str], int]]:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        _, err = self.proc.communicate(timeout=30)
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote nothing: {err[-1000:]}")
        stacks = []
        for line in self.output.read_text().splitlines():
            frames, _, count = line.rpartition(" ")
            # "function (file:line)" -> "function (file)": one entry per function
            stacks.append(([_LINE.sub(")", f) for f in frames.split(";")], int(count)))
        return stacks

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def hot_spots(stacks: list[tuple[list[str], int]], top: int) -> str:
    """Two rankings: samples in the function itself, and in it or what it calls."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = sum(count for _, count in stacks)
    for frames, count in stacks:
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    # Start-up and event-loop frames sit under every sample: not worth a line.
    inclusive = Counter({f: c for f, c in inclusive.items() if not any(p in f for p in PLUMBING)})
    lines = [f"{total} samples at {RATE}/s = {total / RATE:.2f} s of CPU in the window"]
    for title, counter in (("own time", own), ("including callees", inclusive)):
        lines += ["", f"{'%':>6} {'s':>6}  function ({title})"]
        for frame, count in counter.most_common(top):
            lines.append(f"{100 * count / total:6.1f} {count / RATE:6.2f}  {frame}")
    return "\n".join(lines)


def sender_and_injector(lab: Lab, receivers: list[Link]) -> tuple[SenderFrr, L3fabNode]:
    sender = SenderFrr(lab, receivers).start()
    injector = start_injector(lab, connect(lab, sender.ns, INJECTOR, "inj"))
    return sender, injector


def profile_receive(lab: Lab, routes: RouteSet, py_spy: str, top: int) -> str:
    link = receiver_links(("l3fab",))[0]
    sender, injector = sender_and_injector(lab, [link])
    call(injector.socket, "announce", {"routes": routes.l3fab_routes()},
         timeout=hold_timeout(routes.count))
    held, _ = wait_held(sender, INJECTOR, routes.family, routes.count, hold_timeout(routes.count))
    if held != routes.count:
        raise RuntimeError(f"FRR holds {held:,} of {routes.count:,}")
    receiver = L3fabReceiver(lab, connect(lab, sender.ns, link, "rcv-l3fab", shared_subnet=False),
                             link)
    receiver.start()
    sampler = Sampler(py_spy, receiver.pids()[0], Path(lab.workdir) / "py-spy.txt")
    try:
        sender.set_shutdown(link, False)
        established = wait_established(receiver)
        wait_until(lambda: receiver.count(routes.family) >= routes.count,
                   hold_timeout(routes.count), 0.02, what="l3fab holding every route")
        seconds = time.time() - established
        stacks = sampler.stop()
    finally:
        sampler.kill()
    return (f"l3fab receiving {routes.count:,} {routes.family} ({routes.packing}) from FRR: "
            f"{seconds:.2f} s while sampled\n\n{hot_spots(stacks, top)}")


def profile_send(lab: Lab, routes: RouteSet, py_spy: str, top: int) -> str:
    sender, injector = sender_and_injector(lab, [])
    specs = routes.l3fab_routes()
    sampler = Sampler(py_spy, injector.pid, Path(lab.workdir) / "py-spy.txt")
    try:
        started = time.time()
        call(injector.socket, "announce", {"routes": specs}, timeout=hold_timeout(routes.count, 100))
        api = time.time() - started
        held, seen = wait_held(sender, INJECTOR, routes.family, routes.count,
                               hold_timeout(routes.count, 100))
        stacks = sampler.stop()
    finally:
        sampler.kill()
    return (f"l3fab announcing {routes.count:,} {routes.family} ({routes.packing}) to FRR in one "
            f"API call: call returned after {api:.2f} s, FRR held {held:,} after "
            f"{seen - started:.2f} s while sampled\n\n{hot_spots(stacks, top)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l3fab.bench.profile_l3fab",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("direction", choices=("receive", "send"))
    parser.add_argument("--family", choices=FAMILIES, default="ipv4")
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--attribute-sets", type=int, default=1)
    parser.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"),
                        help="the py-spy program (default: from PATH)")
    args = parser.parse_args(argv)
    if not args.py_spy:
        parser.error("py-spy not found: pip install --target /tmp/pyspy py-spy, "
                     "then --py-spy /tmp/pyspy/bin/py-spy")
    routes = RouteSet(args.family, args.routes, args.attribute_sets)
    run = profile_receive if args.direction == "receive" else profile_send
    with Lab(prefix=LAB_PREFIX) as lab:
        print(run(lab, routes, args.py_spy, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
