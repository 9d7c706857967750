"""ExaBGP API process that announces routes one command per route, for the send benchmark.

Usage: ``exabgp_sender.py EVENTS_FILE COMMANDS_FILE``

It waits until ExaBGP reports the session up, then writes every line of
``COMMANDS_FILE`` (``announce route ...``) to ExaBGP, one command per route
and flushed one by one, as a controller driving ExaBGP's text API does. A
second thread reads ExaBGP's acknowledgements (``done``), which ExaBGP would
otherwise block on. Records in ``EVENTS_FILE`` (the format of
:class:`lab.peers.exabgp.ExaBgp`):

* ``{"api": "started", "pid": ...}`` once;
* every state message, with ``"time"`` added;
* ``{"first_command": T}`` and ``{"last_command": T, "commands": N}``;
* ``{"acked": N, "errors": E, "time": T}`` once every command is acknowledged.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time


def send(events_path: str, commands_path: str) -> None:
    with open(commands_path, encoding="utf-8") as handle:
        commands = [line.rstrip("\n") for line in handle if line.strip()]
    lock = threading.Lock()
    up = threading.Event()

    with open(events_path, "a", encoding="utf-8") as events:
        def record(obj: dict) -> None:
            with lock:
                events.write(json.dumps(obj, separators=(",", ":")) + "\n")
                events.flush()

        def read_exabgp() -> None:
            acked = errors = 0
            for line in sys.stdin:
                line = line.strip()
                if line.startswith("{"):
                    message = json.loads(line)
                    if message.get("type") == "state":
                        message["time"] = time.time()
                        record(message)
                        if message["neighbor"].get("state") == "up":
                            up.set()
                elif line in ("done", "error"):
                    acked += 1
                    errors += line == "error"
                    if acked == len(commands):
                        record({"acked": acked, "errors": errors, "time": time.time()})
            record({"api": "stdin closed"})
            os._exit(0)  # ExaBGP is gone: leave without waiting for the writer

        record({"api": "started", "pid": os.getpid()})
        threading.Thread(target=read_exabgp, daemon=True).start()
        up.wait()
        out = sys.stdout
        record({"first_command": time.time()})
        for command in commands:
            out.write(command + "\n")
            out.flush()
        record({"last_command": time.time(), "commands": len(commands)})
        threading.Event().wait()  # keep the session's API process alive


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    send(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
