"""Every test runs isolated from the user's home, inventories and herd settings."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.operation.agent_protocol import AgentFiles

from .agent_support import stop_agent

# What would let a test see the developer's own setup: their inventory and operator
# name, their SSH agent, and XDG directories that would override the fresh HOME.
_FORGOTTEN = (
    "HERD_INVENTORY",
    "HERD_OPERATOR",
    "SUDO_USER",
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
)


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A fresh HERD_HOME, and a fresh HOME so ~/.ssh (config, known_hosts, keys) is empty.

    Tests that need a key, an SSH config or known_hosts entries write their own.
    """
    home = tmp_path_factory.mktemp("herd-home")
    user_home = tmp_path_factory.mktemp("home")
    user_home.chmod(0o700)
    monkeypatch.setenv("HERD_HOME", str(home))
    monkeypatch.setenv("HOME", str(user_home))
    for name in _FORGOTTEN:
        monkeypatch.delenv(name, raising=False)
    yield home


@pytest.fixture(autouse=True)
def private_agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentFiles]:
    """Each test its own runtime directory, so its own agent, stopped after the test.

    Short and outside pytest's tree: a unix socket's path must fit in 108 bytes.
    """
    runtime = Path(tempfile.mkdtemp(prefix="herd-xdg-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    files = AgentFiles(runtime / "herd")
    try:
        yield files
    finally:
        stop_agent(files)
        shutil.rmtree(runtime, ignore_errors=True)
