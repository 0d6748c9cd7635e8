"""Settings: ``HOME/herd.toml`` read once, by one loader, into frozen dataclasses.

Every value is checked against its field's type hint (``int``, ``float``,
``bool``, ``str``, ``Path``, ``X | None``, ``Literal[...]``, tuples) and its
range, so a wrong type, an unknown key or a value out of range is exit 2 naming
the file and the key, before anything runs. A field may name its own parser in
its metadata (``field(metadata={"parse": ...})``) for values written as text
(sizes, durations, addresses), and its bounds (``min``, ``max``).

Command-line options are merged over these in one place (``merged``), and help
texts show the default actually in force (``help_defaults``).
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from herd.core.sizes import format_size, parse_size
from herd.errors import ConfigError

__all__ = [
    "AgentSettings",
    "LogSettings",
    "RunSettings",
    "Settings",
    "duration",
    "help_defaults",
    "load_section",
    "load_settings",
    "merged",
    "read_toml",
    "size",
]

T = TypeVar("T")


def size(text: object) -> int:
    """A size setting: a number of bytes, or text such as ``64K``, ``1.5M``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    parsed = parse_size(text) if isinstance(text, str) else None
    if parsed is None:
        raise ValueError("a size such as 65536, 64K or 1M")
    return parsed


def duration(text: object) -> float:
    """A duration setting: seconds, or text such as ``90s``, ``5m``, ``1h``."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    if isinstance(text, str):
        value = text.strip().lower()
        for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
            number = value.removesuffix(suffix)
            if number != value:
                try:
                    return float(number) * factor
                except ValueError:
                    break
    raise ValueError("seconds, or a duration such as 90s, 5m or 1h")


def _bounded(low: float | None = None, high: float | None = None, **more: Any) -> dict[str, Any]:
    return {"min": low, "max": high, **more}


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Defaults for run, push and pull."""

    forks: int = field(default=100, metadata=_bounded(1))
    connect_timeout: float = field(default=10.0, metadata=_bounded(0.001, parse=duration))
    command_timeout: float | None = field(default=None, metadata=_bounded(0, parse=duration))
    # bytes of stdout and of stderr kept per host
    output_cap: int = field(default=64 * 1024, metadata=_bounded(0, parse=size))
    confirm_over: int = field(default=500, metadata=_bounded(0))
    host_keys: Literal["strict", "accept-new", "off"] = "strict"


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The operation log."""

    syslog: bool = False  # also send a one-line summary of each operation to syslog
    syslog_address: str = "/dev/log"  # the local syslog's unix datagram socket

    def syslog_target(self, given: bool | None = None) -> str | None:
        """Where summaries go: the socket, or None; ``given`` is --syslog/--no-syslog."""
        wanted = self.syslog if given is None else given
        return self.syslog_address if wanted else None


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The agent that keeps SSH connections between commands (``herd agent``)."""

    # how long an idle connection is kept, and the agent with it; 0 turns the agent off
    persist: float = field(default=60.0, metadata=_bounded(0, parse=duration))


@dataclass(frozen=True, slots=True)
class Settings:
    """``herd.toml``: one table per part of herd."""

    run: RunSettings = field(default_factory=RunSettings)
    log: LogSettings = field(default_factory=LogSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)


# Tables of herd.toml that their own command reads (``herd ftp serve --config``).
_READ_ELSEWHERE = frozenset({"ftp"})


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """``path`` parsed; a missing file is an empty table, anything else wrong is exit 2."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_settings(path: Path) -> Settings:
    """Read ``herd.toml`` at ``path`` if it exists; a missing file means the defaults."""
    raw = read_toml(path, "settings")
    sections = typing.get_type_hints(Settings)
    for name in raw:
        if name not in sections and name not in _READ_ELSEWHERE:
            known = ", ".join(f"[{s}]" for s in sections)
            raise ConfigError(f"{path}: no settings table [{name}] (known: {known})")
    return Settings(
        **{
            name: load_section(cls, raw.get(name), f"{path}: [{name}]")
            for name, cls in sections.items()
        }
    )


def load_section(cls: type[T], table: object, where: str) -> T:
    """An instance of the settings dataclass ``cls`` from a TOML table (None: defaults).

    ``where`` names the file and table in errors: ``herd.toml: [run] forks must be ...``.
    """
    if table is None:
        return cls()
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, raw in table.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"{where} has no setting {key!r}")
        spec = known[name]
        try:
            value = _convert(raw, hints[name], spec.metadata.get("parse"))
            _check_range(value, spec.metadata)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} {key} must be {exc}, not {raw!r}") from None
        values[name] = value
    try:
        return replace(cls(), **values)  # type: ignore[type-var]
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(raw: object, hint: Any, parse: Callable[[object], object] | None) -> object:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if raw is None:  # TOML has no null; kept for settings built from a mapping
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(raw, options[0], parse)
    if parse is not None:
        return parse(raw)
    if origin is Literal:
        if raw not in args:
            raise ValueError("one of " + ", ".join(repr(a) for a in args))
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise TypeError("a list")
        item = args[0] if args else Any
        return tuple(_convert(v, item, None) for v in raw)
    return _scalar(raw, hint)


def _scalar(raw: object, hint: Any) -> object:
    if hint is Any:
        return raw
    if hint is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if hint is Path:
        if not isinstance(raw, str) or not raw:
            raise TypeError("a path")
        return Path(raw).expanduser()
    if isinstance(raw, bool) and hint is not bool:
        raise TypeError(_name(hint))
    if not isinstance(hint, type) or not isinstance(raw, hint):
        raise TypeError(_name(hint))
    return raw


def _name(hint: Any) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _check_range(value: object, metadata: Mapping[str, Any]) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high = metadata.get("min"), metadata.get("max")
    if low is not None and value < low:
        raise ValueError(f"at least {low:g}")
    if high is not None and value > high:
        raise ValueError(f"at most {high:g}")


def merged(settings: T, **given: object) -> T:
    """``settings`` with the command line's values over them; None means "not given".

    The one place where a command-line option and a setting meet: an option left
    unset keeps the setting, an option given replaces it.
    """
    chosen = {name: value for name, value in given.items() if value is not None}
    return replace(settings, **chosen)  # type: ignore[type-var]


def help_defaults(settings: object) -> dict[str, str]:
    """Each field's value in force, as help texts show it (``{forks}`` -> ``100``)."""
    shown: dict[str, str] = {}
    for spec in fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, spec.name)
        if value is None:
            shown[spec.name] = "none"
        elif spec.metadata.get("parse") is size:
            shown[spec.name] = format_size(value)
        else:
            shown[spec.name] = f"{value:g}" if isinstance(value, float) else str(value)
    return shown
