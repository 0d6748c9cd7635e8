"""The client side of the warm command line: which commands it offers, and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.cli.launch import command_of, warm_socket


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["run", "all", "--", "uptime"], "run"),
        (["-i", "inv.yml", "run", "web"], "run"),
        (["-iinv.yml", "--debug", "push", "all", "a", "/tmp/"], "push"),
        (["--inventory", "run", "pull", "all"], "pull"),  # "run" is the inventory's name
        (["--inventory=a.yml", "--home", "h", "hosts", "all"], "hosts"),
        (["--home=run", "log"], "log"),
        (["--help", "run"], None),  # help, version: the full command line answers
        (["--version"], None),
        (["--no-such-option", "run"], None),
        (["-i"], None),
        ([], None),
    ],
)
def test_the_subcommand_is_found_past_the_global_options_only(
    args: list[str], command: str | None
) -> None:
    assert command_of(args) == command


def test_the_warm_socket_is_used_only_in_a_private_directory_of_this_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert warm_socket() is None  # no directory yet: no agent either
    directory = tmp_path / "herd"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    assert warm_socket() is None  # open to others: someone else's socket could be there
    directory.chmod(0o700)
    assert warm_socket() == str(directory / "cli.sock")
    directory.rmdir()
    directory.symlink_to(tmp_path)
    assert warm_socket() is None


def test_the_first_step_imports_only_the_standard_librarys_basics() -> None:
    """Every ``herd`` starts here: the modules each warm run would pay for stay out."""
    import subprocess
    import sys

    probe = "import sys, herd.cli.launch; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(done.stdout.split())
    assert "herd.cli.launch" in loaded
    assert not loaded & {"re", "enum", "typing", "socket", "signal", "pathlib", "asyncio"}
