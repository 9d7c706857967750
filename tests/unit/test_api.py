"""The local API server: dispatch table, typed errors, streamed answers, and a
Speaker built in-process (no subprocess) feeding a Loc-RIB consumer."""
from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from l3fab.speaker.api import Api, ApiClientError, Stream, call, chunked, serve
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
