"""ExaBGP API process: relays commands from a FIFO and records what ExaBGP reports.

ExaBGP starts this script (``process ... { run ...; }``) and talks to it over
pipes: lines this script prints to stdout are API commands for ExaBGP, and
ExaBGP writes its messages to this script's stdin (JSON for updates and state
changes, plain ``done`` / ``error`` acknowledgements for commands).

Usage: ``exabgp_api.py COMMAND_FIFO EVENTS_FILE``

* every line written to ``COMMAND_FIFO`` is forwarded to ExaBGP unchanged, and
  recorded in ``EVENTS_FILE`` as ``{"command": line}``;
* every JSON message from ExaBGP is appended to ``EVENTS_FILE`` as one line;
* every other line (acknowledgements) is appended as ``{"ack": line}``.

Each record is flushed at once so the test can poll the file.
"""

from __future__ import annotations

import json
import os
import selectors
import sys


def _record(events, obj) -> None:
    events.write(json.dumps(obj, separators=(",", ":")) + "\n")
    events.flush()


def _lines(buffer: bytearray, data: bytes):
    """Append ``data`` and yield every complete line (without the newline)."""
    buffer.extend(data)
    while True:
        end = buffer.find(b"\n")
        if end < 0:
            return
        line = bytes(buffer[:end]).decode(errors="replace").strip()
        del buffer[:end + 1]
        if line:
            yield line


def relay(command_fifo: str, events_path: str) -> None:
    # O_RDWR keeps the FIFO open with no writer present: no EOF between writers.
    fifo = os.open(command_fifo, os.O_RDWR | os.O_NONBLOCK)
    stdin = sys.stdin.fileno()  # the same descriptor as sys.stdin.buffer.raw
    sel = selectors.DefaultSelector()
    sel.register(fifo, selectors.EVENT_READ, "command")
    sel.register(stdin, selectors.EVENT_READ, "exabgp")
    buffers = {"command": bytearray(), "exabgp": bytearray()}
    with open(events_path, "a", encoding="utf-8") as events:
        _record(events, {"api": "started", "pid": os.getpid()})
        while True:
            for key, _ in sel.select():
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    if key.data == "exabgp":  # ExaBGP went away: so do we
                        _record(events, {"api": "stdin closed"})
                        return
                    continue
                for line in _lines(buffers[key.data], data):
                    if key.data == "command":
                        sys.stdout.write(line + "\n")
                        sys.stdout.flush()
                        _record(events, {"command": line})
                    else:
                        try:
                            _record(events, json.loads(line))
                        except json.JSONDecodeError:
                            _record(events, {"ack": line})


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    relay(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
