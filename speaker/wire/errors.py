"""Typed protocol errors.

Every problem found while decoding bytes from a peer surfaces as a
:class:`RemoteProtocolError` carrying the NOTIFICATION code, subcode and data
that RFC 4271 / RFC 7606 prescribe.  Problems with what *we* were asked to
encode are :class:`LocalProtocolError` (a bug or a bad API call, never the
peer's fault).
"""
from __future__ import annotations

from .constants import ErrorCode


class BgpError(Exception):
    """Base of every error this package raises on purpose."""


class RemoteProtocolError(BgpError):
    """The peer sent something we must answer with a NOTIFICATION."""

    def __init__(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        self.code = int(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.reason = reason or f"error {self.code}/{self.subcode}"
        super().__init__(self.reason)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}/{self.subcode}: {self.reason})"


class MessageHeaderError(RemoteProtocolError):
    def __init__(self, subcode: int, data: bytes = b"", reason: str = "") -> None:
        super().__init__(ErrorCode.MESSAGE_HEADER, subcode, data, reason)


class OpenMessageError(RemoteProtocolError):
    def __init__(self, subcode: int, data: bytes = b"", reason: str = "") -> None:
        super().__init__(ErrorCode.OPEN_MESSAGE, subcode, data, reason)


class UpdateMessageError(RemoteProtocolError):
    """An UPDATE error whose RFC 7606 handling is 'session reset'."""

    def __init__(self, subcode: int, data: bytes = b"", reason: str = "") -> None:
        super().__init__(ErrorCode.UPDATE_MESSAGE, subcode, data, reason)


class RouteRefreshError(RemoteProtocolError):
    def __init__(self, subcode: int, data: bytes = b"", reason: str = "") -> None:
        super().__init__(ErrorCode.ROUTE_REFRESH, subcode, data, reason)


class LocalProtocolError(BgpError):
    """We were asked to encode something the protocol cannot express."""
