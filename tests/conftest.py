"""Every test runs isolated from the user's home, inventories and herd settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Point HERD_HOME at a fresh directory and forget the caller's inventory and operator."""
    home = tmp_path_factory.mktemp("herd-home")
    monkeypatch.setenv("HERD_HOME", str(home))
    for name in ("HERD_INVENTORY", "HERD_OPERATOR", "SUDO_USER"):
        monkeypatch.delenv(name, raising=False)
    yield home
