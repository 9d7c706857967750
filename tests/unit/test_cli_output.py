"""The CLI's one-line errors keep field paths such as ``tenants[green].vni`` intact."""
from __future__ import annotations

import pytest
import typer

from l3fab.cli.output import fail


def test_error_message_is_not_read_as_markup(capsys):
    with pytest.raises(typer.Exit) as exc:
        fail("endpoints[a9].ipv4: '10.0.0.1' is already used by endpoint 'a1' in tenant [green]", 2)
    assert exc.value.exit_code == 2
    err = capsys.readouterr().err
    assert "endpoints[a9].ipv4" in err and "tenant [green]" in err
    assert len(err.strip().splitlines()) == 1
