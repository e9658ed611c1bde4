"""Bare commands print their help and exit 0, usage errors exit 2 in one line, on every click the package allows.

Run as real processes (``python -m cxbridge``) and with nothing but pytest and cxbridge, so that ``.ci/run`` runs
this very module again in a second virtualenv pinned to the oldest allowed click (8.1): click 8.2 and later raise
``NoArgsIsHelpError`` for a bare group where 8.1 printed the help itself, and the two differ in how usage errors
are worded. The main suite runs it under the newest click.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest


def cxbridge(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXBRIDGE_")}
    env["CXBRIDGE_CONFIG"] = str(tmp_path / "absent.toml")  # no config: help must not need one
    return subprocess.run(
        [sys.executable, "-m", "cxbridge", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_click_is_an_allowed_version() -> None:
    """The click under test is one the package allows (>= 8.1); the second CI venv pins 8.1."""
    major, minor = (int(part) for part in version("click").split(".")[:2])
    assert (major, minor) >= (8, 1)


@pytest.mark.parametrize("args", [(), ("plugins",), ("policy",), ("dead-letters",), ("sandbox",), ("config",)])
def test_a_bare_command_prints_its_help_and_exits_0(args: tuple[str, ...], tmp_path: Path) -> None:
    done = cxbridge(*args, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: cxbridge{' ' if args else ''}{' '.join(args)} [OPTIONS] COMMAND")
    assert "Commands:" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("nosuch",), "No such command"),
        (("init", "--bogus"), "--bogus"),
        (("escalate",), "Missing argument"),
    ],
)
def test_a_usage_error_exits_2_in_one_line(args: tuple[str, ...], words: str, tmp_path: Path) -> None:
    done = cxbridge(*args, tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: ")
    assert words in line
