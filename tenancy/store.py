"""The intent's state file: JSON, written atomically.

Why a JSON file and not SQLite: the intent of one node is small (hundreds to a few
thousand records), every change is validated against the whole state in memory
first, and the file is then replaced as a whole, so all-or-nothing comes from the
rename, not from a database.  An operator can read, diff and back up the file.

Atomic write: a temporary file in the same directory is written and fsync'ed, renamed
over the state file, and the directory fsync'ed.  A crash at any point leaves either
the old file or the new one, never a mix.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from .errors import IntentError
from .model import EndpointAllocation, EndpointSpec, State, TenantAllocation, TenantSpec

FORMAT = "l3fab-intent"
VERSION = 1


def state_to_dict(state: State) -> dict[str, Any]:
    tenants = []
    for n in sorted(state.tenants):
        t, a = state.tenants[n], state.tenant_allocations[n]
        tenants.append({"name": t.name, "vni": t.vni, "families": t.families, "peers": list(t.peers),
                        "table": a.table, "rd_number": a.rd_number})
    endpoints = []
    for n in sorted(state.endpoints):
        e, ea = state.endpoints[n], state.endpoint_allocations[n]
        endpoints.append({"name": e.name, "tenant": e.tenant, "interface": e.interface, "ipv4": e.ipv4,
                          "ipv6": e.ipv6, "rate_limit": e.rate_limit,
                          "sid4_index": ea.sid4_index, "sid6_index": ea.sid6_index})
    return {"format": FORMAT, "version": VERSION,
            "counters": {"next_sid_index": state.next_sid_index, "next_table": state.next_table},
            "tenants": tenants, "endpoints": endpoints}


_KIND_WORDS = {int: "an integer", str: "a string", list: "a list", dict: "an object"}


def _get(obj: dict[str, Any], key: str, kind: type, where: str, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise IntentError(where, obj, "is not an object")
    v = obj.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, kind):
        raise IntentError(f"{where}.{key}", v, f"is not {_KIND_WORDS.get(kind, 'a valid value')}")
    return v


def state_from_dict(data: Any, where: str = "state") -> State:
    """The inverse of :func:`state_to_dict`; structural problems are IntentErrors.
    Semantic checks (clashes, unknown tenants) are :func:`tenancy.validate.check_state`."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntentError(f"{where}.format", data.get("format") if isinstance(data, dict) else data,
                          f"is not {FORMAT!r}")
    if data.get("version") != VERSION:
        raise IntentError(f"{where}.version", data.get("version"), f"is not supported (this l3fab reads {VERSION})")
    counters = _get(data, "counters", dict, where)
    tenants, tallocs, endpoints, eallocs = {}, {}, {}, {}
    for i, t in enumerate(_get(data, "tenants", list, where)):
        w = f"{where}.tenants[{i}]"
        name = _get(t, "name", str, w)
        if name in tenants:
            raise IntentError(f"{w}.name", name, "appears twice")
        peers = _get(t, "peers", list, w)
        tenants[name] = TenantSpec(name, _get(t, "vni", int, w), _get(t, "families", str, w),
                                   tuple(str(p) for p in peers))
        tallocs[name] = TenantAllocation(_get(t, "table", int, w), _get(t, "rd_number", int, w))
    for i, e in enumerate(_get(data, "endpoints", list, where)):
        w = f"{where}.endpoints[{i}]"
        name = _get(e, "name", str, w)
        if name in endpoints:
            raise IntentError(f"{w}.name", name, "appears twice")
        endpoints[name] = EndpointSpec(name, _get(e, "tenant", str, w), _get(e, "interface", str, w),
                                       _get(e, "ipv4", str, w, True), _get(e, "ipv6", str, w, True),
                                       _get(e, "rate_limit", int, w, True))
        eallocs[name] = EndpointAllocation(_get(e, "sid4_index", int, w, True), _get(e, "sid6_index", int, w, True))
    return State(tenants, endpoints, tallocs, eallocs,
                 _get(counters, "next_sid_index", int, f"{where}.counters"),
                 _get(counters, "next_table", int, f"{where}.counters"))


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename,
    fsync the directory.  On any failure the old file is untouched and the temp file gone."""
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    # O_EXCL|O_NOFOLLOW: never write through a link or a file someone placed there
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save(path: str | os.PathLike[str], state: State) -> None:
    text = json.dumps(state_to_dict(state), indent=2, sort_keys=False) + "\n"
    try:
        atomic_write(path, text.encode())
    except OSError as e:
        raise IntentError("state-file", str(path), f"could not be written: {e.strerror or e}") from None


def load(path: str | os.PathLike[str]) -> State:
    """The state in ``path``; an empty State when the file does not exist yet."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return State()
    except OSError as e:
        raise IntentError("state-file", str(path), f"could not be read: {e.strerror or e}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise IntentError("state-file", str(path), f"is not valid JSON: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise IntentError("state-file", str(path), "is nested too deeply to be an l3fab state file") from None
    return state_from_dict(data, where=str(path))
