"""The agent's ``check`` request: the files a run's hosts need, read before it is recorded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from herd.core.model import Host
from herd.core.plain import plain
from herd.hosts.agent import check
from herd.hosts.options import ConnectOptions, HostKeyMode, host_for_agent


def body(tmp_path: Path, *hosts: Host, options: ConnectOptions | None = None) -> dict[str, object]:
    """A check request as a client in ``tmp_path`` sends it."""
    return {
        "op": "check",
        "options": plain(options or ConnectOptions(default_host_keys=HostKeyMode.STRICT)),
        "hosts": [plain(h) for h in hosts],
        "cwd": str(tmp_path),
    }


def test_a_missing_key_is_refused_with_the_line_and_error_the_client_would_give(
    tmp_path: Path,
) -> None:
    host = Host(name="web01", address="127.0.0.1", identity_files=("nokey",))
    answer = check(body(tmp_path, host))
    assert answer == {
        "refused": "nokey: cannot read the private key for web01:"
        " [Errno 2] No such file or directory: 'nokey'",
        "kind": "SourceError",
    }


def test_a_relative_key_is_read_from_the_clients_directory_and_the_agents_stays(
    tmp_path: Path,
) -> None:
    (tmp_path / "badkey").write_text("not a key\n")
    before = Path.cwd()
    host = Host(name="web01", address="127.0.0.1", identity_files=("badkey",))
    answer = check(body(tmp_path, host))
    assert answer["refused"] == "badkey: cannot read the private key for web01: Invalid private key"
    assert Path.cwd() == before


def test_unsupported_ssh_options_come_back_as_warnings(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  ConnectionAttempts 3\n")
    options = ConnectOptions(ssh_config=(Path("ssh_config"),))
    host = Host(name="web01", address="127.0.0.1")
    answer = check(body(tmp_path, host, options=options))
    assert list(answer) == ["warnings"]
    assert len(answer["warnings"]) == 1
    assert answer["warnings"][0].startswith("ssh option ConnectionAttempts (the ssh config)")


def test_local_hosts_need_no_file(tmp_path: Path) -> None:
    host = Host(name="here", address="localhost", local=True, identity_files=("nokey",))
    assert check(body(tmp_path, host)) == {"warnings": []}


def test_the_agent_is_handed_paths_that_hold_from_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    host = Host(
        name="web01",
        address="127.0.0.1",
        identity_files=("keys/id", "~/.ssh/id", "/etc/id"),
        known_hosts="kh",
        vars={"ansible_ssh_common_args": "-o Port=22", "motd": "hello"},
    )
    sent = host_for_agent(host)
    assert sent.identity_files == (str(tmp_path / "keys/id"), "~/.ssh/id", "/etc/id")
    assert sent.known_hosts == str(tmp_path / "kh")
    assert sent.vars == {"ansible_ssh_common_args": "-o Port=22"}
    options = ConnectOptions(
        known_hosts=Path("kh"), ssh_config=(Path("cfg"),), identity_files=("k",)
    ).for_agent()
    assert options.known_hosts == tmp_path / "kh"
    assert options.ssh_config == (tmp_path / "cfg",)
    assert options.identity_files == (str(tmp_path / "k"),)
    assert os.path.isabs(options.identity_files[0])
