"""NOTIFICATION (RFC 4271 section 4.5), with the shutdown communication of RFC 9003."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .constants import HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, CeaseSubcode, ErrorCode, MessageType
from .context import CodecContext

_NAMES = {
    (1, 0): "message header error", (1, 1): "connection not synchronized", (1, 2): "bad message length",
    (1, 3): "bad message type", (2, 0): "OPEN message error", (2, 1): "unsupported version number",
    (2, 2): "bad peer AS", (2, 3): "bad BGP identifier", (2, 4): "unsupported optional parameter",
    (2, 6): "unacceptable hold time", (2, 7): "unsupported capability", (3, 0): "UPDATE message error",
    (3, 1): "malformed attribute list", (3, 2): "unrecognized well-known attribute",
    (3, 3): "missing well-known attribute", (3, 4): "attribute flags error", (3, 5): "attribute length error",
    (3, 6): "invalid ORIGIN attribute", (3, 8): "invalid NEXT_HOP attribute", (3, 9): "optional attribute error",
    (3, 10): "invalid network field", (3, 11): "malformed AS_PATH", (4, 0): "hold timer expired",
    (5, 0): "finite state machine error", (5, 1): "unexpected message in OpenSent",
    (5, 2): "unexpected message in OpenConfirm", (5, 3): "unexpected message in Established",
    (6, 0): "cease", (6, 1): "maximum number of prefixes reached", (6, 2): "administrative shutdown",
    (6, 3): "peer de-configured", (6, 4): "administrative reset", (6, 5): "connection rejected",
    (6, 6): "other configuration change", (6, 7): "connection collision resolution",
    (6, 8): "out of resources", (6, 9): "hard reset", (7, 1): "invalid ROUTE-REFRESH message length",
    (8, 0): "send hold timer expired",
}


@dataclass(frozen=True)
class Notification:
    code: int
    subcode: int = 0
    data: bytes = b""

    type: int = field(default=MessageType.NOTIFICATION, init=False, repr=False, compare=False)

    @classmethod
    def shutdown(cls, message: str = "", subcode: int = CeaseSubcode.ADMIN_SHUTDOWN) -> "Notification":
        """Cease with an RFC 9003 shutdown communication (UTF-8, at most 255 octets)."""
        # Cut at 255 octets without splitting a multi-octet character: the text MUST
        # stay valid UTF-8 (RFC 9003 section 2).
        raw = message.encode()[:255].decode(errors="ignore").encode()
        return cls(ErrorCode.CEASE, subcode, bytes((len(raw),)) + raw if message else b"")

    @property
    def shutdown_message(self) -> str | None:
        if self.code == ErrorCode.CEASE and self.subcode in (CeaseSubcode.ADMIN_SHUTDOWN, CeaseSubcode.ADMIN_RESET):
            if self.data and self.data[0] <= len(self.data) - 1:
                return self.data[1 : 1 + self.data[0]].decode(errors="replace")
        return None

    def describe(self) -> str:
        name = _NAMES.get((self.code, self.subcode)) or _NAMES.get((self.code, 0), "unknown error")
        text = f"{self.code}/{self.subcode} ({name})"
        msg = self.shutdown_message
        if msg:
            text += f' "{msg}"'
        elif self.data:
            text += f" data {self.data[:32].hex()}"
        return text

    def encode(self, ctx: CodecContext | None = None) -> bytes:
        """The message, its data cut to fit ``ctx.max_message`` (4096 octets without a context).

        Error data often quotes what the peer sent (RFC 7313: a whole ROUTE-REFRESH,
        RFC 4271: a whole attribute), which can be as long as the largest message: quoted
        whole, the NOTIFICATION would exceed the maximum the peer accepts (or 65535, which
        no length field can express).  RFC 4271 gives the data no minimum, so the start of
        it is sent.  4096 octets is what every peer accepts (RFC 8654 section 4), the
        safe size when the caller does not say what was negotiated.
        """
        limit = MAX_MESSAGE_LEN if ctx is None else min(max(ctx.max_message, MAX_MESSAGE_LEN),
                                                        MAX_EXTENDED_MESSAGE_LEN)
        body = struct.pack("!BB", self.code, self.subcode) + self.data[: limit - HEADER_LEN - 2]
        return b"\xff" * 16 + struct.pack("!HB", HEADER_LEN + len(body), MessageType.NOTIFICATION) + body


def decode_notification(body: bytes) -> Notification:
    # The header check guarantees at least two octets.
    return Notification(body[0], body[1], bytes(body[2:]))
