"""What crosses the agent's socket comes back as it went: hosts, connect options, commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from herd.core.model import Host
from herd.core.plain import plain, typed
from herd.core.settings import load_settings
from herd.errors import ConfigError
from herd.hosts.become import Become
from herd.hosts.command import RemoteCommand
from herd.hosts.connect import ConnectOptions
from herd.hosts.hostkeys import HostKeyMode


def through_json(value: object) -> object:
    """``value`` as the agent's socket carries it: plain data, one JSON line."""
    return json.loads(json.dumps(plain(value)))


def test_a_host_crosses_the_socket_whole() -> None:
    host = Host(
        name="web01",
        address="10.0.0.1",
        port=2222,
        user="deploy",
        identity_files=("~/.ssh/id_deploy",),
        password="s3cret",
        jump="bastion",
        known_hosts="/etc/herd/known_hosts",
        connect_timeout=4.5,
        groups=("web", "prod"),
        vars={"ansible_become_user": "www", "n": 3},
    )
    assert typed(Host, through_json(host)) == host


def test_connect_options_cross_the_socket_with_the_clients_ssh_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/1000/ssh-agent.sock")
    options = ConnectOptions(
        connect_timeout=3.0,
        host_keys=HostKeyMode.OFF,
        known_hosts=Path("/tmp/kh"),
        password="pw",
        ssh_config=(Path("/tmp/ssh_config"),),
        user="bob",
        port=2200,
        identity_files=("/tmp/key",),
        default_host_keys=HostKeyMode.ACCEPT_NEW,
    )
    back = typed(ConnectOptions, through_json(options.with_own_ssh_agent()))
    assert back.agent_path == "/run/user/1000/ssh-agent.sock"
    assert replace(back, agent_path=None) == options


def test_without_an_ssh_agent_here_the_agent_uses_none_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    back = typed(ConnectOptions, through_json(ConnectOptions().with_own_ssh_agent()))
    assert (back.agent, back.agent_path) == (False, None)


def test_a_command_crosses_the_socket_with_its_become_and_stdin() -> None:
    command = RemoteCommand(
        command="systemctl restart nginx",
        env=(("A", "1"), ("B", "two words")),
        become=Become(method="sudo", user="root", password="pw"),
        stdin=Path("/tmp/in"),
        timeout=30.0,
        output_cap=1024,
        script_text="#!/bin/sh\necho hi\n",
    )
    assert typed(RemoteCommand, through_json(command)) == command


def test_agent_persist_is_a_duration_and_zero_is_allowed(tmp_path: Path) -> None:
    settings = tmp_path / "herd.toml"
    settings.write_text('[agent]\npersist = "90s"\n')
    assert load_settings(settings).agent.persist == 90.0
    settings.write_text("[agent]\npersist = 0\n")
    assert load_settings(settings).agent.persist == 0.0
    settings.write_text("[agent]\npersist = -1\n")
    with pytest.raises(ConfigError, match=r"\[agent\] persist must be at least 0"):
        load_settings(settings)
