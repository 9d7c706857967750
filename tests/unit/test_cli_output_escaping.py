"""What the CLI prints from the daemon is data: never rich markup, never raw control
characters (issue 10, finding 7; the system test drives the real CLI)."""
from __future__ import annotations

import io

import pytest
import typer
from rich.console import Console

from l3fab.cli import output

HOSTILE = "[/] \x1b[2J evil\nforged log line [bold red]x[/] :thumbs_up: \u202egnp.exe \x07\x9b"
SHOWN = "[/] \\x1b[2J evil\\nforged log line [bold red]x[/] :thumbs_up: \\u202egnp.exe \\x07\\x9b"


@pytest.fixture
def screen(monkeypatch):
    """The CLI's console writing to a string, as wide as needed for one line per row."""
    out = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=out, width=400, force_terminal=False, color_system=None))
    return out


def _neighbor(**kw):
    row = {"name": "n1", "address": "192.0.2.1", "interface": None, "remote_as": 65002, "peer_as": None,
           "state": "Idle", "uptime": 5.0, "received": {}, "messages_in": 1, "messages_out": 2,
           "last_error": "x"}
    return {**row, **kw}


def _assert_safe(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\u202e" not in text
    assert "\x1b" not in text


def test_neighbors_table_shows_a_hostile_last_error_escaped(screen):
    output.console.print(output.neighbors_table([_neighbor(last_error=HOSTILE[:60], name="[red]n1[/]")]))
    text = screen.getvalue()
    _assert_safe(text)
    assert SHOWN[:70].split(" [bold")[0] in text and "[red]n1[/]" in text


def test_records_tables_and_lines_print_data_as_text(screen):
    output.print_record({"last_error": HOSTILE, "capabilities": {"fqdn": HOSTILE}, "n": 3, "none": None}, 16)
    output.console.print(output.rows_table(HOSTILE, [{"name": HOSTILE, "tenant": ["[/]", "\x1b"]}], ["name", "tenant"]))
    output.console.print(output.routes_table(f"Received from {HOSTILE}", [
        {"family": "ipv4", "prefix": "10.0.0.0/8", "next_hop": HOSTILE, "as_path": "[/]", "origin": "igp",
         "communities": [HOSTILE], "best": True, "valid": True, "source": HOSTILE}]))
    output.say("tenant", HOSTILE, "deleted")
    text = screen.getvalue()
    _assert_safe(text)
    assert text.count(SHOWN) >= 5, text
    assert ":thumbs_up:" in text and "\U0001f44d" not in text  # no emoji codes either
    assert "{'fqdn': '[/] \\x1b[2J evil\\nforged" in text  # a dict prints as a literal (escaped by repr)


def test_fail_prints_one_escaped_line(capsys):
    with pytest.raises(typer.Exit) as e:
        output.fail(f"neighbor: {HOSTILE} is not a neighbour name", 2)
    assert e.value.exit_code == 2
    err = capsys.readouterr().err
    _assert_safe(err)
    assert len(err.strip().splitlines()) == 1
    assert "[/] \\x1b[2J evil\\nforged log line [bold red]x[/]" in err
    # the reprs the daemon puts in its messages keep their backslashes as they are
    with pytest.raises(typer.Exit):
        output.fail("name: 'web2\\n' is not a name", 2)
    assert "name: 'web2\\n' is not a name" in capsys.readouterr().err
