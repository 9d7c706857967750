"""The few kernel objects the dataplane keeps outside the route tables (ip rules,
gateway addresses, link settings, sysctls), read with ``ip -j`` and changed with
``ip -batch``.

There are a handful of these per endpoint, so iproute2 is fast enough and keeps
the exact semantics operators know from the command line; the bulk of the state
(routes) goes through :mod:`fib`'s netlink fast path instead.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Sequence


class DataplaneError(RuntimeError):
    """A kernel change failed: the message names the object and the kernel's reason."""


@dataclass(frozen=True)
class Rule:
    """``ip [-6] rule``: l3fab's rules are recognised by priority and protocol."""

    family: int  # 4 or 6
    pref: int
    table: int
    iif: str | None = None
    src: str | None = None  # address or prefix
    protocol: int | None = None

    def args(self) -> list[str]:
        out = ["pref", str(self.pref)]
        if self.src:
            out += ["from", self.src]
        if self.iif:
            out += ["iif", self.iif]
        out += ["lookup", str(self.table)]
        if self.protocol is not None:
            out += ["proto", str(self.protocol)]
        return out

    def identity(self) -> tuple:
        return (self.family, self.pref, self.table, self.iif, _host(self.src))


def _host(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    addr, _, plen = prefix.partition("/")
    full = "32" if ":" not in addr else "128"
    return addr if plen in ("", full) else prefix


_TABLE_NAMES = {"main": 254, "local": 255, "default": 253}


class Ip:
    """Runs ``ip`` (optionally ``ip -n <netns>``); every failure is a DataplaneError."""

    def __init__(self, netns: str | None = None, binary: str = "ip") -> None:
        self.prefix = [binary] + (["-n", netns] if netns else [])

    def run(self, *args: str, input: str | None = None, what: str | None = None) -> str:
        argv = [*self.prefix, *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[0]
            raise DataplaneError(f"{what or ' '.join(args)}: {reason}")
        return proc.stdout

    def json(self, *args: str) -> list[dict]:
        out = self.run("-j", *args)
        return json.loads(out) if out.strip() else []

    def batch(self, lines: Sequence[str]) -> list[str]:
        """Apply ``lines`` (``ip -batch`` syntax) one by one; the errors of those that
        failed come back as strings, the rest still run."""
        errors = []
        for line in lines:
            try:
                self.run(*line.split(), what=line)
            except DataplaneError as e:
                errors.append(str(e))
        return errors

    # ------------------------------------------------------------------ reads

    def rules(self, family: int) -> list[Rule]:
        out = []
        for r in self.json(f"-{family}", "rule", "show"):
            table = r.get("table", "main")
            table = _TABLE_NAMES.get(table, table)
            try:
                table = int(table)
            except (TypeError, ValueError):
                continue
            src = r.get("src")
            if src and src != "all" and r.get("srclen") is not None:
                src = f"{src}/{r['srclen']}"
            proto = r.get("protocol")
            out.append(Rule(family, int(r.get("priority", 0)), table, r.get("iif"),
                            None if src in (None, "all") else src, _proto(proto)))
        return out

    def addresses(self, ifname: str) -> list[tuple[str, int, str]]:
        """(address, prefix length, scope) of ``ifname``; empty if it does not exist."""
        try:
            data = self.json("addr", "show", "dev", ifname)
        except DataplaneError:
            return []
        return [(a["local"], int(a["prefixlen"]), a.get("scope", "global"))
                for d in data for a in d.get("addr_info", [])]

    def link(self, ifname: str) -> dict | None:
        try:
            data = self.json("-d", "link", "show", "dev", ifname)
        except DataplaneError:
            return None
        return data[0] if data else None

    def links(self) -> list[dict]:
        return self.json("-d", "link", "show")

    def tunsrc(self) -> str | None:
        out = self.run("sr", "tunsrc", "show").split()  # "tunsrc addr 2001:db8::1"
        return out[-1] if len(out) >= 2 and out[0] == "tunsrc" and out[-1] != "::" else None


def _proto(value) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return {"kernel": 2, "boot": 3, "static": 4}.get(value)


def _sysctl_path(key: str | tuple[str, ...]) -> str:
    """``net.ipv4.ip_forward`` or a tuple of parts (interface names may contain dots)."""
    parts = key.split(".") if isinstance(key, str) else key
    return "/proc/sys/" + "/".join(parts)


def read_sysctl(key: str | tuple[str, ...]) -> str | None:
    try:
        with open(_sysctl_path(key)) as f:
            return f.read().strip()
    except OSError:
        return None


def write_sysctl(key: str | tuple[str, ...], value: str | int) -> bool:
    """Only when different (some have side effects even when rewritten unchanged).
    True when it was changed."""
    if read_sysctl(key) == str(value):
        return False
    try:
        with open(_sysctl_path(key), "w") as f:
            f.write(str(value))
    except OSError as e:
        name = key if isinstance(key, str) else ".".join(key)
        raise DataplaneError(f"sysctl {name}={value}: {e.strerror}") from None
    return True
