"""Message framing (RFC 4271 section 4.1): split a byte stream into typed messages.

:class:`MessageReader` is sans-IO: ``feed()`` it bytes, iterate ``messages()``.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from .constants import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, HeaderSubcode, MessageType
from .context import DEFAULT_CONTEXT, CodecContext
from .errors import MessageHeaderError
from .notification import Notification, decode_notification
from .open import Open, decode_open
from .route_refresh import RouteRefresh, decode_route_refresh
from .update import Update, decode_update


@dataclass(frozen=True)
class Keepalive:
    type: int = field(default=MessageType.KEEPALIVE, init=False, repr=False, compare=False)

    def encode(self, ctx: CodecContext | None = None) -> bytes:
        return KEEPALIVE_BYTES


KEEPALIVE_BYTES = MARKER + struct.pack("!HB", HEADER_LEN, MessageType.KEEPALIVE)
KEEPALIVE = Keepalive()

Message = Open | Update | Notification | Keepalive | RouteRefresh

# Minimum total length per message type (RFC 4271 section 6.1)
_MIN_LEN = {MessageType.OPEN: 29, MessageType.UPDATE: 23, MessageType.NOTIFICATION: 21,
            MessageType.KEEPALIVE: 19, MessageType.ROUTE_REFRESH: 19}


def decode_body(msg_type: int, body: bytes, ctx: CodecContext = DEFAULT_CONTEXT) -> Message:
    if msg_type == MessageType.UPDATE:
        return decode_update(body, ctx)
    if msg_type == MessageType.KEEPALIVE:
        return KEEPALIVE
    if msg_type == MessageType.OPEN:
        return decode_open(body)
    if msg_type == MessageType.NOTIFICATION:
        return decode_notification(body)
    if msg_type == MessageType.ROUTE_REFRESH:
        return decode_route_refresh(body)
    raise MessageHeaderError(HeaderSubcode.BAD_MESSAGE_TYPE, bytes((msg_type,)), f"message type {msg_type}")


def check_header(header: bytes, max_len: int) -> tuple[int, int]:
    """Validate a 19-octet header; return (total length, type)."""
    if header[:16] != MARKER:
        raise MessageHeaderError(HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, b"", "marker is not all ones")
    length, msg_type = struct.unpack("!HB", header[16:19])
    if msg_type not in _MIN_LEN:
        raise MessageHeaderError(HeaderSubcode.BAD_MESSAGE_TYPE, bytes((msg_type,)), f"message type {msg_type}")
    limit = MAX_MESSAGE_LEN if msg_type == MessageType.OPEN else max_len
    if length < _MIN_LEN[msg_type] or length > limit or (msg_type == MessageType.KEEPALIVE and length != HEADER_LEN):
        raise MessageHeaderError(HeaderSubcode.BAD_MESSAGE_LENGTH, struct.pack("!H", length),
                                 f"length {length} invalid for message type {msg_type}")
    return length, msg_type


class MessageReader:
    """Accumulates bytes and yields ``(type, body)`` pairs or decoded messages."""

    def __init__(self, ctx: CodecContext = DEFAULT_CONTEXT) -> None:
        self._buf = bytearray()
        self.ctx = ctx

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(type, body)`` for every complete message; raises MessageHeaderError."""
        buf = self._buf
        pos = 0
        n = len(buf)
        try:
            while n - pos >= HEADER_LEN:
                # Read the limit per message: the owner may switch ``ctx`` (extended
                # messages negotiated) between two messages of the same chunk.
                max_len = max(self.ctx.max_message, MAX_MESSAGE_LEN)
                length, msg_type = check_header(bytes(buf[pos : pos + HEADER_LEN]), max_len)
                if n - pos < length:
                    break
                body = bytes(buf[pos + HEADER_LEN : pos + length])
                pos += length
                yield msg_type, body
        finally:
            del buf[:pos]

    def messages(self) -> Iterator[Message]:
        """Yield decoded messages; raises the typed error of the first bad one."""
        for msg_type, body in self.frames():
            yield decode_body(msg_type, body, self.ctx)


def decode_message(data: bytes, ctx: CodecContext = DEFAULT_CONTEXT) -> Message:
    """Decode exactly one complete message (header included), at most ``ctx.max_message``
    octets long (an OPEN at most 4096), as :class:`MessageReader` does."""
    if len(data) < HEADER_LEN:
        raise MessageHeaderError(HeaderSubcode.BAD_MESSAGE_LENGTH, b"", "shorter than a header")
    length, msg_type = check_header(data[:HEADER_LEN], max(ctx.max_message, MAX_MESSAGE_LEN))
    if length != len(data):
        raise MessageHeaderError(HeaderSubcode.BAD_MESSAGE_LENGTH, struct.pack("!H", length),
                                 f"header length {length} but {len(data)} octets given")
    return decode_body(msg_type, data[HEADER_LEN:], ctx)
