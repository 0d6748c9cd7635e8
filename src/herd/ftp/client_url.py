"""FTP URLs (``ftp://user@host:port/path``) and where the password comes from.

``ftpes://`` asks for explicit TLS (AUTH TLS on the normal port, 21 by default)
and ``ftps://`` for implicit TLS (TLS from the first byte, port 990 by default).

The password never comes from the command line (it would show in ``ps`` and
shell history): ``$HERD_FTP_PASSWORD``, then ``~/.netrc``, then a prompt.
A URL with no user logs in as the netrc login for that host, else anonymously.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from herd.errors import ConfigError, UsageError

__all__ = ["PASSWORD_ENV", "Credentials", "FtpUrl", "parse_url", "resolve_credentials"]

PASSWORD_ENV = "HERD_FTP_PASSWORD"
DEFAULT_FTP_PORT = 21
# scheme -> (TLS mode, default port)
SCHEMES = {"ftp": ("", 21), "ftpes": ("explicit", 21), "ftps": ("implicit", 990)}


@dataclass(frozen=True, slots=True)
class FtpUrl:
    """Where to connect, as whom, and which remote path; never a password."""

    host: str
    port: int
    user: str | None
    path: str  # "" when the URL names no path (the login directory)
    tls: str = ""  # "" (none), "explicit" (ftpes://) or "implicit" (ftps://)

    @property
    def scheme(self) -> str:
        return {"": "ftp", "explicit": "ftpes", "implicit": "ftps"}[self.tls]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{user}{host}:{self.port}/{self.path.lstrip('/')}"

    @property
    def server(self) -> str:
        """``host:port`` for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password='***')"


def parse_url(text: str) -> FtpUrl:
    """Split ``ftp[e]s://user@host:port/path``; a password in the URL is refused."""
    parts = urlsplit(text)
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise UsageError(
            f"bad FTP URL {text!r}: use ftp://, ftpes:// (TLS) or ftps:// (implicit TLS)"
            " with user@host:port/path"
        )
    tls, default_port = scheme
    if parts.password is not None:
        raise UsageError(
            f"bad FTP URL {text!r}: no password in URLs (they show in ps and shell history);"
            f" use ${PASSWORD_ENV}, ~/.netrc or the prompt"
        )
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise UsageError(f"bad FTP URL {text!r}: {exc}") from exc
    path = unquote(parts.path)
    # ftp://host/path is relative to the login directory; ftp://host//abs is absolute.
    path = path[1:] if path.startswith("/") else path
    user = unquote(parts.username) if parts.username else None
    return FtpUrl(host=parts.hostname, port=port, user=user, path=path, tls=tls)


def _netrc_entry(host: str, netrc_path: Path | None) -> tuple[str, str] | None:
    path = netrc_path or Path.home() / ".netrc"
    if not path.exists():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except netrc.NetrcParseError as exc:
        raise ConfigError(f"{exc.filename}:{exc.lineno}: {exc.msg}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if entry is None:
        return None
    login, _account, password = entry
    return login, password or ""


def resolve_credentials(
    url: FtpUrl,
    *,
    environ: Mapping[str, str] | None = None,
    netrc_path: Path | None = None,
    prompt: Callable[[str], str] | None = None,
) -> Credentials:
    """The user and password for ``url``: $HERD_FTP_PASSWORD, ~/.netrc, else the prompt."""
    env = os.environ if environ is None else environ
    entry = _netrc_entry(url.host, netrc_path)
    user = url.user or (entry[0] if entry else "anonymous")
    if env.get(PASSWORD_ENV):
        return Credentials(user, env[PASSWORD_ENV])
    if entry is not None and entry[0] == user:
        return Credentials(user, entry[1])
    if user in {"anonymous", "ftp"}:
        return Credentials(user, "anonymous@")
    if prompt is None:
        raise UsageError(
            f"no password for {user}@{url.server}: set ${PASSWORD_ENV}, add it to ~/.netrc,"
            " or run from a terminal"
        )
    return Credentials(user, prompt(f"Password for {user}@{url.server}"))
