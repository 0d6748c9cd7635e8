"""The command line's contract: version, help, one-line errors and exit codes."""

from __future__ import annotations

import pytest

from herd import __version__
from herd.cli.main import main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("hosts", "groups", "run", "push", "pull", "log", "lab", "ftp", "demo"):
        assert command in out


def test_unknown_command_is_bad_usage_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "no-such-command" in capsys.readouterr().err
