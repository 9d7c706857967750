"""Real peers' messages recorded in tests/unit/data (see its README), and a Session
configured as the recording l3fab side was, to feed them to."""
from __future__ import annotations

from pathlib import Path

from l3fab.lab.capture import read_capture
from l3fab.speaker.session import Session, SessionConfig
from l3fab.speaker.wire import IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6

DATA = Path(__file__).parent / "data"
ALL = (IPV4_UNICAST, IPV6_UNICAST, VPNV4, VPNV6)


def load(name: str) -> list[bytes]:
    """One capture file: one message per non-comment line."""
    return read_capture(DATA / name)


def run_session(messages: list[bytes], **cfg) -> tuple[Session, list]:
    """Feed a peer's bytes, message by message, to a passive l3fab Session (AS 65001,
    router id 10.0.0.1, all four families, graceful restart announced) expecting AS 65002."""
    s = Session(SessionConfig(65001, "10.0.0.1", 65002, families=ALL, passive=True, graceful_restart_time=120, **cfg))
    events = s.start() + s.connection_made()
    for m in messages:
        events += s.data_received(m)
    return s, events
