"""The kernel FIB over a raw NETLINK_ROUTE socket: batched writes, every ack read, fast dumps.

Writes go out in chunks: many RTM_NEWROUTE/RTM_DELROUTE messages, each with
NLM_F_ACK and its own sequence number, in one ``send``. The kernel handles them
one by one and queues one NLMSG_ERROR per message (0 = done), so every failure
is reported against its route. Transient failures (ENOMEM, ENOBUFS: seg6's
per-CPU atomic allocations fail under bursts) are sent again with a growing
pause. If acks themselves are lost (the socket's receive queue overflowed),
the outcome of the unacked messages is unknown and they are reported as
``uncertain``; the caller re-reads the kernel table and diffs again.

The socket lives in the network namespace of the process that opens it
(``ip netns exec`` is enough).

The kernel also removes routes by itself: when an interface goes down (or
away, or loses its last address) it deletes every route through it, IPv4
without an RTM_DELROUTE, and it never puts them back when the interface comes
up again. :class:`LinkWatch` listens for those link and address changes so
that the FIB re-reads the kernel instead of trusting what it wrote.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

from l3fab.fib import netlink as nl
from l3fab.fib.model import RTPROT_L3FAB, FibRoute
from l3fab.fib.netlink import Prepared, RouteKey, Signature
from l3fab.fib.reconcile import Pid

TRANSIENT = frozenset({errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN, errno.EBUSY})
SOCKET_BUFFER = 32 << 20     # forced (root); acks of a whole chunk must fit
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # <asm-generic/socket.h>; not exported by Python
CHUNK_MESSAGES = 1024
CHUNK_BYTES = 256 << 10
RETRIES = 60                 # rounds for transient errors, pauses 1 ms .. 100 ms


class NetlinkSocket(Protocol):
    """What :class:`KernelFib` needs of a socket (a fake one serves in tests)."""

    def send(self, data: bytes) -> int: ...
    def recv_into(self, buffer: bytearray, nbytes: int = 0) -> int: ...
    def close(self) -> None: ...


#: One change: (action, pid, metric, RTM_NEWROUTE body or None, signature or None), with
#: pid = (table, af, dst, dst_len) and action "add", "replace" or "delete".
#: "add" is create-only (NLM_F_EXCL): it never overwrites a route of another protocol.
Op = tuple[str, Pid, int, bytes | None, Signature | None]


@dataclass(frozen=True, slots=True)
class OpError:
    op: Op
    errno: int

    def __str__(self) -> str:
        action, (table, af, dst, plen), metric, _body, _sig = self.op
        return (f"{action} {socket.inet_ntop(af, dst)}/{plen} table {table} "
                f"metric {metric}: {errno.errorcode.get(self.errno, self.errno)} "
                f"({os.strerror(self.errno)})")


@dataclass
class ApplyOutcome:
    done: list[Op] = field(default_factory=list)
    failed: list[OpError] = field(default_factory=list)
    uncertain: list[Op] = field(default_factory=list)
    retries: int = 0


class NetlinkError(OSError):
    pass


def open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    for opt, fallback in ((SO_SNDBUFFORCE, socket.SO_SNDBUF),
                          (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, fallback, SOCKET_BUFFER)
    # Error acks carry only the header (we match by seq); strict dump filtering.
    for opt in (nl.NETLINK_CAP_ACK, nl.NETLINK_GET_STRICT_CHK):
        try:
            sock.setsockopt(nl.SOL_NETLINK, opt, 1)
        except OSError:
            pass
    return sock


WATCH_GROUPS = nl.RTMGRP_LINK | nl.RTMGRP_IPV4_IFADDR | nl.RTMGRP_IPV6_IFADDR
WATCH_BUFFER = 4 << 20
#: Interface flags whose change can delete routes (down) or let them back in (up).
WATCH_FLAGS = nl.IFF_UP | nl.IFF_LOWER_UP


def open_watch_socket(groups: int = WATCH_GROUPS) -> socket.socket:
    """A non-blocking NETLINK_ROUTE socket subscribed to ``groups`` (link and address events)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                         socket.NETLINK_ROUTE)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, WATCH_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WATCH_BUFFER)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


class LinkWatch:
    """Link and address changes that may have made the kernel drop l3fab's routes.

    The kernel deletes the routes through an interface that goes down, goes away
    or loses its last address, without telling (no RTM_DELROUTE for IPv4), and
    does not restore them when it comes back. What it does announce is the
    interface change: :meth:`changed` reads those announcements (never blocking)
    and says whether one of them matters: an interface that appeared, went away,
    went up or down or lost or regained its carrier, an address added or removed,
    or announcements lost to a full socket buffer.
    """

    def __init__(self, sock: NetlinkSocket | None = None):
        self.sock = sock if sock is not None else open_watch_socket()
        self._flags: dict[int, int] = {}  # ifindex -> WATCH_FLAGS last announced (live links only)
        self._buf = bytearray(1 << 18)

    def close(self) -> None:
        self.sock.close()

    def changed(self) -> bool:
        """Read every queued announcement; True if one of them matters (see the class)."""
        changed = False
        while True:
            try:
                n = self.sock.recv_into(self._buf, len(self._buf))
            except (BlockingIOError, InterruptedError):
                return changed
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                changed = True  # the queue overflowed: what was lost is unknown
                continue
            if not n:
                return changed
            for mtype, index, flags in nl.interface_events(bytes(self._buf[:n])):
                if mtype == nl.RTM_NEWLINK:
                    flags &= WATCH_FLAGS
                    if self._flags.get(index) != flags:
                        self._flags[index] = flags
                        changed = True
                elif mtype == nl.RTM_DELLINK:
                    self._flags.pop(index, None)
                    changed = True
                else:  # an address added or removed
                    changed = True


class KernelFib:
    """Routes of one rtm_protocol in the kernel of the current network namespace.

    ``sock`` is the route socket and ``watch`` the :class:`LinkWatch`; when
    ``sock`` is not given both are opened here (in the caller's namespace). A
    caller that brings its own socket brings its own watch too, or has none.
    """

    def __init__(self, protocol: int = RTPROT_L3FAB, sock: NetlinkSocket | None = None,
                 chunk_messages: int = CHUNK_MESSAGES, sleep: Callable[[float], None] = time.sleep,
                 resolve: Callable[[str], int] = socket.if_nametoindex,
                 watch: LinkWatch | None = None):
        if not 0 < protocol < 256:
            raise ValueError(f"protocol: {protocol} is not in 1..255")
        self.protocol = protocol
        if sock is None:
            # The watch first: a change after the first dump must not go unseen.
            own_watch = watch is None
            watch = watch if watch is not None else LinkWatch()
            try:
                sock = open_socket()
            except BaseException:
                if own_watch:
                    watch.close()
                raise
        self.watch = watch
        self.sock = sock
        self.chunk_messages = chunk_messages
        self.sleep = sleep
        self._seq = 0
        self._buf = bytearray(1 << 20)
        self._ifindex: dict[str, int] = {}
        # Names resolved -> the index they had last, kept across forget_interfaces() and
        # only while the interface exists; names seen to change since moved_interfaces().
        self._last: dict[str, int] = {}
        self._moved: set[str] = set()
        self._resolve = resolve  # interface name -> index, in the socket's namespace
        self.encoder = nl.Encoder(self.ifindex, protocol)

    def close(self) -> None:
        self.sock.close()
        if self.watch is not None:
            self.watch.close()

    def changed(self) -> bool:
        """Whether the kernel may have dropped routes since the last call (see :class:`LinkWatch`).

        Without a watch the answer is always False: only a reconcile finds out.
        """
        return self.watch is not None and self.watch.changed()

    def ifindex(self, ifname: str) -> int:
        """The index of ``ifname`` in this namespace (cached; see :meth:`forget_interfaces`)."""
        index = self._ifindex.get(ifname)
        if index is None:
            try:
                index = self._resolve(ifname)
            except OSError:
                self._saw(ifname, None)
                raise
            self._saw(ifname, index)
            self._ifindex[ifname] = index
        return index

    def _saw(self, ifname: str, index: int | None) -> None:
        last = self._last.get(ifname)
        if last is not None and last != index:
            self._moved.add(ifname)
        if index is None:
            self._last.pop(ifname, None)
            self._ifindex.pop(ifname, None)
        else:
            self._last[ifname] = index

    def forget_interfaces(self) -> None:
        """Drop cached interface indexes and encodings (an interface was re-created)."""
        self._ifindex.clear()
        self.encoder.clear()

    def moved_interfaces(self) -> set[str]:
        """Names whose interface was removed or re-created (a new index) since they were
        resolved, looked up again now. Their cached indexes and every cached encoding
        are dropped: routes through them are to be encoded again."""
        for ifname in list(self._last):
            try:
                index: int | None = self._resolve(ifname)
            except OSError:
                index = None
            self._saw(ifname, index)
            if index is not None:
                self._ifindex[ifname] = index
        moved, self._moved = self._moved, set()
        if moved:
            self.encoder.clear()
        return moved

    def prepare(self, route: FibRoute) -> Prepared:
        return self.encoder.prepare(route)

    # -- dump ----------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _recv(self) -> bytes:
        n = self.sock.recv_into(self._buf, len(self._buf))
        return bytes(self._buf[:n])

    def dump(self, tables: Iterable[int] | None = None,
             families: Sequence[int] = (socket.AF_INET, socket.AF_INET6),
             ) -> dict[RouteKey, Signature]:
        """{key: signature} of every route with our protocol (in ``tables``, default all)."""
        out: dict[RouteKey, Signature] = {}
        wanted = None if tables is None else set(tables)
        for af in families:
            for table in (sorted(wanted) if wanted is not None and len(wanted) <= 8 else [0]):
                for key, sig in self._dump_one(af, table):
                    if wanted is None or key[0] in wanted:
                        out[key] = sig
        return out

    def _dump_one(self, af: int, table: int) -> list[tuple[RouteKey, Signature]]:
        for _attempt in range(5):
            routes, interrupted = self._dump_once(af, table)
            if not interrupted:
                return routes
        raise NetlinkError(errno.EINTR, "route dump kept being interrupted by changes")

    def _dump_once(self, af: int, table: int) -> tuple[list[tuple[RouteKey, Signature]], bool]:
        seq = self._next_seq()
        self.sock.send(nl.getroute_dump(af, seq, self.protocol, table))
        proto = self.protocol
        routes: list[tuple[RouteKey, Signature]] = []
        append = routes.append
        interrupted = False
        parse = nl.parse_route
        unpack = nl.NLMSGHDR.unpack_from
        u32 = nl.U32.unpack_from
        # IPv4 dumps start with RTA_TABLE, RTA_DST; routes of one shape then share
        # every byte after the destination, so their decoding is looked up, not redone.
        shapes: dict[bytes, tuple[int, Signature]] = {}
        lead = nl.RTATTR.pack(8, nl.RTA_TABLE)
        dst4 = nl.RTATTR.pack(8, nl.RTA_DST)
        while True:
            buf = self._recv()
            off, n = 0, len(buf)
            while off + 16 <= n:
                mlen, mtype, mflags, mseq, _pid = unpack(buf, off)
                if mlen < 16:
                    break
                if mseq == seq:
                    if mflags & nl.NLM_F_DUMP_INTR:
                        interrupted = True
                    if mtype == nl.RTM_NEWROUTE:
                        if buf[off + 21] != proto:  # rtm_protocol (also filtered by the kernel)
                            pass
                        elif buf[off + 28:off + 32] == lead and buf[off + 36:off + 40] == dst4:
                            shape = buf[off + 16:off + 36] + buf[off + 44:off + mlen]
                            hit = shapes.get(shape)
                            if hit is None:
                                key, sig, _p = parse(buf, off, off + mlen)
                                hit = shapes[shape] = (key[4], sig)
                            append(((u32(buf, off + 32)[0], nl.AF_INET, buf[off + 40:off + 44],
                                     buf[off + 17], hit[0]), hit[1]))
                        else:
                            key, sig, _p = parse(buf, off, off + mlen)
                            append((key, sig))
                    elif mtype == nl.NLMSG_DONE:
                        return routes, interrupted
                    elif mtype == nl.NLMSG_ERROR:
                        code = nl.error_code(buf, off)
                        if code == errno.EINTR:
                            return routes, True
                        raise NetlinkError(code, f"route dump: {os.strerror(code)}")
                off += (mlen + 3) & ~3

    # -- writes ----------------------------------------------------------------


    def apply(self, ops: Sequence[Op]) -> ApplyOutcome:
        """Apply ``ops``; every op ends in ``done``, ``failed`` or ``uncertain``."""
        outcome = ApplyOutcome()
        pending = list(ops)
        rounds = 0
        while pending:
            transient: list[tuple[Op, int]] = []
            for start in range(0, len(pending), self.chunk_messages):
                self._send_chunk(pending[start:start + self.chunk_messages], outcome, transient)
            if not transient:
                break
            rounds += 1
            if rounds > RETRIES:
                outcome.failed.extend(OpError(op, code) for op, code in transient)
                break
            outcome.retries += 1
            self.sleep(min(0.001 * 2 ** (rounds - 1), 0.1))
            pending = [op for op, _code in transient]
        return outcome

    def _send_chunk(self, chunk: Sequence[Op], outcome: ApplyOutcome,
                    transient: list[tuple[Op, int]]) -> None:
        by_seq: dict[int, Op] = {}
        parts = []
        pack = nl.NLMSGHDR.pack
        seq = self._seq
        for op in chunk:
            seq = seq + 1 if seq < 0xFFFFFFFF else 1
            by_seq[seq] = op
            action, pid, metric, body, _sig = op
            if action == "delete":
                parts.append(nl.delroute(pid + (metric,), seq, self.protocol))
            else:
                assert body is not None  # "add" and "replace" carry their RTM_NEWROUTE body
                parts.append(pack(16 + len(body), nl.RTM_NEWROUTE,
                                  nl.NEW_CREATE if action == "add" else nl.NEW_REPLACE, seq, 0))
                parts.append(body)
        self._seq = seq
        self.sock.send(b"".join(parts))
        done = outcome.done.append
        while by_seq:
            try:
                buf = self._recv()
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                # Acks were dropped: what happened to the rest is unknown.
                outcome.uncertain.extend(by_seq.values())
                self._drain()
                return
            off, n = 0, len(buf)
            while off + 20 <= n:
                mlen, mtype, _flags, seq, _pid, err = nl.ERRHDR.unpack_from(buf, off)
                if mlen < 16:
                    break
                off += (mlen + 3) & ~3
                if mtype != nl.NLMSG_ERROR:
                    continue
                acked = by_seq.pop(seq, None)
                if acked is None:
                    continue
                op = acked
                if err == 0:
                    done(op)
                    continue
                code = -err
                if code == errno.ESRCH and op[0] == "delete":
                    done(op)
                elif code in TRANSIENT:
                    transient.append((op, code))
                else:
                    if code == errno.ENODEV:
                        self.forget_interfaces()
                    outcome.failed.append(OpError(op, code))

    def _drain(self) -> None:
        """Read whatever acks are still queued after an overflow, without blocking."""
        sock = self.sock
        if not hasattr(sock, "setblocking"):
            return
        sock.setblocking(False)
        try:
            while True:
                try:
                    if not sock.recv_into(self._buf, len(self._buf)):
                        break
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
        finally:
            sock.setblocking(True)
