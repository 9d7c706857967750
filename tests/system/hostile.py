"""A hostile BGP peer under test control, built on l3fab's own codec.

:class:`Hostile` is one raw TCP connection to a speaker under test.  Whatever a
stranger who can reach port 179 could do, it does on demand:

* send arbitrary bytes (:meth:`Hostile.send`), or well-formed messages made with
  l3fab's codec (:meth:`Hostile.send_open`, :func:`update_bytes`, :func:`notification`);
* withhold reads: a tiny receive buffer (``rcvbuf``) closes the TCP window after a
  few octets, and :meth:`Hostile.keepalives` keeps the session alive from our side
  without ever reading (the speaker's data piles up on its side);
* hold a connection silent: connect, then send nothing (the default);
* choose the TTL / hop limit of every packet, the SYN included (``ttl``);
* sign with a TCP-MD5 key, or not (``md5``);
* connect from inside a network namespace (``netns``), from a chosen source address
  (``source``) or over a link-local address on an interface (``scope_id``).

:class:`SpeakerProcess` runs ``l3fab run`` (optionally in a namespace) with module
constants patched first, so that defaults measured in minutes (the RFC 9687 send
hold time) can be seconds in a test without a configuration knob for it.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from l3fab.speaker.api import ApiClientError, call
from l3fab.speaker.netutil import set_md5
from l3fab.speaker.wire import IPV4_UNICAST, MessageReader, Notification, Open
from l3fab.speaker.wire.capabilities import Capability, ExtendedMessageCap, FourOctetAs, Multiprotocol
from l3fab.speaker.wire.constants import Family
from l3fab.speaker.wire.message import KEEPALIVE_BYTES

REPO = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000


# ------------------------------------------------------------------ sockets


def socket_in_netns(netns: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that belongs to the network namespace ``netns`` (``ip netns``).

    A helper thread enters the namespace with setns(2), which changes that thread only,
    creates the socket and ends; the socket stays in the namespace, the test does not.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    out: list[Any] = []

    def make() -> None:
        try:
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            out.append(socket.socket(family, socket.SOCK_STREAM))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out.append(e)

    t = threading.Thread(target=make, name=f"netns-{netns}")
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Hostile:
    """One raw TCP connection to a BGP speaker, doing only what the test says.

    The options that must act on the SYN (``ttl``, ``md5``, ``rcvbuf``, ``source``) are
    set before ``connect``.  ``connect`` raises what the connection attempt raised
    (a dropped SYN: ``TimeoutError`` after ``timeout`` seconds).
    """

    def __init__(self, host: str, port: int, *, source: str | None = None, scope_id: int = 0,
                 ttl: int | None = None, md5: str | None = None, rcvbuf: int | None = None,
                 netns: str | None = None, timeout: float = 5.0) -> None:
        fam = _family(host)
        self.host, self.port = host, port
        self.sock = socket_in_netns(netns, fam) if netns else socket.socket(fam, socket.SOCK_STREAM)
        self.reader = MessageReader()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        try:
            if rcvbuf is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if ttl is not None:
                if fam == socket.AF_INET6:
                    self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
                else:
                    self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            if md5 is not None:
                set_md5(self.sock, host, md5)
            if source is not None:
                self.sock.bind((source, 0, 0, scope_id) if fam == socket.AF_INET6 else (source, 0))
            self.sock.settimeout(timeout)
            self.sock.connect((host, port, 0, scope_id) if fam == socket.AF_INET6 else (host, port))
        except BaseException:
            self.sock.close()
            raise

    # -------------------------------------------------------------- sending

    def send(self, data: bytes) -> None:
        """Any bytes at all."""
        with self._send_lock:
            self.sock.sendall(data)

    def send_open(self, asn: int = 65002, router_id: str = "10.0.0.2", hold_time: int = 30,
                  families: tuple[Family, ...] = (IPV4_UNICAST,), extended_message: bool = False,
                  extra: tuple[Capability, ...] = ()) -> None:
        caps: tuple[Capability, ...] = tuple(Multiprotocol(f) for f in families) + (FourOctetAs(asn),)
        if extended_message:
            caps += (ExtendedMessageCap(),)
        self.send(Open(asn, hold_time, router_id, caps + extra).encode())

    def establish(self, **open_kw: Any) -> Open:
        """OPEN and KEEPALIVE from us, the speaker's OPEN read (its KEEPALIVE may follow)."""
        self.send_open(**open_kw)
        self.send(KEEPALIVE_BYTES)
        return self.expect(Open)

    def keepalives(self, every: float) -> None:
        """A thread sends a KEEPALIVE every ``every`` seconds, and nothing ever reads:
        the speaker's hold timer is satisfied while what it sends piles up."""
        def run() -> None:
            while not self._stop.wait(every):
                try:
                    self.send(KEEPALIVE_BYTES)
                except OSError:
                    return

        t = threading.Thread(target=run, daemon=True, name="hostile-keepalives")
        t.start()
        self._threads.append(t)

    # -------------------------------------------------------------- receiving

    def expect(self, cls: type, timeout: float = 5.0) -> Any:
        """The next message of type ``cls`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.reader.messages():
                if isinstance(msg, cls):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {cls.__name__} within {timeout}s")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed without a {cls.__name__}")
            self.reader.feed(data)

    def drain(self, timeout: float = 5.0) -> tuple[bytes, str]:
        """Everything the speaker sends until it closes the connection: the raw octets and
        how it ended ("eof", "reset" or "timeout")."""
        got = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(got), "timeout"
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return bytes(got), "timeout"
            except ConnectionResetError:
                return bytes(got), "reset"
            if not data:
                return bytes(got), "eof"
            got += data

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------ messages


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return Notification(code, subcode, data).encode()


def update_bytes(attributes: bytes, nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    """An UPDATE from raw attribute and NLRI octets (nothing checked: anything goes)."""
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attributes)) + attributes + nlri
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


def attribute(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def ipv4_route_attributes(asn: int, next_hop: str) -> bytes:
    """ORIGIN IGP, AS_PATH (one four-octet AS), NEXT_HOP."""
    return (attribute(0x40, 1, b"\x00")
            + attribute(0x40, 2, b"\x02\x01" + struct.pack("!I", asn))
            + attribute(0x40, 3, socket.inet_aton(next_hop)))


def prefix_octets(prefix: str) -> bytes:
    addr, _, length = prefix.partition("/")
    n = int(length)
    return bytes([n]) + socket.inet_aton(addr)[: (n + 7) // 8]


# ------------------------------------------------------------------ the speaker under test


BOOT = """\
import importlib, json, runpy, sys
for name, value in json.loads(sys.argv[1]).items():
    module, _, attr = name.rpartition(".")
    m = importlib.import_module(module)
    if not hasattr(m, attr):  # set anyway (a run against older code), but say so in the log
        print(f"test launcher: {name} did not exist", file=sys.stderr)
    setattr(m, attr, value)
sys.argv = ["l3fab", *sys.argv[2:]]
runpy.run_module("l3fab.cli.main", run_name="__main__")
"""


class SpeakerProcess:
    """``l3fab run`` with ``config``, module constants patched first (``patches``: dotted
    name -> value), in the host's namespace or, with ``enter`` (a function turning an
    argv into one that runs inside a namespace, e.g. :meth:`Lab.enter_argv`), in another.
    It is stopped by its PID (its own process group) only."""

    def __init__(self, workdir: Path, config: dict, patches: dict[str, Any] | None = None,
                 enter: Callable[[list[str]], list[str]] | None = None, name: str = "l3fab") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket = str(workdir / f"{name}.sock")
        self.config_file = workdir / f"{name}.yaml"
        self.log = workdir / f"{name}.log"
        config = {"fib": {"enabled": False}, **config, "api-socket": self.socket}
        self.config_file.write_text(yaml.safe_dump(config))
        argv = [sys.executable, "-c", BOOT, json.dumps(patches or {}), "run", "-c", str(self.config_file),
                "--log-level", "debug"]
        if enter is not None:
            argv = enter(argv)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.status = call(self.socket, "status", timeout=2)
                break
            except ApiClientError as e:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"l3fab did not start: {self.log_text()[-3000:]}") from e
                time.sleep(0.05)

    @property
    def port(self) -> int:
        return int(self.status["listen_port"])

    def api(self, method: str, **params: Any) -> Any:
        return call(self.socket, method, params)

    def neighbor(self, name: str) -> dict:
        return self.api("neighbor", neighbor=name)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wait_for(fn: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``fn`` until it returns something true (a deadline, not a performance assert)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")
