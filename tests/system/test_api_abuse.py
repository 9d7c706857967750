"""The local API under abuse (issue 10, finding 6 and its "API abuse suite"): oversized,
slow, idle and too many connections, invalid JSON, and control characters and markup in
every string field of the tenant and endpoint requests, through the CLI and the raw
socket, against a real ``l3fab run``.

Throughout, the daemon must keep answering ``status`` (within a client timeout: a hang
fails, a slow machine does not), its memory must stay bounded (VmHWM, the peak resident
size, against the size before the abuse, with a generous margin) and a BGP peer
connected to it must stay Established.  The daemon's defaults are under test: 64
connections, 10 s to send a request, 32 MiB per request, 48 MiB buffered in all.
"""
from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from l3fab.speaker.api import ApiClientError, call
from l3fab.speaker.wire.constants import MessageType
from l3fab.speaker.wire.message import KEEPALIVE_BYTES

from .conftest import REPO
from .rawpeer import RawPeer, wait

MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 10.0
MAX_REQUEST = 32 * 1024 * 1024
RSS_MARGIN_KB = 200 * 1024  # generous: the old daemon grew by a gigabyte
STATUS_TIMEOUT = 10.0  # "answers status": within the time a client waits, under load


def _config(tmp_path) -> dict:
    return {
        "router-id": "10.0.0.21", "asn": 65021, "listen": {"addresses": ["127.0.0.1"], "port": 0},
        "tenancy": {"fabric-asn": 65000, "locator": "2001:db8:0:21::/64",
                    "state-file": str(tmp_path / "intent.json")},
        # a short hold time: a daemon that stops serving its sessions for 9 s loses this one
        "neighbors": [{"name": "leaf", "address": "127.0.0.1", "remote-as": 65002, "passive": True,
                       "families": ["ipv4"], "hold-time": 9},
                      # connects during the connection flood
                      {"name": "late", "address": "127.0.0.2", "remote-as": 65002, "passive": True,
                       "families": ["ipv4"], "hold-time": 9}],
    }


class KeptPeer:
    """A :class:`RawPeer` kept Established from its side: one thread sends a KEEPALIVE
    every second, another reads all the daemon sends and notes a NOTIFICATION or a close."""

    def __init__(self, port: int) -> None:
        self.peer = RawPeer(port)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._keepalives, daemon=True)]
        for t in self._threads:
            t.start()

    def _keepalives(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.peer.sock.sendall(KEEPALIVE_BYTES)
            except OSError as e:
                self.lost = self.lost or f"send: {e}"
                return

    def _read(self) -> None:
        sock, reader = self.peer.sock, self.peer.reader
        sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError as e:
                self.lost = self.lost or f"recv: {e}"
                return
            if not data:
                self.lost = self.lost or "closed by the daemon"
                return
            reader.feed(data)
            for msg_type, body in reader.frames():
                if msg_type == MessageType.NOTIFICATION:
                    self.lost = self.lost or f"NOTIFICATION {body[:2].hex()}"

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self.peer.close()


def _kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{key} not in /proc/{pid}/status")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Watch:
    """The daemon, its BGP peer and its memory, before and after an abuse."""

    def __init__(self, d) -> None:
        self.d = d
        self.peer = KeptPeer(d.status["listen_port"])
        wait(lambda: d.api("neighbor", neighbor="leaf")["state"] == "Established")
        self.rss_before = _kb(d.proc.pid, "VmRSS")
        self.log_lines_before = len(d.log.read_text(errors="replace").splitlines())

    def status(self) -> dict:
        return call(self.d.socket, "status", timeout=STATUS_TIMEOUT)

    def api_log(self) -> list[str]:
        lines = self.d.log.read_text(errors="replace").splitlines()[self.log_lines_before:]
        return [line for line in lines if " l3fab.api: " in line]

    def check(self) -> None:
        d = self.d
        assert d.proc.poll() is None, "the daemon must survive"
        self.status()
        n = d.api("neighbor", neighbor="leaf")
        assert n["state"] == "Established" and n["established_count"] == 1, n  # never dropped
        assert self.peer.lost is None, self.peer.lost
        peak = _kb(d.proc.pid, "VmHWM")
        assert peak - self.rss_before < RSS_MARGIN_KB, (self.rss_before, peak)
        log = d.log.read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]

    def close(self) -> None:
        self.peer.close()


@pytest.fixture
def watched(daemon_factory, tmp_path):
    w = Watch(daemon_factory(_config(tmp_path)))
    yield w
    w.close()


def _connect(path: str, timeout: float = 30.0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:  # the listen backlog is full: the daemon has not accepted yet
            if time.monotonic() > deadline:
                s.close()
                raise
            time.sleep(0.01)


def _read_to_close(s: socket.socket) -> bytes:
    """Everything the daemon sends until it closes ``s`` (a timeout fails the test)."""
    out = b""
    while True:
        try:
            chunk = s.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            return out
        if not chunk:
            return out
        out += chunk


def _one_error(data: bytes) -> dict:
    lines = data.splitlines()
    assert len(lines) == 1, data[:500]
    answer = json.loads(lines[0])
    assert answer["ok"] is False and answer["error"].isprintable(), answer
    return answer


# --- oversized ---

def test_oversized_requests_are_refused_and_not_buffered(watched, tmp_path):
    sock = watched.d.socket
    results: list = [None] * 12

    def flood(i: int) -> None:
        s = _connect(sock)
        try:
            chunk = b'{"method": "announce", "params": {"routes": ["' + b"x" * 65536
            sent = 0
            try:
                while sent < 40 << 20:  # 40 MiB, no newline
                    s.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            results[i] = _one_error(_read_to_close(s))
        finally:
            s.close()

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    statuses = []
    while any(t.is_alive() for t in threads):
        statuses.append(watched.status())
        time.sleep(0.2)
    for t in threads:
        t.join()
    assert statuses
    for r in results:
        assert r is not None
        assert (r["error"] == f"request: longer than {MAX_REQUEST} octets, the most one request may be "
                "(split the routes over several calls)" or r["error"].startswith("request: the API holds ")), r

    # through the CLI: refused before it is sent, one line, exit 2
    big = tmp_path / "routes.json"
    big.write_text(json.dumps([{"prefix": "10.0.0.1/32", "as_path": "1 " * (MAX_REQUEST // 2)}]))
    r = _cli(watched.d, "announce", "--file", str(big))
    _cli_one_line_error(r, "request:", "more than the 33554432 one request may be")
    watched.check()
    assert len(watched.api_log()) <= 4, watched.api_log()  # two kinds of refusal, once per 10 s each


# --- slow and idle ---

def test_slow_and_idle_connections_are_closed_and_the_daemon_keeps_serving(watched):
    sock = watched.d.socket
    idle = [_connect(sock) for _ in range(20)]
    slow = [_connect(sock) for _ in range(20)]
    stop = threading.Event()

    def trickle() -> None:  # a byte at a time to every slow connection, never a whole line
        body = b'{"method": "status", "params": {"pad": "' + b"y" * 100_000
        for byte in body:
            if stop.wait(0.1):
                return
            for s in slow:
                try:
                    s.send(bytes([byte]))
                except OSError:
                    pass

    t = threading.Thread(target=trickle)
    t.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 3:  # served meanwhile
            assert watched.status()["established"] >= 1
            time.sleep(0.2)
        # a slow client that does finish within the timeout is served
        ok = _connect(sock)
        for byte in b'{"method": "status"}\n':
            ok.send(bytes([byte]))
            time.sleep(0.05)
        line = ok.makefile("rb").readline()
        ok.close()
        assert json.loads(line)["ok"] is True
        answers = [_read_to_close(s) for s in idle + slow]  # each closed after its 10 s
    finally:
        stop.set()
        t.join()
        for s in idle + slow:
            s.close()
    for a in answers:
        assert _one_error(a)["error"] == f"request: none complete within {IDLE_TIMEOUT:g} s; closing the connection"
    watched.check()
    assert len(watched.api_log()) <= 2, watched.api_log()  # 40 closed, logged once (per 10 s)


# --- many ---

def test_connections_beyond_the_cap_are_refused_with_one_line_and_bgp_still_connects(watched, daemon_factory):
    d = watched.d
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:  # the daemon started with the old limit; only this test process needs more
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    many = min(1100, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)  # 1,100 where the limits allow
    assert many > 2 * MAX_CONNECTIONS
    fds_before = _fds(d.proc.pid)
    held: list[socket.socket] = []
    try:
        for _ in range(many):
            held.append(_connect(d.socket))
        # a status while the cap is reached is a quick one-line refusal, not a hang
        with pytest.raises(ApiClientError) as e:
            watched.status()
        assert "connections open" in str(e.value)
        # and a BGP peer can still connect: the daemon has descriptors left
        second = RawPeer(d.status["listen_port"], source="127.0.0.2", router_id="10.0.0.3")
        second.close()

        # the first 64 are served (each answers a request), the others were refused
        served = refused = 0
        for s in held:
            s.settimeout(10)
            try:
                s.sendall(b'{"method": "status"}\n')
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = json.loads(_read_line_or_close(s))
            if answer["ok"]:
                served += 1
            else:
                assert answer["error"] == (f"api: {MAX_CONNECTIONS} connections open, the most the daemon serves; "
                                           "try again later"), answer
                refused += 1
        assert (served, refused) == (MAX_CONNECTIONS, many - MAX_CONNECTIONS)
        assert _fds(d.proc.pid) - fds_before < MAX_CONNECTIONS + 20  # not 1,100 descriptors
    finally:
        for s in held:
            s.close()
    wait(lambda: _status_or_none(watched) is not None)
    watched.check()
    assert len([line for line in watched.api_log() if "connection refused" in line]) <= 2


def _read_line_or_close(s: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def _status_or_none(w: Watch):
    try:
        return w.status()
    except ApiClientError:
        return None


# --- invalid JSON ---

BAD_LINES = [
    b"not json", b"\xff\xfe\x00", b"[1, 2]", b'{"method": 5}', b'{"method": "status", "params": [1]}',
    b"[" * 500_000, b'{"method": "status", "params": {"x": ' + b"9" * 100_000 + b"}}",
    b'{"method": "tenant_create", "params": {"name": "a\x1b[2Jb", "vni": 5}}',  # raw control characters
    b'{"method": "[/]\\u001b[2J"}', b"{" + b'"a": 1, ' * 200_000 + b"}", b"\x00" * 1000, b'"' * 1000,
]


def test_invalid_json_gets_one_line_refusals_on_a_connection_that_goes_on(watched):
    s = _connect(watched.d.socket)
    f = s.makefile("rb")
    try:
        for line in BAD_LINES:
            s.sendall(line + b"\n")
            answer = json.loads(f.readline())
            assert answer["ok"] is False and answer["bad_input"] is True, (line[:60], answer)
            assert answer["error"].isprintable() and re.match(r"^(request|params|method): ", answer["error"]), answer
        s.sendall(b'{"method": "status"}\n')
        assert json.loads(f.readline())["ok"] is True
    finally:
        f.close()
        s.close()
    watched.check()
    assert not watched.api_log()  # bad input is answered, not logged


# --- control characters and markup in every string field ---

HOSTILE = ["web2\n", "[/]", "[bold red]x[/]", "a\x1b[2Jb", "\u202etxt", "nul\x00", "tab\there", ":thumbs_up:",
           "x" * 5000]
# through the CLI (each run costs a Python start-up): one value with markup, an escape
# sequence and a trailing newline in every field, and a bare trailing newline in the names
CLI_HOSTILE = "[/]\x1b[2J[bold]web2\n"

# method -> the other fields, all valid; each string field in turn gets each hostile value
REQUESTS = {
    "tenant_create": {"name": "t1", "vni": 101, "families": "dual-stack", "peers": ["blue"]},
    "tenant_peers": {"name": "blue", "peers": ["blue"]},
    "tenant_delete": {"name": "blue"},
    "tenant_show": {"name": "blue"},
    "endpoint_add": {"name": "vm1", "tenant": "blue", "interface": "lo", "ipv4": "192.168.1.5", "ipv6": "fd00::5",
                     "rate_limit": "100mbit"},
    "endpoint_remove": {"name": "vm0"},
    "endpoint_show": {"name": "vm0"},
    "endpoint_list": {"tenant": "blue"},
}

# the same through the CLI: the argv, with {} where the hostile value goes
CLI_REQUESTS = [
    ("tenant", "create", "{}", "--vni", "101"),
    ("tenant", "create", "t1", "--vni", "101", "--families", "{}"),
    ("tenant", "create", "t1", "--vni", "101", "--peer", "{}"),
    ("tenant", "peers", "{}", "--peer", "blue"),
    ("tenant", "peers", "blue", "--peer", "{}"),
    ("tenant", "delete", "{}"),
    ("tenant", "show", "{}"),
    ("endpoint", "add", "{}", "--tenant", "blue", "--interface", "lo", "--ipv4", "192.168.1.5"),
    ("endpoint", "add", "vm1", "--tenant", "{}", "--interface", "lo", "--ipv4", "192.168.1.5"),
    ("endpoint", "add", "vm1", "--tenant", "blue", "--interface", "{}", "--ipv4", "192.168.1.5"),
    ("endpoint", "add", "vm1", "--tenant", "blue", "--interface", "lo", "--ipv4", "{}"),
    ("endpoint", "add", "vm1", "--tenant", "blue", "--interface", "lo", "--ipv6", "{}"),
    ("endpoint", "add", "vm1", "--tenant", "blue", "--interface", "lo", "--ipv4", "192.168.1.5",
     "--rate-limit", "{}"),
    ("endpoint", "remove", "{}"),
    ("endpoint", "show", "{}"),
    ("endpoint", "list", "--tenant", "{}"),
]


def _cli(d, *args):
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "l3fab.cli.main", *args, "--socket", d.socket],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def _cli_one_line_error(r, *needles) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and lines[0].isprintable(), lines[0]
    assert not any(ch in r.stderr + r.stdout for ch in "\x1b\x00\r\u202e")
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _names_the_field(error: str, field: str) -> bool:
    where = error.split(": ", 1)[0]
    return where.endswith(field.replace("_", "-")) or where.endswith(field) or where in ("tenant", "endpoint")


def test_control_characters_and_markup_in_every_string_field_are_refused(watched):
    d = watched.d
    call(d.socket, "tenant_create", {"name": "blue", "vni": 100})
    saved = (d.api("tenant_list"), d.api("endpoint_list"))

    # the raw socket (through the client library: any JSON string reaches the daemon)
    for method, params in REQUESTS.items():
        for field, value in params.items():
            if not isinstance(value, str) and field != "peers":
                continue
            for hostile in HOSTILE:
                request = {**params, field: [hostile] if isinstance(value, list) else hostile}
                with pytest.raises(ApiClientError) as e:
                    call(d.socket, method, request)
                error = str(e.value)
                assert e.value.bad_input, (method, field, hostile, error)
                assert error.isprintable() and len(error) < 5000, (method, field, error[:300])
                assert _names_the_field(error, field), (method, field, error[:300])

    # the CLI: one line on stderr, exit 2, nothing raw on the terminal; four at a time
    runs = [tuple(a.replace("{}", CLI_HOSTILE) for a in argv) for argv in CLI_REQUESTS]
    runs += [("tenant", "create", "web2\n", "--vni", "102"),
             ("endpoint", "add", "web2\n", "--tenant", "blue", "--interface", "lo", "--ipv4", "192.168.1.6")]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda argv: (argv, _cli(d, *argv)), runs))
    for argv, r in results:
        try:
            _cli_one_line_error(r)
        except AssertionError as e:
            raise AssertionError(f"{argv!r}: {e}") from None

    assert (d.api("tenant_list"), d.api("endpoint_list")) == saved  # nothing was saved
    r = _cli(d, "tenant", "list")
    assert r.returncode == 0 and "blue" in r.stdout
    watched.check()
