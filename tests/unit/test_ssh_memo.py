"""The agent keeps each host's OpenSSH options across runs, as long as the files say the same."""

from __future__ import annotations

from pathlib import Path

from herd.core.model import Host
from herd.hosts.ssh_config import SshMemo, SshOptions

HOST = Host(name="web01", address="10.0.0.1", vars={"ansible_ssh_common_args": "-o Port=2200"})


def test_a_second_operation_reuses_the_evaluation_and_still_warns(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host 10.0.0.1\n  User deploy\n  ConnectionAttempts 3\n")
    memo = SshMemo()
    first = SshOptions([config], memo)
    settings = first.for_host(HOST, None, None)
    assert settings.user == "deploy"
    assert settings.port == 2200
    second = SshOptions([config], memo)
    assert second.for_host(HOST, None, None) is settings
    assert second.warnings == first.warnings
    assert len(second.warnings) == 1
    assert "ConnectionAttempts" in second.warnings[0]
    assert Path(settings.config[0]).exists()  # the inventory's arguments, as a file


def test_changed_files_are_read_again(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host 10.0.0.1\n  User deploy\n")
    memo = SshMemo()
    assert SshOptions([config], memo).for_host(HOST, None, None).user == "deploy"
    config.write_text("Host 10.0.0.1\n  User admin\n")
    assert SshOptions([config], memo).for_host(HOST, None, None).user == "admin"


def test_a_change_in_an_included_file_is_read_again(tmp_path: Path) -> None:
    included = tmp_path / "more"
    included.write_text("Host 10.0.0.1\n  User deploy\n")
    config = tmp_path / "config"
    config.write_text(f"Include {included}\n")
    memo = SshMemo()
    assert SshOptions([config], memo).for_host(HOST, None, None).user == "deploy"
    included.write_text("Host 10.0.0.1\n  User admin\n")
    assert SshOptions([config], memo).for_host(HOST, None, None).user == "admin"


def test_a_file_newly_matched_by_an_include_is_read(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    config = tmp_path / "config"
    config.write_text(f"Include {tmp_path}/conf.d/*.conf\nHost *\n  User nobody\n")
    memo = SshMemo()
    assert SshOptions([config], memo).for_host(HOST, None, None).user == "nobody"
    (tmp_path / "conf.d" / "web.conf").write_text("Host 10.0.0.1\n  User deploy\n")
    assert SshOptions([config], memo).for_host(HOST, None, None).user == "deploy"


def test_known_hosts_are_parsed_once_across_operations_until_their_text_changes(
    tmp_path: Path,
) -> None:
    import asyncssh

    from herd.hosts.hostkeys import HostKeyPolicy, KnownHostsFiles
    from herd.hosts.options import HostKeyMode

    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"10.0.0.1 {key}")
    files = KnownHostsFiles(read=(known,), write=known)
    memo = SshMemo()
    first = HostKeyPolicy(by_text=memo.known_hosts).known_hosts(files, HostKeyMode.STRICT)
    again = HostKeyPolicy(by_text=memo.known_hosts).known_hosts(files, HostKeyMode.STRICT)
    assert first is not None and again is first  # the second operation parsed nothing
    known.write_text(f"10.0.0.1 {other}")
    changed = HostKeyPolicy(by_text=memo.known_hosts).known_hosts(files, HostKeyMode.STRICT)
    assert changed is not None and changed is not first
    trusted = changed.match("10.0.0.1", "10.0.0.1", None)[0]
    assert {k.export_public_key().decode() for k in trusted} == {other}
