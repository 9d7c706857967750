"""What two speakers negotiated, as far as the codec needs to know it."""
from __future__ import annotations

from dataclasses import dataclass

from .constants import MAX_MESSAGE_LEN, Family


@dataclass(frozen=True)
class CodecContext:
    """Per-session encoding rules.

    ``four_octet_as``: AS numbers in AS_PATH/AGGREGATOR are 4 octets (RFC 6793).
    ``addpath_receive``: families whose received NLRI carry a path identifier (RFC 7911).
    ``addpath_send``: families whose sent NLRI must carry one.
    ``max_message``: 4096, or 65535 with the extended message capability (RFC 8654).
    """

    four_octet_as: bool = True
    addpath_receive: frozenset[Family] = frozenset()
    addpath_send: frozenset[Family] = frozenset()
    max_message: int = MAX_MESSAGE_LEN


DEFAULT_CONTEXT = CodecContext()
TWO_OCTET_CONTEXT = CodecContext(four_octet_as=False)
