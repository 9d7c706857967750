"""The local API server: dispatch table, typed errors, streamed answers, and a
Speaker built in-process (no subprocess) feeding a Loc-RIB consumer."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import threading
import time

import pytest

from l3fab.speaker import api as api_module
from l3fab.speaker.api import MAX_REQUEST, Api, ApiClientError, Limits, Stream, call, chunked, serve
from l3fab.speaker.config import parse_config
from l3fab.speaker.errors import ApiError, ConfigError
from l3fab.speaker.handlers import bgp_handlers
from l3fab.speaker.origination import parse_route
from l3fab.speaker.server import Speaker
from l3fab.speaker.wire.constants import IPV4_UNICAST, IPV6_UNICAST


def _serve_in_thread(api: Api, path: str, body):
    """Run ``serve`` on a loop in this thread while ``body()`` (blocking client calls)
    runs in another thread; return what body returned."""
    result: dict = {}

    async def main() -> None:
        server = await serve(path, api)
        try:
            t = threading.Thread(target=lambda: result.setdefault("value", _catch(body)))
            t.start()
            while t.is_alive():
                await asyncio.sleep(0.01)
        finally:
            server.close()

    asyncio.run(main())
    ok, value = result["value"]
    if not ok:
        raise value
    return value


def _catch(fn):
    try:
        return True, fn()
    except BaseException as e:  # handed back to the test thread
        return False, e


def test_unknown_method_is_bad_input(tmp_path):
    sock = str(tmp_path / "api.sock")

    def body():
        try:
            call(sock, "no_such_method")
        except ApiClientError as e:
            return e
        return None

    err = _serve_in_thread(Api(), sock, body)
    assert isinstance(err, ApiClientError)
    assert err.bad_input and "method: 'no_such_method' is not an API method" in str(err)


def test_user_errors_are_bad_input_and_bugs_are_internal_errors(tmp_path, caplog):
    api = Api()

    def refuse(params):
        raise ConfigError("tenant", "x\n", "is not a tenant name")

    def bug(params):
        return {}["missing"]

    def value_error(params):
        raise ValueError("int() of something")  # a bug, not the client's fault

    api.update({"refuse": refuse, "bug": bug, "value_error": value_error})
    sock = str(tmp_path / "api.sock")

    def body():
        out = {}
        for m in ("refuse", "bug", "value_error"):
            try:
                call(sock, m)
            except ApiClientError as e:
                out[m] = e
        return out

    with caplog.at_level(logging.ERROR, logger="l3fab.api"):
        errs = _serve_in_thread(api, sock, body)
    assert errs["refuse"].bad_input and str(errs["refuse"]) == "tenant: 'x\\n' is not a tenant name"
    assert not errs["bug"].bad_input and str(errs["bug"]).startswith("internal error: KeyError")
    assert not errs["value_error"].bad_input and "internal error: ValueError" in str(errs["value_error"])
    logged = [r for r in caplog.records if r.name == "l3fab.api"]
    assert len(logged) == 2 and all(r.exc_info for r in logged)  # the traceback of each bug is in the log


def test_a_method_cannot_be_registered_twice():
    api = Api()
    api.register("x", lambda p: 1)
    with pytest.raises(ValueError):
        api.register("x", lambda p: 2)


def test_streamed_answer_arrives_whole_and_the_loop_runs_between_chunks(tmp_path):
    ticks = []

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    def rows(params):
        asyncio.get_running_loop().create_task(ticker())
        return Stream(chunked(({"n": i, "text": "a\nb"} for i in range(20_000)), size=500))

    api = Api()
    api.register("rows", rows)
    sock = str(tmp_path / "api.sock")
    got = _serve_in_thread(api, sock, lambda: call(sock, "rows"))
    assert [r["n"] for r in got] == list(range(20_000)) and got[0]["text"] == "a\nb"
    assert len(ticks) >= 20_000 // 500 - 1  # another task ran between (nearly) every two chunks


def test_empty_stream_is_an_empty_list(tmp_path):
    api = Api()
    api.register("none", lambda p: Stream(chunked(iter(()))))
    sock = str(tmp_path / "api.sock")
    assert _serve_in_thread(api, sock, lambda: call(sock, "none")) == []


class RecordingConsumer:
    name = "recorder"
    families = frozenset({IPV4_UNICAST, IPV6_UNICAST})

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, bool]] = []
        self.converged = 0

    def rib_changed(self, family, dests):
        self.changes += [(family.name, str(d.key), d.best is not None) for d in dests]

    def rib_converged(self, rib):
        self.converged += 1


def test_speaker_in_process_feeds_consumers_and_serves_the_rib(tmp_path):
    """A Speaker without sockets to peers: originated routes reach a registered
    consumer after one decision run, and `rib` / `announce` / `withdraw` work through
    the dispatch table (the rib answer is streamed)."""
    cfg = parse_config({"router-id": "192.0.2.1", "asn": 65001, "listen": {"addresses": ["127.0.0.1"], "port": 0}})
    consumer = RecordingConsumer()

    async def main():
        speaker = Speaker(cfg)
        speaker.add_consumer(consumer)
        await speaker.start()
        api = Api()
        api.update(bgp_handlers(speaker))
        try:
            res = await api.dispatch("announce", {"routes": [{"prefix": f"10.0.{i // 256}.{i % 256}/32"}
                                                             for i in range(12_000)]})
            assert res == {"announced": 12_000}
            speaker.process()
            stream = await api.dispatch("rib", {"family": "ipv4"})
            rows = [r async for chunk in stream.chunks for r in chunk]
            gone = await api.dispatch("withdraw", {"routes": [{"prefix": "10.0.0.1/32"}, {"prefix": "10.9.9.9/32"}]})
            speaker.process()
            with pytest.raises(ApiError):
                await api.dispatch("rib", {"family": "banana"})
            return rows, gone
        finally:
            await speaker.stop()

    rows, gone = asyncio.run(main())
    assert len(rows) == 12_000 and rows[0]["source"] == "local" and rows[0]["best"] is True
    assert gone == {"withdrawn": 1}
    assert ("ipv4-unicast", "10.0.0.1/32", True) in consumer.changes
    assert ("ipv4-unicast", "10.0.0.1/32", False) in consumer.changes
    assert sum(1 for c in consumer.changes if c[2]) == 12_000


def test_typed_local_route_equals_the_parsed_one():
    from l3fab.speaker.origination import unicast_route, vpn_route

    assert unicast_route("2001:db8::/64") == parse_route({"prefix": "2001:db8::/64"})
    assert vpn_route("10.0.0.1/32", "192.0.2.1:100", ("target:65000:100",), 100, "2001:db8::100") == parse_route(
        {"prefix": "10.0.0.1/32", "rd": "192.0.2.1:100", "route_targets": ["target:65000:100"], "labels": [100],
         "next_hop": "2001:db8::100"})


@pytest.mark.parametrize("table", [2**32, 2**64, -1, 0, True, "254"])
def test_show_fib_refuses_a_table_id_the_kernel_cannot_hold(table):
    from l3fab.cli.app.daemon import Daemon, parse_app_config

    cfg = parse_app_config({"router-id": "192.0.2.1", "asn": 65001, "fib": {"enabled": True}})
    daemon = Daemon(cfg, api_socket="/nonexistent/never-bound.sock")
    try:
        with pytest.raises(ApiError) as e:
            asyncio.run(daemon.api.dispatch("fib", {"table": table}))
        assert str(e.value).startswith("table: ")
    finally:
        daemon.worker.close()


# --- the API as a stranger sees it: bounded connections, requests, time and logs (issue 10, finding 6) ---

def _serve_with(api: Api, path: str, body, limits: Limits):
    """``_serve_in_thread`` with explicit :class:`Limits`."""
    result: dict = {}

    async def main() -> None:
        server = await serve(path, api, limits)
        try:
            t = threading.Thread(target=lambda: result.setdefault("value", _catch(body)))
            t.start()
            while t.is_alive():
                await asyncio.sleep(0.01)
        finally:
            server.close()

    asyncio.run(main())
    ok, value = result["value"]
    if not ok:
        raise value
    return value


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)  # generous: only a hang fails, never a slow machine
    s.connect(path)
    return s


def _answer(s: socket.socket) -> dict | None:
    """The next answer line on ``s`` (None if the daemon closed without one); read an
    octet at a time, so that nothing of the next answer is taken (the answers are short)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            return None if not buf else json.loads(buf)
        buf += chunk
    return json.loads(buf)


def _closed(s: socket.socket) -> bool:
    """The daemon closed ``s`` (what it sent before is discarded)."""
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True


def _echo_api() -> Api:
    api = Api()
    api.update({"status": lambda p: {"up": True}, "count": lambda p: {"routes": len(p.get("routes", ()))}})
    return api


def test_connections_beyond_the_cap_get_one_error_line_and_one_log_line(tmp_path, caplog):
    sock = str(tmp_path / "api.sock")
    limits = Limits(max_connections=4, log_interval=3600)

    def body():
        held = [_connect(sock) for _ in range(4)]
        for s in held:  # each of them is served
            s.sendall(b'{"method": "status"}\n')
            assert _answer(s)["result"] == {"up": True}
        refused = []
        for _ in range(30):
            s = _connect(sock)
            refused.append(_answer(s))
            assert _closed(s)
            s.close()
        held.pop().close()
        deadline = time.monotonic() + 20
        while True:  # the freed slot serves again (once the daemon noticed the close)
            try:
                return refused, call(sock, "status", timeout=5)
            except ApiClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    with caplog.at_level(logging.INFO, logger="l3fab.api"):
        refused, status = _serve_with(_echo_api(), sock, body, limits)
    assert status == {"up": True}
    assert all(r is not None and not r["ok"] and not r["bad_input"] for r in refused)
    assert refused[0]["error"] == "api: 4 connections open, the most the daemon serves; try again later"
    logged = [r.getMessage() for r in caplog.records if r.name == "l3fab.api"]
    assert len(logged) == 1 and "connection refused" in logged[0], logged  # 30 refusals, one line


def test_a_connection_without_a_complete_request_is_closed_after_the_idle_timeout(tmp_path, caplog):
    sock = str(tmp_path / "api.sock")
    limits = Limits(idle_timeout=0.5, log_interval=3600)
    request = b'{"method": "status"}\n'

    def body():
        idle = _connect(sock)  # sends nothing
        slow = _connect(sock)  # a byte at a time, never a whole line
        stop = threading.Event()

        def trickle():
            for byte in b'{"method": "status", "params": {"x": "' + b"y" * 10_000:
                if stop.wait(0.02):
                    return
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    return

        t = threading.Thread(target=trickle)
        t.start()
        try:
            idle_answer, slow_answer = _answer(idle), _answer(slow)
        finally:
            stop.set()
            t.join()
        # a slow client that does finish in time is answered
        ok = _connect(sock)
        for byte in request:
            ok.send(bytes([byte]))
            time.sleep(0.01)
        return idle_answer, slow_answer, _answer(ok), _closed(idle), _closed(slow)

    with caplog.at_level(logging.INFO, logger="l3fab.api"):
        idle_answer, slow_answer, ok_answer, idle_closed, slow_closed = _serve_with(_echo_api(), sock, body, limits)
    for a in (idle_answer, slow_answer):
        assert a == {"ok": False, "bad_input": True,
                     "error": "request: none complete within 0.5 s; closing the connection"}
    assert idle_closed and slow_closed
    assert ok_answer == {"ok": True, "result": {"up": True}}
    assert len([r for r in caplog.records if r.name == "l3fab.api"]) == 1  # two timeouts, one line


def test_an_oversized_request_is_refused_without_being_buffered(tmp_path):
    sock = str(tmp_path / "api.sock")
    limits = Limits(max_request=1 << 20, max_buffered=4 << 20)

    def body():
        s = _connect(sock)
        sent = 0
        try:
            while sent < 64 << 20:  # far more than the limit: the daemon stops reading long before
                s.sendall(b"x" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        big = _answer(s)
        s.close()
        # a request just under the limit is served, and so is the next one on its connection
        s = _connect(sock)
        routes = [{"prefix": "10.0.0.0/32"}] * 35_000
        line = json.dumps({"method": "count", "params": {"routes": routes}}).encode()
        assert len(line) < 1 << 20
        s.sendall(line + b"\n" + b'{"method": "status"}\n')
        return sent, big, _answer(s), _answer(s)

    sent, big, fits, after = _serve_with(_echo_api(), sock, body, limits)
    assert sent < 64 << 20  # refused while it was still sending
    assert big == {"ok": False, "bad_input": True, "error": "request: longer than 1048576 octets, the most one "
                   "request may be (split the routes over several calls)"}
    assert fits["result"] == {"routes": 35_000} and after["result"] == {"up": True}


def test_the_default_request_limit_holds_a_100000_route_announce(tmp_path):
    """docs: ``announce`` takes 100,000 routes in one call; VPN routes as the benchmarks send them."""
    routes = [{"prefix": f"10.{64 + i // 65536}.{i // 256 % 256}.{i % 256}/32", "rd": "65100:1",
               "route_targets": ["65000:1"], "labels": [100], "next_hop": "2001:db8:99::1",
               "communities": [f"65100:{i % 65536}"]} for i in range(100_000)]
    sock = str(tmp_path / "api.sock")
    got = _serve_with(_echo_api(), sock, lambda: call(sock, "count", {"routes": routes}), Limits())
    assert got == {"routes": 100_000}
    assert MAX_REQUEST == 32 * 1024 * 1024


def test_the_client_refuses_a_request_beyond_the_limit_without_sending_it(tmp_path):
    with pytest.raises(ApiClientError) as e:
        call(str(tmp_path / "nobody.sock"), "count", {"routes": ["x" * MAX_REQUEST]})
    assert e.value.bad_input and "more than the 33554432 one request may be" in str(e.value)


def test_all_connections_together_buffer_at_most_max_buffered(tmp_path):
    sock = str(tmp_path / "api.sock")
    limits = Limits(max_request=1 << 20, max_buffered=(1 << 20) + (1 << 19), free_per_connection=1024)

    def body():
        first, second = _connect(sock), _connect(sock)
        partial = b'{"method": "count", "params": {"routes": ["' + b"r" * 900_000
        first.sendall(partial)
        time.sleep(0.3)  # the daemon holds the first one's 900 kB (not a timing assert: only the order matters)
        try:
            second.sendall(partial)
        except (BrokenPipeError, ConnectionResetError):
            pass
        busy = _answer(second)
        first.sendall(b'"]}}\n')
        return busy, _answer(first), call(sock, "status", timeout=5)

    busy, first, status = _serve_with(_echo_api(), sock, body, limits)
    assert busy is not None and not busy["ok"] and not busy["bad_input"]
    assert busy["error"].startswith("request: the API holds 1572864 octets of requests already")
    assert first["result"] == {"routes": 1} and status == {"up": True}


BAD_LINES = [
    (b"not json", "request: not JSON"),
    (b"\xff\xfe\x00garbage", "request: not JSON"),
    (b"[1, 2]", 'request: not {"method": ..., "params": {...}}'),
    (b'{"method": 5}', 'request: not {"method": ..., "params": {...}}'),
    (b'{"method": "status", "params": [1]}', "params: not an object"),
    (b"[" * 200_000 + b"]" * 200_000, "request: JSON nested too deeply"),
    (b'{"method": "status", "params": {"x": ' + b"9" * 5000 + b"}}", "request: not JSON"),
    (b'{"method": "no\\u001b[2J\\nsuch"}', "method: 'no\\x1b[2J\\nsuch' is not an API method"),
]


def test_invalid_requests_are_one_line_refusals_and_the_connection_goes_on(tmp_path, caplog):
    sock = str(tmp_path / "api.sock")

    def body():
        s = _connect(sock)
        out = []
        for line, _ in BAD_LINES:
            s.sendall(line + b"\n")
            out.append(_answer(s))
        s.sendall(b'{"method": "status"}\n')
        out.append(_answer(s))
        return out

    with caplog.at_level(logging.INFO, logger="l3fab.api"):
        answers = _serve_with(_echo_api(), sock, body, Limits())
    for (line, expected), a in zip(BAD_LINES, answers):
        assert a["ok"] is False and a["bad_input"] is True and a["error"].startswith(expected), (line[:40], a)
    assert answers[-1] == {"ok": True, "result": {"up": True}}
    assert not [r for r in caplog.records if r.name == "l3fab.api"]  # bad input is answered, not logged


def test_an_answer_the_client_does_not_read_frees_its_connection(tmp_path):
    sock = str(tmp_path / "api.sock")
    limits = Limits(max_connections=1, write_timeout=0.5)
    api = _echo_api()
    closed = []

    async def big_chunks():
        try:
            for _ in range(2000):  # 200 MB if anybody read it
                yield ["z" * 100_000]
        finally:
            closed.append(True)

    api.register("rows", lambda p: Stream(big_chunks()))

    def body():
        s = _connect(sock)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b'{"method": "rows"}\n')  # and never read
        deadline = time.monotonic() + 20
        while not closed:  # the daemon gives up on it: the stream is closed, its snapshot released
            assert time.monotonic() < deadline, "the stalled answer was never dropped"
            time.sleep(0.05)
        while True:
            try:
                status = call(sock, "status", timeout=5)
                break
            except ApiClientError:  # refused until the stalled one's slot is free
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        s.close()
        return status

    assert _serve_with(api, sock, body, limits) == {"up": True}


def test_a_bug_triggered_again_and_again_logs_one_traceback_per_interval(tmp_path, caplog):
    api = Api()
    api.register("bug", lambda p: {}["missing"])
    sock = str(tmp_path / "api.sock")

    def body():
        errors = []
        for _ in range(50):
            try:
                call(sock, "bug")
            except ApiClientError as e:
                errors.append(e)
        return errors

    with caplog.at_level(logging.ERROR, logger="l3fab.api"):
        errors = _serve_with(api, sock, body, Limits(log_interval=3600))
    assert len(errors) == 50 and all(str(e).startswith("internal error: KeyError") for e in errors)
    logged = [r for r in caplog.records if r.name == "l3fab.api"]
    assert len(logged) == 1 and logged[0].exc_info


# --- the socket file ---

def test_the_socket_has_mode_0660_before_it_is_reachable(tmp_path, monkeypatch):
    """No window in which the socket sits at its path with the umask's mode: every chmod
    happens before anything exists at ``api-socket`` (and the result is 0660)."""
    path = tmp_path / "api.sock"
    seen = []
    real_chmod = os.chmod

    def spy(target, mode, *args, **kwargs):
        seen.append(os.path.lexists(path))
        return real_chmod(target, mode, *args, **kwargs)

    monkeypatch.setattr(api_module.os, "chmod", spy)
    old_umask = os.umask(0)  # the worst case: a socket bound with mode 0777
    try:
        mode = _serve_with(Api(), str(path), lambda: os.lstat(path).st_mode, Limits())
    finally:
        os.umask(old_umask)
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert seen == [False]
    assert [p.name for p in tmp_path.iterdir()] == ["api.sock"]  # the private directory is gone


@pytest.mark.parametrize("kind", ["file", "directory", "symlink", "fifo"])
def test_an_api_socket_path_that_is_not_a_socket_is_refused_and_kept(tmp_path, kind):
    path = tmp_path / "api.sock"
    if kind == "file":
        path.write_text("precious\n")
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        (tmp_path / "target").write_text("precious\n")
        path.symlink_to(tmp_path / "target")
    else:
        os.mkfifo(path)
    before = os.lstat(path)

    async def main():
        await serve(str(path), Api())

    with pytest.raises(OSError) as e:
        asyncio.run(main())
    message = str(e.value)
    assert message.startswith(f"api-socket: {str(path)!r} exists and is ") and "\n" not in message
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    if kind == "file":
        assert path.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["api.sock"] + (["target"] if kind == "symlink"
                                                                                  else []))


def test_a_live_socket_is_refused_and_a_stale_one_replaced(tmp_path):
    path = tmp_path / "api.sock"

    async def main():
        server = await serve(str(path), _echo_api())
        try:
            with pytest.raises(OSError) as e:
                await serve(str(path), Api())
            assert str(e.value) == f"api-socket: {str(path)!r} is in use by a running l3fab"
        finally:
            server.close()
            await server.wait_closed()
        # the first one is gone, its file stays: stale, replaced
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        server = await serve(str(path), _echo_api())
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_a_socket_path_too_long_for_a_unix_socket_is_one_line(tmp_path):
    path = tmp_path / ("x" * 120)

    async def main():
        await serve(str(path), Api())

    with pytest.raises(OSError) as e:
        asyncio.run(main())
    assert "is longer than 107 octets" in str(e.value)


def test_stopping_with_connections_open_logs_no_traceback(tmp_path, caplog):
    """At shutdown every connection task is cancelled; none may end in a logged traceback
    (64 open connections would otherwise be 64 tracebacks in the daemon's log)."""
    sock = str(tmp_path / "api.sock")

    def body():
        held = [_connect(sock) for _ in range(5)]
        held[0].sendall(b'{"method": "sta')  # one with half a request
        held[1].sendall(b'{"method": "status"}\n')
        assert _answer(held[1])["ok"]
        return held

    with caplog.at_level(logging.DEBUG):
        held = _serve_with(_echo_api(), sock, body, Limits())
    for s in held:
        s.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_a_live_socket_with_a_full_backlog_is_refused_not_replaced(tmp_path):
    """A listener that does not accept (a hung daemon) answers a connect with EAGAIN, not
    ECONNREFUSED: it is in use, and its socket stays."""
    path = tmp_path / "api.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    queued = []
    try:
        while True:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(str(path))
            except BlockingIOError:
                c.close()
                break
            queued.append(c)
            assert len(queued) < 100
        inode = os.lstat(path).st_ino

        async def main():
            await asyncio.wait_for(serve(str(path), Api()), 30)

        with pytest.raises(OSError) as e:
            asyncio.run(main())
        assert str(e.value) == f"api-socket: {str(path)!r} is in use by a running l3fab"
        assert os.lstat(path).st_ino == inode
    finally:
        for c in queued:
            c.close()
        listener.close()
