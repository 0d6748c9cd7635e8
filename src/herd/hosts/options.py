"""How an operation reaches its hosts, as plain data: no asyncssh here.

The command line builds these before it knows who will connect (its own
process, worker processes, the agent or a gateway), and sends them to the
others as they are; so a run handed to the agent never loads the SSH library
in the command line's process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from herd.core.model import Host
from herd.errors import ConfigError

__all__ = [
    "GATEWAY_VARIABLE",
    "ConnectOptions",
    "HostKeyMode",
    "gateway_names",
    "host_for_agent",
    "host_for_worker",
]

GATEWAY_VARIABLE = "herd_gateway"  # the inventory host a host is reached through


class HostKeyMode(StrEnum):
    """What to do with a host key known_hosts does not list."""

    STRICT = "strict"
    ACCEPT_NEW = "accept-new"
    OFF = "off"

    @classmethod
    def parse(cls, value: str, where: str = "--host-keys") -> HostKeyMode:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ConfigError(f"{where} {value!r}: choose one of {choices}") from None

    @classmethod
    def from_openssh(cls, value: str) -> HostKeyMode | None:
        """OpenSSH's ``StrictHostKeyChecking``: yes, accept-new, no/off; ask has no terminal."""
        return {
            "yes": cls.STRICT,
            "ask": cls.STRICT,
            "accept-new": cls.ACCEPT_NEW,
            "no": cls.OFF,
            "off": cls.OFF,
        }.get(value.lower())


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How to connect, the same for every host of one operation.

    ``None`` in the first group means "not given on herd's command line": the
    host's OpenSSH options decide, then the ``default_`` value (herd.toml).
    ``user``, ``port`` and ``identity_files`` (``-u``, ``--port``,
    ``--private-key``) apply to hosts whose inventory names none, as Ansible's do.
    """

    connect_timeout: float | None = None
    host_keys: HostKeyMode | None = None
    known_hosts: Path | None = None  # overrides Host.known_hosts and the ssh options
    password: str | None = field(default=None, repr=False)  # from -k/--ask-pass
    agent: bool = True  # use ssh-agent when SSH_AUTH_SOCK is set
    agent_path: str | None = None  # the ssh-agent socket (None: $SSH_AUTH_SOCK); herd's agent
    # is handed its client's, which may differ from its own
    ssh_config: tuple[Path, ...] | None = None  # -F; None: ~/.ssh/config, /etc/ssh/ssh_config
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    default_connect_timeout: float = 10.0
    default_host_keys: HostKeyMode = HostKeyMode.STRICT

    def with_own_ssh_agent(self) -> ConnectOptions:
        """These options with this process's ssh-agent socket named, for another process
        (herd's agent) whose own environment may name another, or none."""
        path = self.agent_path or os.environ.get("SSH_AUTH_SOCK")
        return replace(self, agent=bool(self.agent and path), agent_path=path)

    def for_agent(self) -> ConnectOptions:
        """These options as herd's agent must read them: this process's ssh-agent socket,
        and every file named by a path that holds from the agent's own directory too."""
        return replace(
            self.with_own_ssh_agent(),
            known_hosts=None if self.known_hosts is None else _absolute(self.known_hosts),
            ssh_config=None
            if self.ssh_config is None
            else tuple(_absolute(p) for p in self.ssh_config),
            identity_files=tuple(str(_absolute(Path(p))) for p in self.identity_files),
        )


def _absolute(path: Path) -> Path:
    """``path`` as another process, in another directory, finds it (``~`` is left to it)."""
    return path if path.is_absolute() or str(path).startswith("~") else path.absolute()


# The variables a worker needs to reach a host as herd's own process would: ssh's
# arguments and become. The rest of the inventory's variables stay here.
_REACH_VARIABLES = (
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_become",
    "herd_gateway_command",
)


def _reach_variables(host: Host) -> dict[str, object]:
    return {k: v for k, v in host.vars.items() if k.startswith(_REACH_VARIABLES)}


def host_for_worker(host: Host) -> Host:
    """``host`` with only the variables that decide how it is reached."""
    return replace(host, vars=_reach_variables(host))


def host_for_agent(host: Host) -> Host:
    """``host_for_worker``, with the files its inventory names found from any directory."""
    return replace(
        host,
        vars=_reach_variables(host),
        identity_files=tuple(_findable(p) for p in host.identity_files),
        known_hosts=None if host.known_hosts is None else _findable(host.known_hosts),
    )


def _findable(path: str) -> str:
    """``path`` as another process, in another directory, finds it (``~`` is left to it)."""
    return path if path.startswith(("/", "~")) else str(Path(path).absolute())


def gateway_names(hosts: Iterable[Host]) -> set[str]:
    """The names the hosts' ``herd_gateway`` variables give."""
    return {str(h.vars[GATEWAY_VARIABLE]) for h in hosts if h.vars.get(GATEWAY_VARIABLE)}
