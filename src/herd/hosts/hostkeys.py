"""Host key checking: ``strict`` (known keys only), ``accept-new`` (record unknown), ``off``.

Each host's keys are looked up in its known_hosts files (the user's, then the
system's, as OpenSSH reads them); each set of files is read once per run and
shared by every connection. A key the files do not trust is decided here, with
the reason kept for the host's result. A host the files do not list at all is
``hostkey_unknown`` (first contact: accept it with ``--host-keys accept-new`` or
``ssh-keyscan``); a host listed with another key is ``hostkey_mismatch`` (the
man-in-the-middle alarm), never accepted, whatever the mode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from herd.core.model import Status
from herd.core.paths import expanded, private_dir
from herd.errors import ConfigError
from herd.hosts.options import HostKeyMode

__all__ = [
    "HostKeyMode",
    "HostKeyPolicy",
    "HostKeyVerdict",
    "KnownHostsFiles",
    "default_known_hosts",
]


def default_known_hosts() -> Path:
    """The user's own known_hosts, as OpenSSH uses it."""
    return expanded("~/.ssh/known_hosts")


@dataclass(frozen=True, slots=True)
class KnownHostsFiles:
    """Where one host's key is looked up, and where a first-seen key is recorded."""

    read: tuple[Path, ...]  # the user's files, then the system's
    write: Path  # accept-new appends here (OpenSSH's first UserKnownHostsFile)
    hashed: bool = False  # HashKnownHosts: record the host name hashed, as ssh-keygen -H


@dataclass(slots=True)
class HostKeyVerdict:
    """Why one connection's host key was refused, kept for the host's result."""

    reason: str = ""
    status: Status = Status.HOSTKEY_MISMATCH


_KNOWN_HOSTS_KEPT = 64  # texts of known_hosts files an agent keeps parsed


@dataclass(slots=True)
class HostKeyPolicy:
    """One run's host key decisions, with each set of known_hosts files parsed once.

    ``by_text``: known_hosts parsed by earlier operations (the agent's), found by the
    files' text, so a file changed since is parsed again.
    """

    _parsed: dict[tuple[Path, ...], asyncssh.SSHKnownHosts] = field(default_factory=dict)
    by_text: dict[str, asyncssh.SSHKnownHosts] | None = None

    def known_hosts(
        self, files: KnownHostsFiles, mode: HostKeyMode
    ) -> asyncssh.SSHKnownHosts | None:
        """What asyncssh should trust for ``files``; None when checking is off."""
        if mode is HostKeyMode.OFF:
            return None
        parsed = self._parsed.get(files.read)
        if parsed is None:
            text = "".join(_read(path) for path in files.read)
            parsed = None if self.by_text is None else self.by_text.get(text)
            if parsed is None:
                try:
                    parsed = asyncssh.import_known_hosts(text)
                except (ValueError, asyncssh.KeyImportError) as exc:
                    names = ", ".join(str(p) for p in files.read)
                    raise ConfigError(f"{names}: malformed known_hosts: {exc}") from exc
                if self.by_text is not None:
                    if len(self.by_text) >= _KNOWN_HOSTS_KEPT:
                        self.by_text.clear()
                    self.by_text[text] = parsed
            self._parsed[files.read] = parsed
        return parsed

    def decide(
        self,
        files: KnownHostsFiles,
        mode: HostKeyMode,
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
        known = self.known_hosts(files, mode)
        listed = bool(known is not None and any(known.match(host, addr, port)[:3]))
        where = _where(files)
        if listed:
            verdict.status = Status.HOSTKEY_MISMATCH
            verdict.reason = f"host key for {name} changed: {fingerprint} is not the key in {where}"
            return False
        if mode is HostKeyMode.ACCEPT_NEW:
            _append_known_host(files, host, port, key)
            return True
        verdict.status = Status.HOSTKEY_UNKNOWN
        verdict.reason = (
            f"host key for {name} is unknown: {fingerprint} is not in {where}"
            " (trust it with --host-keys accept-new, or add it with ssh-keyscan)"
        )
        return False


def _where(files: KnownHostsFiles) -> str:
    """The files to name in a reason: the one herd records to, and any other that exists."""
    shown = [p for p in files.read if p == files.write or p.exists()]
    return " or ".join(str(p) for p in shown)


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read known_hosts: {exc}") from exc
    return text if text.endswith("\n") or not text else text + "\n"


def _append_known_host(files: KnownHostsFiles, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Record a first-seen key the way OpenSSH writes it ([host]:port for other ports)."""
    pattern = host if port == 22 else f"[{host}]:{port}"
    if files.hashed:
        salt = os.urandom(20)
        digest = hmac.new(salt, pattern.encode(), hashlib.sha1).digest()
        pattern = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    line = f"{pattern} {key.export_public_key('openssh').decode('ascii').strip()}\n"
    if not files.write.parent.is_dir():  # ~/.ssh made 0700, as OpenSSH makes it
        private_dir(files.write.parent)
    with files.write.open("a", encoding="ascii") as stream:
        stream.write(line)
        stream.flush()
        os.fsync(stream.fileno())
