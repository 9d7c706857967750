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
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .errors import ApiError, UserError

log = logging.getLogger("l3fab.api")
MAX_REQUEST = 64 * 1024 * 1024

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


async def _write_stream(writer: asyncio.StreamWriter, stream: Stream) -> None:
    """``{"ok": true, "result": [`` item, item, ... ``]}`` written as chunks arrive."""
    writer.write(b'{"ok": true, "result": [')
    first = True
    async for chunk in stream.chunks:
        if not chunk:
            continue
        body = b", ".join(_encode(item) for item in chunk)
        writer.write(body if first else b", " + body)
        first = False
        await writer.drain()
    writer.write(b"]}\n")


def _parse_request(line: bytes) -> tuple[str, Params]:
    try:
        req = json.loads(line)
    except ValueError as e:
        raise ApiError(f"request: not JSON ({e})") from None
    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
        raise ApiError("request: not {\"method\": ..., \"params\": {...}}")
    params = req.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError("params: not an object")
    return req["method"], params


async def serve(path: str, api: Api) -> asyncio.base_events.Server:
    """Serve ``api`` on a unix socket at ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_socket() or p.exists():
        # a stale socket from a previous run; refuse to steal a live one
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(p))
        except OSError:
            p.unlink()
        else:
            probe.close()
            raise OSError(f"api-socket: {path!r} is in use by a running l3fab")

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method = "?"
                try:
                    method, params = _parse_request(line)
                    result = await api.dispatch(method, params)
                except UserError as e:
                    writer.write(_encode({"ok": False, "bad_input": True, "error": str(e)}) + b"\n")
                except Exception as e:  # a bug in l3fab: logged, answered, the daemon stays up
                    log.exception("API request %r failed", method)
                    writer.write(_encode({"ok": False, "bad_input": False,
                                          "error": f"internal error: {type(e).__name__}: {e}"}) + b"\n")
                else:
                    if isinstance(result, Stream):
                        await _write_stream(writer, result)
                    else:
                        writer.write(_encode({"ok": True, "result": result}) + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(client, path=str(p), limit=MAX_REQUEST)
    os.chmod(p, 0o660)
    return server


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
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except FileNotFoundError:
        raise ApiClientError(f"api-socket: {path!r} does not exist (is `l3fab run` running?)") from None
    except OSError as e:
        raise ApiClientError(f"api-socket: {path!r}: {e.strerror or e}") from None
    try:
        s.sendall(json.dumps({"method": method, "params": params or {}}).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ApiClientError("api: the daemon closed the connection without an answer")
            buf += chunk
    except socket.timeout:
        raise ApiClientError(f"api: no answer within {timeout} s") from None
    finally:
        s.close()
    resp = json.loads(buf)
    if not resp.get("ok"):
        raise ApiClientError(resp.get("error", "unknown error"), bool(resp.get("bad_input")))
    return resp["result"]


__all__ = ["Api", "ApiClientError", "ApiError", "Handler", "Stream", "call", "chunked", "serve"]
