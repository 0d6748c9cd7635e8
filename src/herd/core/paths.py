"""Where herd keeps its files under one home directory.

The home is chosen by the command line (``--home``, then ``$HERD_HOME``, then
the platform data directory); this module only says what lives where inside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HerdPaths", "home_from_env"]


def home_from_env() -> Path | None:
    """The home named by ``$HERD_HOME``, if it is set."""
    value = os.environ.get("HERD_HOME")
    return Path(value).expanduser() if value else None


@dataclass(frozen=True, slots=True)
class HerdPaths:
    """The files under one herd home."""

    home: Path

    @property
    def audit_db(self) -> Path:
        """The operation log (SQLite)."""
        return self.home / "operations.db"

    @property
    def ftp_users_db(self) -> Path:
        """FTP users, their password hashes, homes, quotas and usage."""
        return self.home / "ftp-users.db"

    @property
    def settings_file(self) -> Path:
        """Optional settings (TOML)."""
        return self.home / "herd.toml"

    @property
    def lab_dir(self) -> Path:
        """The default directory of the lab fleet."""
        return self.home / "lab"
