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

from collections.abc import Mapping
from pathlib import Path

from herd.core.settings import load_section, read_toml
from herd.errors import ConfigError
from herd.ftp.settings import FtpSettings, parse_listen

__all__ = ["load_ftp_settings", "parse_listen", "settings_from_mapping"]


def settings_from_mapping(table: Mapping[str, object], source: str) -> FtpSettings:
    """Build settings from parsed TOML with herd's one settings loader; ``source`` names
    the file in errors."""
    return load_section(FtpSettings, table, f"{source}: [ftp]")


def load_ftp_settings(path: Path | None) -> FtpSettings:
    """Read ``path`` (TOML); None means the defaults (127.0.0.1:2121)."""
    if path is None:
        return FtpSettings()
    if not path.is_file():
        raise ConfigError(f"{path}: cannot read FTP settings: no such file")
    raw = read_toml(path, "FTP settings")
    table = raw.get("ftp", raw)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [ftp] must be a table")
    return settings_from_mapping(table, str(path))
