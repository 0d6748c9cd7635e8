"""OpenSSH's client options for one host: ssh's command line in the inventory, then its config.

OpenSSH takes each option from the first place that sets it: its command line
(``-o Key=Value``, ``-J``, ``-p``, ``-l``, ``-i``: here, what the inventory puts
in ``ansible_ssh_common_args`` and ``ansible_ssh_extra_args``), then the config
files (``-F FILE`` given to herd, else ``~/.ssh/config`` and then
``/etc/ssh/ssh_config``). herd's inventory variables and its own command line
come before all of these, as Ansible's do.

asyncssh reads the same config files itself for most options; the command-line
options reach it as a small generated config file placed first. herd evaluates
the options it decides itself (known_hosts files and host-key checking, the jump
host, timeouts, keepalives) with asyncssh's own parser, extended with the
options asyncssh does not read. An option neither understands is named once in
a warning, never dropped in silence; options that only matter to an interactive
ssh (X11, multiplexing, escape characters, ...) are ignored quietly.
"""

from __future__ import annotations

import contextvars
import functools
import getpass
import hashlib
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncssh import SSHKnownHosts
from asyncssh.config import ConfigParseError, SSHClientConfig, SSHConfig

from herd.core.model import Host
from herd.core.paths import runtime_dir
from herd.errors import ConfigError

__all__ = ["SshMemo", "SshOptions", "SshSettings", "ssh_argument_lines"]

SYSTEM_CONFIG = Path("/etc/ssh/ssh_config")
SYSTEM_KNOWN_HOSTS = (Path("/etc/ssh/ssh_known_hosts"), Path("/etc/ssh/ssh_known_hosts2"))
ARGUMENT_VARIABLES = ("ansible_ssh_common_args", "ansible_ssh_extra_args")

# ssh(1) flags with an OpenSSH option behind them (the rest are refused with a warning)
_FLAG_OPTIONS = {"-J": "ProxyJump", "-p": "Port", "-l": "User", "-i": "IdentityFile",
                 "-b": "BindAddress", "-c": "Ciphers", "-m": "MACs"}  # fmt: skip
_SWITCHES = {"-4": "AddressFamily inet", "-6": "AddressFamily inet6", "-A": "ForwardAgent yes",
             "-a": "ForwardAgent no", "-C": "Compression yes"}  # fmt: skip
# ssh(1) switches that change nothing for a command run without a terminal
_HARMLESS_SWITCHES = frozenset({"-q", "-v", "-vv", "-vvv", "-T", "-x", "-X", "-Y", "-n", "-N"})

# Options that only an interactive ssh, or its multiplexing, has a use for: herd runs a
# command and reads its output, so ignoring them changes nothing a user relies on.
_QUIET = frozenset(
    name.lower()
    for name in (
        "AddKeysToAgent", "BatchMode", "ClearAllForwardings", "ControlMaster", "ControlPath",
        "ControlPersist", "DynamicForward", "EnableEscapeCommandline", "EscapeChar",
        "ExitOnForwardFailure", "ForkAfterAuthentication", "ForwardX11", "ForwardX11Timeout",
        "GatewayPorts", "IPQoS", "LocalCommand", "LocalForward", "LogLevel", "LogVerbose",
        "NumberOfPasswordPrompts", "ObscureKeystrokeTiming", "PermitLocalCommand",
        "PermitRemoteOpen", "RemoteForward", "SessionType", "StdinNull",
        "StreamLocalBindMask", "StreamLocalBindUnlink", "Tunnel", "TunnelDevice",
        "UseKeychain", "VisualHostKey", "XAuthLocation",
    )
)  # fmt: skip
# Canonical spellings, to name an unsupported option as its documentation does
_NAMES = {
    name.lower(): name
    for name in (
        "CanonicalizeHostname", "CheckHostIP", "ConnectionAttempts", "FingerprintHash",
        "HostbasedAcceptedAlgorithms", "IgnoreUnknown", "KnownHostsCommand",
        "ProxyUseFdpass", "PubkeyAcceptedAlgorithms", "RequiredRSASize",
        "RevokedHostKeys", "SecurityKeyProvider", "UpdateHostKeys", "VerifyHostKeyDNS",
    )
}  # fmt: skip

_UNKNOWN: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "herd_unknown_ssh_options", default=None
)


class _Handlers(dict[str, tuple[str, Callable[..., None]]]):
    """asyncssh's option table, noting the options it has no handler for while herd reads."""

    def __missing__(self, option: str) -> tuple[str, Callable[..., None]]:
        found = _UNKNOWN.get()
        if found is not None:
            found.add(option)
        raise KeyError(option)


class _HerdConfig(SSHClientConfig):
    """asyncssh's client config, plus the options herd decides that asyncssh does not read."""

    _handlers = _Handlers(
        {
            **SSHClientConfig._handlers,
            "stricthostkeychecking": ("StrictHostKeyChecking", SSHClientConfig._set_string),
            "hashknownhosts": ("HashKnownHosts", SSHClientConfig._set_bool),
        }
    )


@dataclass(frozen=True, slots=True)
class SshSettings:
    """What OpenSSH's options say for one host, in the words herd uses."""

    config: tuple[str, ...]  # the files asyncssh reads, the generated command-line one first
    user: str | None = None  # User, when the options name one
    user_known_hosts: tuple[Path, ...] = ()  # UserKnownHostsFile: the first one is written to
    global_known_hosts: tuple[Path, ...] = SYSTEM_KNOWN_HOSTS
    strict_host_key_checking: str | None = None  # yes, accept-new, no, off, ask
    hash_known_hosts: bool = False
    proxy_jump: str | None = None
    connect_timeout: float | None = None
    keepalive_interval: float | None = None
    keepalive_count_max: int | None = None
    ciphers: bool = False  # the options choose the ciphers: herd keeps out of it
    host_key_algorithms: bool = False  # the options choose them (HostKeyAlgorithms): the same
    known_as: str | None = None  # HostKeyAlias, else HostName: the name known_hosts has it under
    port: int | None = None  # Port, when the options (or herd's own) name one


class SshOptions:
    """OpenSSH's options for the hosts of one operation, evaluated once per host.

    ``files`` are the config files given with ``-F``; ``None`` means OpenSSH's own
    (``~/.ssh/config`` when readable, then ``/etc/ssh/ssh_config``).
    """

    def __init__(self, files: Sequence[Path] | None = None, memo: SshMemo | None = None) -> None:
        """``memo`` keeps evaluations past this operation, for a process that serves many."""
        if files is None:
            user = Path("~/.ssh/config").expanduser()
            files = [p for p in (user, SYSTEM_CONFIG) if os.access(p, os.R_OK)]
        self.files = tuple(str(p) for p in files)
        self.warnings: list[str] = []
        self._generated: dict[tuple[str, ...], str] = {}
        self._settings: dict[tuple[object, ...], SshSettings] = {}
        self._memo = memo
        self._contents: str | None = None  # the files' fingerprint, once the memo needs it

    def for_host(self, host: Host, user: str | None, port: int | None) -> SshSettings:
        """The settings for ``host`` reached as ``user`` on ``port`` (None: not chosen yet)."""
        lines = ssh_argument_lines(host, self._warn)
        key = (host.address, user, port, lines)
        found = self._settings.get(key)
        if found is None:
            found = self._settings[key] = self._remembered(host, user, port, lines)
        return found

    def _remembered(
        self, host: Host, user: str | None, port: int | None, lines: tuple[str, ...]
    ) -> SshSettings:
        """``_evaluate``, or what it gave for the same host and the same files' contents."""
        if self._memo is not None and self._contents is None:
            self._contents = _fingerprint(self.files) or ""
        if self._memo is None or not self._contents:
            settings, notes = self._evaluate(host, user, port, lines)
        else:
            key = (self._contents, host.address, user, port, lines)
            entry = self._memo.get(key)
            if entry is None:
                entry = self._memo.put(key, self._evaluate(host, user, port, lines))
            elif lines:
                self._generated_file(lines)  # still there for asyncssh to read
            settings, notes = entry
        for note in notes:
            self._warn(note)
        return settings

    def _evaluate(
        self, host: Host, user: str | None, port: int | None, lines: tuple[str, ...]
    ) -> tuple[SshSettings, tuple[str, ...]]:
        """The settings, and what in the options herd does not follow."""
        paths = ([self._generated_file(lines)] if lines else []) + list(self.files)
        unknown: set[str] = set()
        with _noting_unknown(unknown):
            try:
                config = _HerdConfig.load(
                    None, paths, False, False, False, _local_user(), user or (), host.address,
                    port or (),
                )  # fmt: skip
            except (ConfigParseError, OSError) as exc:
                raise ConfigError(f"ssh config for {host.name}: {exc}") from exc
        where = "the inventory's ssh arguments" if lines else "the ssh config"
        notes = tuple(
            f"ssh option {_NAMES.get(option, option)} ({where}) is not supported"
            for option in sorted(unknown - _QUIET)
        )
        return _settings(config, tuple(paths)), notes

    def _generated_file(self, lines: tuple[str, ...]) -> str:
        """The command-line options as a config file asyncssh reads first.

        Named by its content in this user's private runtime directory, so every
        process of the operation (transfer workers too) finds the same file, and
        written whole before it gets its name.
        """
        path = self._generated.get(lines)
        if path is None:
            text = "".join(line + "\n" for line in lines)
            digest = hashlib.sha256(text.encode()).hexdigest()[:32]
            target = runtime_dir() / f"ssh-args-{digest}.conf"
            if not target.exists():
                with tempfile.NamedTemporaryFile(
                    "w", dir=target.parent, prefix=".ssh-args-", delete=False, encoding="utf-8"
                ) as scratch:
                    scratch.write(text)
                Path(scratch.name).replace(target)
            path = self._generated[lines] = str(target)
        return path

    def _warn(self, text: str) -> None:
        warning = f"{text}; herd ignores it"
        if warning not in self.warnings:
            self.warnings.append(warning)


class SshMemo:
    """Evaluations of OpenSSH's options kept across operations, by the agent.

    An entry is found only for the same host, user, port and inventory arguments, and
    the same contents of the config files and of those they include. Parsed
    known_hosts files are kept beside them, found by their text.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: dict[tuple[object, ...], tuple[SshSettings, tuple[str, ...]]] = {}
        self._limit = limit
        self.known_hosts: dict[str, SSHKnownHosts] = {}  # parsed, by the files' text

    def get(self, key: tuple[object, ...]) -> tuple[SshSettings, tuple[str, ...]] | None:
        return self._entries.get(key)

    def put(
        self, key: tuple[object, ...], entry: tuple[SshSettings, tuple[str, ...]]
    ) -> tuple[SshSettings, tuple[str, ...]]:
        if len(self._entries) >= self._limit:  # contents that changed leave stale entries
            self._entries.clear()
        self._entries[key] = entry
        return entry


_INCLUDE = re.compile(rb"^[ \t]*include[ \t=]+(.*)$", re.IGNORECASE | re.MULTILINE)
_INCLUDE_DEPTH = 16  # as deep as OpenSSH follows Include


def _fingerprint(files: Sequence[str]) -> str | None:
    """The config files' contents, and those of the files they ``Include`` (found as
    asyncssh finds them), hashed; None when one cannot be read or named."""
    digest = hashlib.sha256()
    pending = [(Path(name), 0) for name in reversed(files)]
    while pending:
        path, depth = pending.pop()
        try:
            data = path.read_bytes()
        except OSError:
            return None
        digest.update(f"{len(str(path))}:{path}{len(data)}:".encode() + data)
        for match in _INCLUDE.finditer(data):
            included = _included(match.group(1).decode("utf-8", "replace"))
            if included is None or depth >= _INCLUDE_DEPTH:
                return None
            pending.extend((p, depth + 1) for p in reversed(included))
    return digest.hexdigest()


def _included(arguments: str) -> list[Path] | None:
    """The files an ``Include`` line names, in asyncssh's order; None if it quotes a name."""
    if '"' in arguments or "'" in arguments:
        return None
    found: list[Path] = []
    for pattern in arguments.split():
        path = Path(pattern).expanduser()
        base, rest = (
            (Path(path.anchor), str(Path(*path.parts[1:])))
            if path.anchor
            else (Path("~", ".ssh").expanduser(), pattern)
        )
        found.extend(p for p in base.glob(rest) if p.is_file())
    return found


@contextmanager
def _noting_unknown(found: set[str]) -> Iterator[None]:
    token = _UNKNOWN.set(found)
    try:
        yield
    finally:
        _UNKNOWN.reset(token)


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _settings(config: SSHConfig, paths: tuple[str, ...]) -> SshSettings:
    def get(option: str) -> Any:
        return config.get(option)

    user_files = get("UserKnownHostsFile")
    global_files = get("GlobalKnownHostsFile")
    timeout, interval, count = get("ConnectTimeout"), get("ServerAliveInterval"), None
    if get("ServerAliveCountMax") is not None:
        count = int(get("ServerAliveCountMax"))
    strict = get("StrictHostKeyChecking")
    return SshSettings(
        config=paths,
        user=None if get("User") is None else str(get("User")),
        user_known_hosts=tuple(_known_hosts_files(user_files)),
        global_known_hosts=(
            SYSTEM_KNOWN_HOSTS if global_files is None else tuple(_known_hosts_files(global_files))
        ),
        strict_host_key_checking=None if strict is None else str(strict).lower(),
        hash_known_hosts=bool(get("HashKnownHosts")),
        proxy_jump=None if get("ProxyJump") in (None, "none") else str(get("ProxyJump")),
        connect_timeout=None if timeout is None else float(timeout),
        keepalive_interval=None if interval is None else float(interval),
        keepalive_count_max=count,
        ciphers=get("Ciphers") is not None,
        host_key_algorithms=get("HostKeyAlgorithms") is not None,
        known_as=get("HostKeyAlias") or get("Hostname"),
        port=None if get("Port") is None else int(get("Port")),
    )


def _known_hosts_files(value: Any) -> Iterator[Path]:
    for name in value or ():
        if str(name).lower() != "none":
            yield Path(str(name)).expanduser()


def ssh_argument_lines(host: Host, warn: Callable[[str], None]) -> tuple[str, ...]:
    """The config lines ssh's command-line arguments in the inventory stand for.

    The arguments are split as the shell would, so ``-J`` inside another
    option's value (a path such as ``/tmp/x-Jy/known_hosts``) is not a jump.
    """
    texts = tuple(
        text if isinstance(text, str) else None
        for text in (host.vars.get(variable) for variable in ARGUMENT_VARIABLES)
    )
    try:
        lines, notes = _argument_lines(texts)
    except ValueError as exc:
        raise ConfigError(f"{host.name}: {exc}") from None
    for note in notes:
        warn(note)
    return lines


@functools.lru_cache(maxsize=1024)
def _argument_lines(texts: tuple[str | None, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``ssh_argument_lines`` of the variables' texts, and its warnings: most hosts of a
    fleet share the same arguments, and the agent reads every host on every run."""
    lines: list[str] = []
    notes: list[str] = []
    for variable, text in zip(ARGUMENT_VARIABLES, texts, strict=True):
        if text is None or not text.strip():
            continue
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise ValueError(f"{variable}: {exc}") from None
        lines.extend(_lines(words, variable, notes.append))
    return tuple(lines), tuple(notes)


def _lines(words: list[str], variable: str, warn: Callable[[str], None]) -> Iterator[str]:
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        flag = word[:2]
        if flag == "-o" or flag in _FLAG_OPTIONS:
            value = word[2:]
            if not value and index < len(words):
                value, index = words[index], index + 1
            if flag == "-o":
                option, _, rest = value.replace("=", " ", 1).partition(" ")
                yield f"{option} {rest.strip()}"
            else:
                yield f"{_FLAG_OPTIONS[flag]} {value}"
        elif word in _SWITCHES:
            yield _SWITCHES[word]
        elif word not in _HARMLESS_SWITCHES:
            warn(f"ssh argument {word!r} in {variable} is not supported")
