"""Settings, loaded once from ``HOME/herd.toml`` into frozen dataclasses and passed down.

Command-line options override these; these override the built-in defaults.
The FTP server has its own settings file (``herd ftp serve --config``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from herd.errors import ConfigError

__all__ = ["LogSettings", "RunSettings", "Settings", "load_settings"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Defaults for run, push and pull."""

    forks: int = 100
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    output_cap: int = 64 * 1024  # bytes of stdout and of stderr kept per host
    confirm_over: int = 500
    host_keys: str = "strict"  # strict | accept-new | off


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The operation log."""

    syslog: bool = False  # also send a one-line summary of each operation to syslog
    syslog_address: str = "/dev/log"  # the local syslog's unix datagram socket


@dataclass(frozen=True, slots=True)
class Settings:
    run: RunSettings = field(default_factory=RunSettings)
    log: LogSettings = field(default_factory=LogSettings)


def _section(cls: type[Any], table: object, path: Path, name: str) -> Any:
    default = cls()
    if table is None:
        return default
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    known = {f.name: type(getattr(default, f.name)) for f in fields(cls)}
    values: dict[str, object] = {}
    for key, raw in table.items():
        key_name = key.replace("-", "_")
        if key_name not in known:
            raise ConfigError(f"{path}: [{name}] has no setting {key!r}")
        expected = known[key_name]
        value = float(raw) if expected is float and type(raw) is int else raw
        if expected is not type(None) and not isinstance(value, expected):
            raise ConfigError(f"{path}: [{name}] {key} must be {expected.__name__}")
        values[key_name] = value
    return replace(default, **values)


def load_settings(path: Path) -> Settings:
    """Read ``path`` if it exists; a missing file means the defaults."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read settings: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return Settings(
        run=_section(RunSettings, raw.get("run"), path, "run"),
        log=_section(LogSettings, raw.get("log"), path, "log"),
    )
