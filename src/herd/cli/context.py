"""What every command gets from the global options: the inventories, the home, --debug."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from herd.core.paths import HerdPaths, home_from_env

__all__ = ["AppContext", "default_home", "pass_app"]


def default_home() -> Path:
    """``$HERD_HOME``, else the platform's data directory for herd."""
    from_env = home_from_env()
    if from_env is not None:
        return from_env
    import platformdirs

    return Path(platformdirs.user_data_dir("herd", appauthor=False))


@dataclass(frozen=True, slots=True)
class AppContext:
    """The global options, resolved once and passed down to every command."""

    inventories: tuple[str, ...]
    home: Path
    debug: bool
    argv: tuple[str, ...] = ()  # the command line as typed, for the operation log

    @property
    def paths(self) -> HerdPaths:
        return HerdPaths(self.home)


pass_app = click.make_pass_decorator(AppContext)
