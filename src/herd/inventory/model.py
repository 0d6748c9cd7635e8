"""A host as the rest of herd sees it: its name, groups, variables and how to reach it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Host"]


@dataclass(frozen=True, slots=True)
class Host:
    """One inventory host with its variables resolved (Ansible precedence applied).

    The connection fields are read from herd's names or their Ansible twins
    (``address``/``ansible_host``, ``port``/``ansible_port``, ...); ``None`` means
    "not set here": ``~/.ssh/config`` and the SSH defaults apply underneath.
    """

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)
    jump: str | None = None
    known_hosts: str | None = None
    connect_timeout: float | None = None
    local: bool = False  # ansible_connection=local: run on this machine without SSH
    groups: tuple[str, ...] = ()
    vars: Mapping[str, object] = field(default_factory=dict, repr=False)
    connection: str = "ssh"  # ansible_connection as written: "ssh", "local", or another plugin
