"""Host key checking: ``strict`` (known keys only), ``accept-new`` (record unknown), ``off``.

known_hosts files are read once per run and shared by every connection. A key
the file does not trust is decided here, with the reason kept for the host's
result: a changed key names its fingerprint, and is never accepted silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import asyncssh

from herd.errors import ConfigError

__all__ = ["HostKeyMode", "HostKeyPolicy", "HostKeyVerdict", "default_known_hosts"]


class HostKeyMode(StrEnum):
    """What to do with a host key known_hosts does not list."""

    STRICT = "strict"
    ACCEPT_NEW = "accept-new"
    OFF = "off"

    @classmethod
    def parse(cls, value: str) -> HostKeyMode:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ConfigError(f"--host-keys {value!r}: choose one of {choices}") from None


def default_known_hosts() -> Path:
    """The user's own known_hosts, as OpenSSH uses it."""
    return Path("~/.ssh/known_hosts").expanduser()


@dataclass(slots=True)
class HostKeyVerdict:
    """Why one connection's host key was refused, kept for the host's result."""

    reason: str = ""


@dataclass(slots=True)
class HostKeyPolicy:
    """One run's host key decisions, with each known_hosts file parsed once."""

    mode: HostKeyMode = HostKeyMode.STRICT
    _parsed: dict[Path, asyncssh.SSHKnownHosts] = field(default_factory=dict)

    def known_hosts(self, path: Path) -> asyncssh.SSHKnownHosts | None:
        """What asyncssh should trust for ``path``; None when checking is off."""
        if self.mode is HostKeyMode.OFF:
            return None
        parsed = self._parsed.get(path)
        if parsed is None:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: cannot read known_hosts: {exc}") from exc
            try:
                parsed = asyncssh.import_known_hosts(text)
            except (ValueError, asyncssh.KeyImportError) as exc:
                raise ConfigError(f"{path}: malformed known_hosts: {exc}") from exc
            self._parsed[path] = parsed
        return parsed

    def decide(
        self,
        path: Path,
        key: asyncssh.SSHKey,
        *,
        name: str,
        host: str,
        addr: str,
        port: int,
        verdict: HostKeyVerdict,
    ) -> bool:
        """Decide on a key known_hosts does not trust; explain a refusal in ``verdict``."""
        fingerprint = key.get_fingerprint("sha256")
        known = self.known_hosts(path)
        listed = bool(known is not None and known.match(host, addr, port)[0])
        if listed:
            verdict.reason = f"host key for {name} changed: {fingerprint} is not the key in {path}"
            return False
        if self.mode is HostKeyMode.ACCEPT_NEW:
            _append_known_host(path, host, port, key)
            return True
        verdict.reason = f"host key for {name} is unknown: {fingerprint} is not in {path}"
        return False


def _append_known_host(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Record a first-seen key the way OpenSSH writes it ([host]:port for other ports)."""
    pattern = host if port == 22 else f"[{host}]:{port}"
    line = f"{pattern} {key.export_public_key('openssh').decode('ascii').strip()}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="ascii") as stream:
        stream.write(line)
        stream.flush()
        os.fsync(stream.fileno())
