"""Text a peer sends reaches the operator escaped: the real CLI against a daemon whose
neighbour's last NOTIFICATION carries rich markup, an escape sequence and a newline
(issue 10, finding 7, CLI side)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from l3fab.speaker.wire.constants import CeaseSubcode
from l3fab.speaker.wire.notification import Notification

from .conftest import REPO
from .rawpeer import RawPeer, wait

CONFIG = {
    "router-id": "10.0.0.1", "asn": 65001,
    "listen": {"addresses": ["127.0.0.1"], "port": 0},
    "neighbors": [{"name": "raw", "address": "127.0.0.1", "remote-as": 65002, "passive": True,
                   "families": ["ipv4"], "hold-time": 30}],
}
HOSTILE = "[/] \x1b[2J evil\nforged log line"
SHOWN = "[/] \\x1b[2J evil\\nforged log line"


def cli(d, *args):
    # wide enough that no cell is folded: the escaped text stays on one line
    env = {**os.environ, "COLUMNS": "400", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "l3fab.cli.main", *args, "--socket", d.socket],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def _printed_safely(r) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "MarkupError" not in r.stderr, r.stderr
    out = r.stdout
    assert "\x1b[2J" not in out, out  # the peer's escape sequence does not reach the terminal
    assert not any(line.lstrip("│ ").startswith("forged log line") for line in out.splitlines()), out
    return out


def _sent_text_arrived(d) -> bool:
    row = d.api("neighbor", neighbor="raw")
    return row["state"] != "Established" and "evil" in str(row["last_notification_in"])


def test_a_peers_shutdown_message_is_shown_escaped(daemon_factory):
    d = daemon_factory(CONFIG)
    peer = RawPeer(d.status["listen_port"])
    try:
        wait(lambda: d.api("neighbor", neighbor="raw")["state"] == "Established")
        peer.send(Notification.shutdown(HOSTILE, CeaseSubcode.ADMIN_SHUTDOWN).encode())
        wait(lambda: _sent_text_arrived(d))
    finally:
        peer.close()

    # the table (whose last-error column is cut at 60 characters): no MarkupError on "[/]"
    table = _printed_safely(cli(d, "show", "neighbors"))
    assert "raw" in table and '"[/]' in table, table

    # the record: the whole message, on its line, escaped once (whether the daemon
    # escaped it already or the CLI did)
    record = _printed_safely(cli(d, "show", "neighbor", "raw"))
    assert SHOWN in record and "\\\\x1b" not in record, record

    # --json is JSON: control characters come out as escapes there too
    r = cli(d, "show", "neighbor", "raw", "--json")
    assert r.returncode == 0 and "\x1b" not in r.stdout
    assert "evil" in json.loads(r.stdout)["last_notification_in"]
    assert d.proc.poll() is None
