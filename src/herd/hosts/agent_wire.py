"""A run's connect options and command as plain data, for the agent's socket.

The client sends them once per operation; the agent rebuilds them for that
request only. Secrets in them (an SSH or become password) live as long as the
request: nothing here is kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from herd.hosts.become import Become
from herd.hosts.command import RemoteCommand
from herd.hosts.connect import ConnectOptions
from herd.hosts.hostkeys import HostKeyMode

__all__ = ["command_from_wire", "command_to_wire", "options_from_wire", "options_to_wire"]


def options_to_wire(options: ConnectOptions) -> dict[str, Any]:
    """``options`` as the client has them, its ssh-agent socket made explicit."""
    agent_path = options.agent_path or os.environ.get("SSH_AUTH_SOCK")
    return {
        "connect_timeout": options.connect_timeout,
        "host_keys": None if options.host_keys is None else options.host_keys.value,
        "known_hosts": None if options.known_hosts is None else str(options.known_hosts),
        "password": options.password,
        "agent": bool(options.agent and agent_path),
        "agent_path": agent_path,
        "ssh_config": None if options.ssh_config is None else [str(p) for p in options.ssh_config],
        "user": options.user,
        "port": options.port,
        "identity_files": list(options.identity_files),
        "default_connect_timeout": options.default_connect_timeout,
        "default_host_keys": options.default_host_keys.value,
    }


def options_from_wire(body: dict[str, Any]) -> ConnectOptions:
    """The options ``options_to_wire`` sent; KeyError, TypeError or ValueError if malformed."""
    ssh_config = body["ssh_config"]
    return ConnectOptions(
        connect_timeout=body["connect_timeout"],
        host_keys=None if body["host_keys"] is None else HostKeyMode(body["host_keys"]),
        known_hosts=None if body["known_hosts"] is None else Path(body["known_hosts"]),
        password=body["password"],
        agent=bool(body["agent"]),
        agent_path=body["agent_path"],
        ssh_config=None if ssh_config is None else tuple(Path(p) for p in ssh_config),
        user=body["user"],
        port=body["port"],
        identity_files=tuple(str(p) for p in body["identity_files"]),
        default_connect_timeout=float(body["default_connect_timeout"]),
        default_host_keys=HostKeyMode(body["default_host_keys"]),
    )


def command_to_wire(command: RemoteCommand) -> dict[str, Any]:
    """The command every host runs (its ``--stdin`` file by path: the agent is this user)."""
    become = command.become
    return {
        "command": command.command,
        "env": [list(pair) for pair in command.env],
        "become": None
        if become is None
        else {"method": become.method, "user": become.user, "password": become.password},
        "stdin": None if command.stdin is None else str(command.stdin),
        "timeout": command.timeout,
        "output_cap": command.output_cap,
        "script_text": command.script_text,
    }


def command_from_wire(body: dict[str, Any]) -> RemoteCommand:
    """The command ``command_to_wire`` sent; KeyError, TypeError or ValueError if malformed."""
    become = body["become"]
    return RemoteCommand(
        command=str(body["command"]),
        env=tuple((str(name), str(value)) for name, value in body["env"]),
        become=None
        if become is None
        else Become(method=become["method"], user=become["user"], password=become["password"]),
        stdin=None if body["stdin"] is None else Path(body["stdin"]),
        timeout=body["timeout"],
        output_cap=int(body["output_cap"]),
        script_text=body["script_text"],
    )
