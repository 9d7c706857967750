"""The error types every layer shares (a leaf module: it imports nothing of l3fab).

A :class:`UserError` is input l3fab refuses: a config file, a route object, an API
request or an intent change.  Its message is one line, ``field: value problem``,
and the CLI prints it as is with exit code 2.  Anything else raised while serving
a request is a bug in l3fab: the API logs it and answers "internal error".
"""
from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Refused input; the message names the field and the value at fault."""


class ConfigError(UserError, ValueError):
    """A configuration problem: ``field`` and ``value`` are in the message."""

    def __init__(self, path: str, value: Any, problem: str, message: str | None = None) -> None:
        self.path = path
        self.value = value
        super().__init__(message or f"{path}: {value!r} {problem}")

    @classmethod
    def from_line(cls, line: str) -> "ConfigError":
        """Wrap an already formatted ``field: value problem`` line from a lower layer."""
        path, _, _ = line.partition(": ")
        return cls(path, None, "", message=line)


class RouteSpecError(UserError, ValueError):
    """A bad route in an announce/withdraw request: names the field and value."""


class ApiError(UserError):
    """A request the API refuses: the message names the field and value."""


__all__ = ["UserError", "ConfigError", "RouteSpecError", "ApiError"]
