"""``herd ftp serve --config FILE``: a TOML file read once into the frozen ``FtpSettings``.

The keys are ``FtpSettings``' field names (``-`` or ``_``), at the top level or
under an ``[ftp]`` table, so the same text can live in ``herd.toml``::

    listen = ["127.0.0.1:2121", "[::1]:2121"]
    passive_ports = "60000-60099"
    anonymous_root = "/srv/ftp/pub"   # read-only anonymous access; absent = off
    max_connections = 2000
    tls_cert = "/etc/herd/ftp-cert.pem"   # FTPS: AUTH TLS on every listen address
    tls_key = "/etc/herd/ftp-key.pem"
    listen_implicit = ["0.0.0.0:990"]   # implicit TLS (ftps://)
    require_tls = true

Unknown keys and wrong types are refused with the file and key named.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from herd.errors import ConfigError
from herd.ftp.settings import DEFAULT_PORT, FtpSettings

__all__ = ["load_ftp_settings", "parse_listen", "settings_from_mapping"]


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:2121``, ``[::1]:2121``, ``::1`` or ``host`` (default port) -> (host, port)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (end + 1 < len(value) and value[end + 1] != ":"):
            raise ConfigError(f"bad listen address {text!r}: use [IPv6]:PORT")
        host, port_text = value[1:end], value[end + 2 :]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    if not host:
        raise ConfigError(f"bad listen address {text!r}: no host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"bad listen address {text!r}: port must be 0-65535")
    return host, int(port_text)


def _listen(value: object, *, empty_ok: bool = False) -> tuple[tuple[str, int], ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not (items or empty_ok):
        raise TypeError('a list of addresses like "127.0.0.1:2121" or "[::1]:2121"')
    result: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            result.append(parse_listen(item))
        elif isinstance(item, list) and len(item) == 2 and isinstance(item[1], int):
            result.append((str(item[0]), int(item[1])))
        else:
            raise TypeError('a list of addresses like "127.0.0.1:2121" or "[::1]:2121"')
    return tuple(result)


def _port_range(value: object) -> tuple[int, int] | None:
    if isinstance(value, str):
        low, sep, high = value.partition("-")
        if sep and low.strip().isdigit() and high.strip().isdigit():
            return int(low), int(high)
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        return int(value[0]), int(value[1])
    raise TypeError('a range like "60000-60099" or [60000, 60099]')


def _scalar(expected: type[Any]) -> Callable[[object], object]:
    def convert(value: object) -> object:
        if expected is float and type(value) is int:
            return float(value)
        if expected is Path and isinstance(value, str):
            return Path(value).expanduser()
        if type(value) is bool and expected is not bool:
            raise TypeError(expected.__name__)
        if not isinstance(value, expected):
            raise TypeError(expected.__name__)
        return value

    return convert


def _converter(name: str, hint: Any) -> Callable[[object], object]:
    if name == "listen":
        return _listen
    if name == "listen_implicit":
        return lambda value: _listen(value, empty_ok=True)
    if name == "passive_ports":
        return _port_range
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return _scalar(args[0] if is_union and len(args) == 1 else hint)


def settings_from_mapping(table: Mapping[str, object], source: str) -> FtpSettings:
    """Build settings from parsed TOML; ``source`` names the file in errors."""
    hints = typing.get_type_hints(FtpSettings)
    known = {f.name for f in fields(FtpSettings)}
    values: dict[str, object] = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: unknown FTP setting {key!r}")
        try:
            values[name] = _converter(name, hints[name])(raw)
        except TypeError as exc:
            raise ConfigError(f"{source}: {key} must be {exc}") from exc
        except ConfigError as exc:
            raise ConfigError(f"{source}: {key}: {exc}") from exc
    try:
        return FtpSettings(**values)  # type: ignore[arg-type]  # checked field by field above
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_ftp_settings(path: Path | None) -> FtpSettings:
    """Read ``path`` (TOML); None means the defaults (127.0.0.1:2121)."""
    if path is None:
        return FtpSettings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read FTP settings: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    table = raw.get("ftp", raw)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [ftp] must be a table")
    return settings_from_mapping(table, str(path))
