"""Static checks: ruff and mypy over the repository, the same commands as ``make lint``.

Both read their configuration from pyproject.toml (``[tool.ruff]``, ``[tool.mypy]``) and
run from the repository root: mypy finds the ``l3fab.*`` packages through the symlinks in
``.ci/mypy-root`` (the editable install's import hook is invisible to it).

Where ruff or mypy is not installed the checks skip with the reason, except when the
``CI`` environment variable is set: CI must run them, so there they fail instead.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 240  # a cold mypy run takes seconds; the cache makes later runs faster still

COMMANDS = {
    "ruff": [sys.executable, "-m", "ruff", "check", "."],
    "mypy": [sys.executable, "-m", "mypy"],
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"{module} is not installed in {sys.prefix} (bash .ci/setup installs the test extras)"
    if in_ci():
        pytest.fail(f"CI must run the static checks: {reason}")
    print(f"skipping: {reason}")
    pytest.skip(reason)


@pytest.mark.parametrize("tool", sorted(COMMANDS))
def test_static_check_passes(tool: str) -> None:
    _require(tool)
    argv = COMMANDS[tool]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        print(output)
    assert proc.returncode == 0, (f"`{' '.join(argv[1:])}` (in {REPO}) exited with {proc.returncode}:\n"
                                  f"{output}")
