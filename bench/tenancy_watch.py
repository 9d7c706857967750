"""Exact arrival times of l3fab's tenant routes, from the kernel's own route notifications.

``python -m l3fab.bench.tenancy_watch EVENTS --tables 100,101 [--per-route] [--every 1000]``
runs inside a host's network namespace (``ip netns exec``). It joins the
rtnetlink IPv4 and IPv6 route groups and, for routes of l3fab's VRF protocol
(211) in the given tables, appends JSON lines to ``EVENTS``:

- ``{"ready": t}`` once it listens (start measuring only after this line);
- with ``--per-route``: ``{"t": t, "op": "add"|"del", "table": T, "prefix": P}`` per change;
- ``{"t": t, "count": n}`` whenever the number of routes present crossed a multiple of
  ``--every`` (and the first route: ``{"first": t}``);
- ``{"overflow": t}`` if the kernel dropped notifications (ENOBUFS): counts are then
  unreliable and the benchmark counts with a dump instead.

``t`` is ``time.time()`` right after ``recv`` returned: the listener does nothing
else, so it wakes within microseconds of the kernel's change. Polling a table
instead would add up to a poll interval to every arrival.
"""
from __future__ import annotations

import argparse
import errno
import json
import socket
import sys
import time
from pathlib import Path

from l3fab.dataplane.model import RTPROT_L3FAB_VRF
from l3fab.fib import netlink as nl
from l3fab.lab.netns import Lab, Namespace, Process, wait_until

REPO = Path(__file__).resolve().parents[1]

RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 64 << 20  # a burst of notifications must not overflow while we write


def open_listener() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.bind((0, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE))
    return sock


def route_changes(buf: bytes, tables: frozenset[int], protocol: int):
    """(op, table, prefix) of each route message in ``buf`` that concerns us."""
    for off, length, mtype, _flags, _seq in nl.iter_messages(buf):
        if mtype not in (nl.RTM_NEWROUTE, nl.RTM_DELROUTE):
            continue
        key, _sig, proto = nl.parse_route(buf, off, off + length)
        table, af, dst, plen = key[:4]
        if proto != protocol or table not in tables:
            continue
        yield ("add" if mtype == nl.RTM_NEWROUTE else "del", table,
               f"{socket.inet_ntop(af, dst)}/{plen}")


def watch(events: Path, tables: frozenset[int], per_route: bool, every: int,
          protocol: int = RTPROT_L3FAB_VRF) -> None:
    sock = open_listener()
    present: set[tuple[int, str]] = set()
    buf = bytearray(1 << 20)
    with events.open("a", buffering=1) as out:
        def emit(record: dict) -> None:
            out.write(json.dumps(record) + "\n")

        emit({"ready": time.time()})
        while True:
            try:
                n = sock.recv_into(buf)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                emit({"overflow": time.time()})
                continue
            now = time.time()
            before = len(present)
            for op, table, prefix in route_changes(bytes(buf[:n]), tables, protocol):
                if op == "add":
                    present.add((table, prefix))
                else:
                    present.discard((table, prefix))
                if per_route:
                    emit({"t": now, "op": op, "table": table, "prefix": prefix})
            after = len(present)
            if before == 0 and after:
                emit({"first": now})
            if every and after // every != before // every:
                emit({"t": now, "count": after})


class WatchLog:
    """The benchmark's side: reads what the watcher appended since the last call."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._partial = ""
        self.records: list[dict] = []

    def read(self) -> list[dict]:
        """Records appended since the previous call (also kept in :attr:`records`)."""
        try:
            with self.path.open() as f:
                f.seek(self._offset)
                text = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return []
        text, self._partial = self._partial + text, ""
        lines = text.split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next read
        new = [json.loads(line) for line in lines if line]
        self.records += new
        return new

    def last(self, key: str) -> dict | None:
        self.read()
        for record in reversed(self.records):
            if key in record:
                return record
        return None


def start(lab: Lab, ns: Namespace, events: Path, tables, *options: str,
          name: str = "tenancy-watch") -> tuple[Process, WatchLog]:
    """Start the listener in ``ns`` (options: ``--per-route``, ``--every N``); return once it listens."""
    proc = lab.popen(ns, [sys.executable, "-m", "l3fab.bench.tenancy_watch", str(events),
                          "--tables", ",".join(map(str, tables)), *options], name=name, cwd=REPO)
    log = WatchLog(events)
    wait_until(lambda: log.last("ready"), 30, 0.05, what=f"route listener in {ns.name} ready")
    return proc, log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("--tables", required=True, help="comma-separated kernel table ids")
    parser.add_argument("--per-route", action="store_true", help="one line per route change")
    parser.add_argument("--every", type=int, default=0, help="a count line every N routes")
    args = parser.parse_args(argv)
    tables = frozenset(int(t) for t in args.tables.split(",") if t)
    try:
        watch(args.events, tables, args.per_route, args.every)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
