"""The local API: newline-delimited JSON over a unix socket (mode 0660).

Request:  ``{"method": "neighbors", "params": {...}}``
Response: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "field: value ..."}``
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger("l3fab.api")
MAX_REQUEST = 64 * 1024 * 1024


class ApiClientError(Exception):
    """The daemon could not be reached or refused the request (message is one line).

    ``bad_input`` is true when the daemon refused what was asked (a field and value
    at fault), false when it could not be reached or failed itself.
    """

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


async def serve(path: str, handler) -> asyncio.base_events.Server:
    """Serve ``handler(method, params)`` on a unix socket at ``path``."""
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
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
                        raise ValueError("request is not {\"method\": ..., \"params\": {...}}")
                    params = req.get("params") or {}
                    if not isinstance(params, dict):
                        raise ValueError("params is not an object")
                    result = handler(req["method"], params)
                    if asyncio.iscoroutine(result):
                        result = await result
                    resp = {"ok": True, "result": result}
                except Exception as e:  # every refusal goes back to the client as one line
                    known = isinstance(e, ValueError) or type(e).__name__ == "ApiError"
                    if not known:
                        log.exception("API request failed")
                    resp = {"ok": False, "bad_input": known,
                            "error": str(e) if known else f"internal error: {type(e).__name__}: {e}"}
                writer.write(json.dumps(resp, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(client, path=str(p), limit=MAX_REQUEST)
    os.chmod(p, 0o660)
    return server


def call(path: str, method: str, params: dict | None = None, timeout: float = 30.0):
    """Synchronous client used by the CLI and tests."""
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
