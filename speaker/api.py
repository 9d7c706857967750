"""The local API: newline-delimited JSON over a unix socket (mode 0660).

Request:  ``{"method": "neighbors", "params": {...}}``
Response: ``{"ok": true, "result": ...}`` or ``{"ok": false, "bad_input": bool, "error": "field: value ..."}``

Methods are dispatched from a table (:class:`Api`); each layer registers its own
handlers (the speaker's in :mod:`speaker.handlers`).  A handler returns a value, an
awaitable, or a :class:`Stream` for large answers: a stream is encoded and written
chunk by chunk, letting the event loop run between chunks, so a million-route
``show rib`` never holds keepalives back.  A :class:`~speaker.errors.UserError` is
refused input (``bad_input``); any other exception is a bug in l3fab: it is logged
with its traceback and answered as an internal error.

Anyone who can open the socket is a stranger to the daemon, so what a client can make
it hold is bounded (:class:`Limits`): connections, octets of one request line and of all
of them together, the time to send a request and the time to take an answer.  Past a
bound the client gets one error line and the connection is closed; the refusals are
logged at most once per interval each.  The socket is created with mode 0660 (never
chmod-ed after it is reachable), and a path that holds anything but a stale socket is
refused, never removed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .errors import ApiError, UserError
from .text import escape_text

log = logging.getLogger("l3fab.api")

Params = dict[str, Any]


@dataclass(frozen=True)
class Stream:
    """A large list answer, produced in chunks (each chunk a list of JSON-able items)."""

    chunks: AsyncIterator[list[Any]]


Result = Union[Any, Stream]
Handler = Callable[[Params], Union[Result, Awaitable[Result]]]


class Api:
    """The dispatch table: method name -> handler."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def register(self, method: str, handler: Handler) -> None:
        if method in self.handlers:
            raise ValueError(f"API method {method!r} registered twice")
        self.handlers[method] = handler

    def update(self, handlers: dict[str, Handler]) -> None:
        for method, handler in handlers.items():
            self.register(method, handler)

    async def dispatch(self, method: str, params: Params) -> Result:
        handler = self.handlers.get(method)
        if handler is None:
            raise ApiError(f"method: {method!r} is not an API method")
        result = handler(params)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        return result


class ApiClientError(Exception):
    """The daemon could not be reached or refused the request (message is one line).

    ``bad_input`` is true when the daemon refused what was asked (a field and value
    at fault), false when it could not be reached or failed itself.
    """

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, default=str).encode()


async def _write_stream(writer: asyncio.StreamWriter, stream: Stream,
                        drain: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
    """``{"ok": true, "result": [`` item, item, ... ``]}`` written as chunks arrive."""
    writer.write(b'{"ok": true, "result": [')
    first = True
    async for chunk in stream.chunks:
        if not chunk:
            continue
        body = b", ".join(_encode(item) for item in chunk)
        writer.write(body if first else b", " + body)
        first = False
        await drain(writer)
    writer.write(b"]}\n")


def _parse_request(line: bytes) -> tuple[str, Params]:
    try:
        req = json.loads(line)
    except RecursionError:  # ``[[[[...`` a hundred thousand deep
        raise ApiError("request: JSON nested too deeply") from None
    except ValueError as e:  # not JSON, not UTF-8, a 5,000-digit number ...
        raise ApiError(f"request: not JSON ({escape_text(str(e), 200)})") from None
    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
        raise ApiError("request: not {\"method\": ..., \"params\": {...}}")
    params = req.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError("params: not an object")
    return req["method"], params


@dataclass(frozen=True)
class Limits:
    """What one API server lets its clients hold.

    ``max_connections``: connections served at once; one more is answered with one
    error line and closed.  A connection has at most one request in flight (the next
    line is read after the answer is written), so this also bounds the requests in
    flight.  ``max_request``: octets in one request line; 32 MiB holds a 100,000-route
    ``announce`` with room to spare (100,000 VPNv4 routes with an RD, a route target,
    a label, a next hop and a community are 15.7 MB of JSON).  ``max_buffered``: octets
    of request lines held by all connections together, from the first octet read until
    the answer is written (a connection's first ``free_per_connection`` octets do not
    count, so a small request always fits).  ``idle_timeout``: seconds a connection has
    to send a complete request, from connecting or from the previous answer.
    ``write_timeout``: seconds an answer may stall because the client does not read it.
    ``log_interval``: each kind of refusal is logged at most once per this many seconds,
    with the number of the others.
    """

    max_connections: int = 64
    max_request: int = 32 * 1024 * 1024
    max_buffered: int = 48 * 1024 * 1024
    free_per_connection: int = 64 * 1024
    idle_timeout: float = 10.0
    write_timeout: float = 30.0
    log_interval: float = 10.0


MAX_REQUEST = Limits.max_request
_READ_CHUNK = 64 * 1024  # what one read takes from the socket (the StreamReader holds at most twice this)
_MAX_ERROR = 4096  # characters of an error message in an answer


class _RateLimitedLog:
    """At most one line per kind of event and interval; the rest are counted and
    their number is given with the next line of that kind."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, kind: str, level: int, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        more = self._suppressed.pop(kind, 0)
        if more:
            msg += f" (and {more} more like it in the last {self.interval:g} s)"
        log.log(level, msg, *args, exc_info=exc_info)


class _Refused(Exception):
    """A connection that is answered with one error line and closed."""

    def __init__(self, kind: str, message: str, bad_input: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.bad_input = bad_input


class _Budget:
    """Octets of request lines held by all connections together."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.total:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


class _LineReader:
    """Newline-delimited requests from one connection, within the :class:`Limits`.

    Octets are read in chunks into one buffer; a line is returned when its newline has
    arrived.  What follows it stays buffered for the next request (and keeps its
    octets charged) until the answer is written and :meth:`done` is called.
    """

    def __init__(self, reader: asyncio.StreamReader, limits: Limits, budget: _Budget) -> None:
        self.reader = reader
        self.limits = limits
        self.budget = budget
        self.buf = bytearray()
        self.scanned = 0  # no newline in buf[:scanned]
        self.charged = 0  # octets of buf counted against the budget
        self.eof = False

    def _charge(self) -> None:
        need = max(0, len(self.buf) - self.limits.free_per_connection) - self.charged
        if need > 0:
            if not self.budget.take(need):
                raise _Refused("busy", f"request: the API holds {self.budget.total} octets of requests already "
                                       "(the most it buffers); try again", bad_input=False)
            self.charged += need

    def release(self) -> None:
        self.budget.give(self.charged)
        self.charged = 0

    def done(self) -> None:
        """The answer to the last line is written: recharge for what is still buffered."""
        self.release()
        self._charge()

    async def _line(self) -> bytes | None:
        max_request = self.limits.max_request
        while True:
            nl = self.buf.find(b"\n", self.scanned)
            if nl >= 0:
                if nl > max_request:
                    break
                with memoryview(self.buf) as view:
                    line = bytes(view[:nl])  # one copy, not two
                del self.buf[:nl + 1]
                self.scanned = 0
                return line
            self.scanned = len(self.buf)
            if len(self.buf) > max_request:
                break
            if self.eof:
                if not self.buf:
                    return None
                line = bytes(self.buf)  # a last request without its newline
                self.buf.clear()
                self.scanned = 0
                return line
            data = await self.reader.read(_READ_CHUNK)
            if not data:
                self.eof = True
                continue
            self.buf += data
            self._charge()
        raise _Refused("too_long", f"request: longer than {max_request} octets, the most one request may be "
                                   "(split the routes over several calls)")

    async def next_line(self) -> bytes | None:
        """The next request line; None at the end of the connection."""
        try:
            async with asyncio.timeout(self.limits.idle_timeout):
                return await self._line()
        except TimeoutError:
            raise _Refused("idle", f"request: none complete within {self.limits.idle_timeout:g} s; "
                                   "closing the connection") from None


def _error_line(message: str, bad_input: bool) -> bytes:
    if len(message) > _MAX_ERROR:
        message = f"{message[:_MAX_ERROR]}...({len(message) - _MAX_ERROR} more)"
    return _encode({"ok": False, "bad_input": bad_input, "error": message}) + b"\n"


def _check_socket_path(p: Path) -> os.stat_result | None:
    """None if nothing is at ``p``; the stat of a stale socket that may be replaced.
    Anything else (a live socket, a regular file, a directory ...) is refused."""
    try:
        st = p.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a regular file" if stat.S_ISREG(st.st_mode) else \
            "a directory" if stat.S_ISDIR(st.st_mode) else \
            "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a socket"
        raise OSError(f"api-socket: {str(p)!r} exists and is {kind}; l3fab does not replace it "
                      "(remove it or choose another api-socket)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(5)  # never wait on a hung listener: a full backlog is EAGAIN at once
    try:
        probe.connect(str(p))
    except ConnectionRefusedError:
        return st  # nobody listens: a stale socket from a previous run
    except FileNotFoundError:
        return None  # gone meanwhile
    except BlockingIOError:
        pass  # somebody listens, with a full backlog
    except OSError as e:
        raise OSError(f"api-socket: {str(p)!r}: cannot tell whether it is in use ({e.strerror or e})") from None
    finally:
        probe.close()
    raise OSError(f"api-socket: {str(p)!r} is in use by a running l3fab")


_SUN_PATH_MAX = 107  # octets of a unix socket's path (sun_path, without its NUL)


def _bind(p: Path) -> socket.socket:
    """A listening unix socket at ``p`` that has mode 0660 from the moment it exists there.

    It is bound in a fresh private (0700) directory next to ``p``, where nobody but
    its owner can reach it, given its mode, and then linked to ``p``: ``link(2)``
    fails rather than replace anything that appeared at ``p`` in the meantime.  A stale
    socket of a previous run is removed first (only if it is still the same inode).
    """
    if len(os.fsencode(p)) > _SUN_PATH_MAX:
        raise OSError(f"api-socket: {str(p)!r} is longer than {_SUN_PATH_MAX} octets, the most a unix socket's "
                      "path may be")
    stale = _check_socket_path(p)
    try:
        private = tempfile.mkdtemp(prefix=".l3fab-api.", dir=p.parent)
    except OSError as e:
        raise OSError(f"api-socket: {str(p)!r}: cannot create a directory next to it: {e.strerror}") from None
    dir_fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # bound through the directory's descriptor: the path stays short whatever ``p`` is
        sock.bind(f"/proc/self/fd/{dir_fd}/s")
        os.chmod("s", 0o660, dir_fd=dir_fd)
        sock.listen(100)
        if stale is not None:
            again = _check_socket_path(p)
            if again is not None and (again.st_dev, again.st_ino) == (stale.st_dev, stale.st_ino):
                p.unlink()
        try:
            os.link("s", p, src_dir_fd=dir_fd)
        except FileExistsError:
            raise OSError(f"api-socket: {str(p)!r} appeared while l3fab was starting "
                          "(is another l3fab starting?)") from None
        except OSError as e:
            raise OSError(f"api-socket: {str(p)!r}: {e.strerror}") from None
    except BaseException:
        sock.close()
        raise
    finally:
        try:
            os.unlink("s", dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        os.close(dir_fd)
        os.rmdir(private)
    return sock


async def serve(path: str, api: Api, limits: Limits = Limits()) -> asyncio.base_events.Server:
    """Serve ``api`` on a unix socket at ``path`` (created with mode 0660), within ``limits``."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"api-socket: {path!r}: cannot create its directory: {e.strerror}") from None
    sock = _bind(p)
    budget = _Budget(limits.max_buffered)
    open_connections = 0
    say = _RateLimitedLog(limits.log_interval)

    async def drain(writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(writer.drain(), limits.write_timeout)
        except TimeoutError:
            raise _Refused("stalled", f"answer not read for {limits.write_timeout:g} s") from None

    async def answer(writer: asyncio.StreamWriter, line: bytes) -> None:
        method = "?"
        try:
            method, params = _parse_request(line)
            result = await api.dispatch(method, params)
        except UserError as e:
            writer.write(_error_line(str(e), True))
        except Exception as e:  # a bug in l3fab: logged, answered, the daemon stays up
            # one traceback per method and interval (the method is a registered one: only
            # those reach a handler), however often a client triggers the bug
            say(f"internal:{method}", logging.ERROR, "API request %s failed", escape_text(method, 100), exc_info=True)
            writer.write(_error_line(f"internal error: {type(e).__name__}: {e}", False))
        else:
            if isinstance(result, Stream):
                try:
                    await _write_stream(writer, result, drain)
                finally:
                    aclose = getattr(result.chunks, "aclose", None)
                    if aclose is not None:
                        await aclose()
            else:
                writer.write(_encode({"ok": True, "result": result}) + b"\n")
        await drain(writer)

    async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        if open_connections >= limits.max_connections:
            say("refused", logging.WARNING, "API: connection refused: %d connections open, the most served",
                open_connections)
            # a fresh connection's socket buffer is empty: the line is sent at once and
            # the close does not wait for the client
            writer.write(_error_line(f"api: {open_connections} connections open, the most the daemon serves; "
                                     "try again later", False))
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()
            else:
                writer.close()
            return
        open_connections += 1
        lines = _LineReader(reader, limits, budget)
        abort = False
        try:
            while True:
                line = await lines.next_line()
                if line is None:
                    break
                await answer(writer, line)
                lines.done()
        except _Refused as e:
            say(e.kind, logging.INFO, "API: connection closed: %s", str(e))
            if e.kind == "stalled":
                abort = True
            else:
                writer.write(_error_line(str(e), e.bad_input))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # nothing a client sends may end in a traceback per connection
            say("internal", logging.ERROR, "API connection failed", exc_info=True)
        finally:
            lines.release()
            try:
                if abort:
                    writer.transport.abort()
                else:  # an error line nobody reads does not keep the connection either
                    writer.close()
                    await asyncio.wait_for(writer.wait_closed(), limits.write_timeout)
            except (TimeoutError, OSError):
                writer.transport.abort()
            finally:
                open_connections -= 1  # only now: the cap bounds open sockets, not just served ones

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve_client(reader, writer)
        except asyncio.CancelledError:
            # the daemon is stopping: the connection ends here (Python 3.11 would log each
            # cancelled connection task with a traceback)
            writer.transport.abort()

    return await asyncio.start_unix_server(client, sock=sock, limit=_READ_CHUNK)


async def chunked(items: Iterable[Any], size: int = 500) -> AsyncIterator[list[Any]]:
    """Chunks of an iterable (evaluated lazily), yielding to the event loop between them."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
            await asyncio.sleep(0)
    if chunk:
        yield chunk


def call(path: str, method: str, params: Params | None = None, timeout: float = 30.0) -> Any:
    """Synchronous client used by the CLI, the lab and tests."""
    request = json.dumps({"method": method, "params": params or {}}, separators=(",", ":")).encode() + b"\n"
    if len(request) > MAX_REQUEST + 1:
        raise ApiClientError(f"request: {len(request)} octets, more than the {MAX_REQUEST} one request may be "
                             "(split the routes over several calls)", bad_input=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise ApiClientError(f"api-socket: {path!r} does not exist (is `l3fab run` running?)") from None
        except OSError as e:
            raise ApiClientError(f"api-socket: {path!r}: {e.strerror or e}") from None
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon refused the request before reading all of it: its answer says why
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ApiClientError("api: the daemon closed the connection without an answer")
            buf += chunk
    except socket.timeout:
        raise ApiClientError(f"api: no answer within {timeout} s") from None
    except OSError as e:
        raise ApiClientError(f"api: {e.strerror or e}") from None
    finally:
        s.close()
    try:
        resp = json.loads(buf)
    except ValueError:
        raise ApiClientError("api: the daemon's answer is not JSON") from None
    if not isinstance(resp, dict):
        raise ApiClientError("api: the daemon's answer is not a JSON object")
    if not resp.get("ok"):
        raise ApiClientError(str(resp.get("error", "unknown error")), bool(resp.get("bad_input")))
    return resp["result"]


__all__ = ["Api", "ApiClientError", "ApiError", "Handler", "Limits", "MAX_REQUEST", "Stream", "call", "chunked",
           "serve"]
