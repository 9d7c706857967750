"""ExaBGP API process that counts the prefixes ExaBGP reports, for the ingest benchmark.

Usage: ``exabgp_counter.py EVENTS_FILE TARGET``

ExaBGP writes one JSON object per received UPDATE to this process's stdin
(``receive { parsed; update; }`` with ``encoder json``). This process decodes
each one, as any consumer of ExaBGP's API must, and keeps a running count of
announced minus withdrawn prefixes. It appends to ``EVENTS_FILE``, one JSON
object a line, in the format :class:`lab.peers.exabgp.ExaBgp` reads:

* ``{"api": "started", "pid": ...}`` once;
* every state message from ExaBGP, with ``"time"`` (``time.time()``) added;
* ``{"count": N, "time": T}`` at most twice a second while routes arrive;
* ``{"done": T, "count": N}`` when the count first reaches ``TARGET``.

A route with a global and a link-local next hop is listed by ExaBGP under both
next hops; within one UPDATE every prefix shares the one MP_REACH next hop, so
only the first next hop's list is counted.
"""
from __future__ import annotations

import json
import os
import sys
import time

PROGRESS_EVERY = 0.5  # seconds between progress records


def announced(update: dict) -> int:
    """Prefixes an ExaBGP ``update`` object announces, each counted once."""
    total = 0
    for by_nexthop in update.get("announce", {}).values():
        for nlri in by_nexthop.values():
            total += len(nlri)
            break
    return total


def withdrawn(update: dict) -> int:
    return sum(len(nlri) for nlri in update.get("withdraw", {}).values())


def count(events_path: str, target: int) -> None:
    with open(events_path, "a", encoding="utf-8") as events:
        def record(obj: dict) -> None:
            events.write(json.dumps(obj, separators=(",", ":")) + "\n")
            events.flush()

        record({"api": "started", "pid": os.getpid()})
        total = 0
        done = False
        last_progress = 0.0
        for line in sys.stdin:
            if not line.startswith("{"):
                continue  # acknowledgements of commands (none are sent)
            message = json.loads(line)
            if message.get("type") == "update":
                update = message["neighbor"]["message"].get("update", {})
                total += announced(update) - withdrawn(update)
                now = time.time()
                if not done and total >= target:
                    done = True
                    record({"done": now, "count": total})
                elif now - last_progress >= PROGRESS_EVERY:
                    last_progress = now
                    record({"count": total, "time": now})
            elif message.get("type") == "state":
                message["time"] = time.time()
                record(message)
        record({"api": "stdin closed", "count": total})


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    count(argv[1], int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
