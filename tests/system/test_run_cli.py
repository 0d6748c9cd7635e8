"""``herd run`` end to end on the OpenSSH fleet: output modes, @failed, ProxyJump, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from herd.cli.main import main
from herd.core.audit import AuditLog

from .conftest import Fleet, both_engines

pytestmark = pytest.mark.system

FAIL_ON = 'case "$SSH_CONNECTION" in *" {a} "*|*" {b} "*) echo bad; exit 3;; esac; echo fine'


def json_rows(text: str) -> dict[str, dict[str, object]]:
    return {row["host"]: row for row in map(json.loads, text.splitlines())}


@both_engines
def test_gather_groups_identical_hosts_under_folded_names(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-i", str(lab_fleet.inventory), "run", "web", "-b", "--", "echo same"])
    out, err = capsys.readouterr()
    assert code == 0, err
    # the lab has a group "web": web[01-04] would be its hosts 1 to 4, a subscript
    assert out.splitlines() == ["──── web0[1-4] (4) ────", "same"]
    assert err.startswith("4 hosts: 4 ok in ")


@both_engines
def test_live_lines_name_the_host_on_every_line(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-i", str(lab_fleet.inventory), "run", "db", "--", "echo a; echo b >&2"])
    out, err = capsys.readouterr()
    assert code == 0
    # the hosts' stdout on stdout, their stderr on stderr: a pipe gets only stdout
    assert sorted(out.splitlines()) == ["db01 | a", "db02 | a"]
    assert sorted(line for line in err.splitlines() if " ! " in line) == ["db01 ! b", "db02 ! b"]


@both_engines
def test_failed_retries_exactly_the_hosts_that_were_not_ok(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = str(lab_fleet.inventory)
    command = FAIL_ON.format(a=lab_fleet.host("web02").address, b=lab_fleet.host("db01").address)
    assert main(["-i", inventory, "run", "all", "--json", "--", command]) == 1
    first = json_rows(capsys.readouterr().out)
    assert {h for h, r in first.items() if r["status"] == "failed"} == {"web02", "db01"}
    assert first["web02"]["exit_status"] == 3
    assert main(["-i", inventory, "run", "@failed", "--json", "--", "echo again"]) == 0
    assert sorted(json_rows(capsys.readouterr().out)) == ["db01", "web02"]


@both_engines
def test_out_dir_holds_each_hosts_output_and_exit_status(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    code = main(
        ["-i", str(lab_fleet.inventory), "run", "cache", "-o", str(out_dir), "--", "echo x; exit 2"]
    )
    capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "cache01.err", "cache01.exit", "cache01.out", "cache02.err", "cache02.exit", "cache02.out",
    ]  # fmt: skip
    assert (out_dir / "cache01.out").read_text() == "x\n"
    assert (out_dir / "cache02.exit").read_text() == "2\n"


@both_engines
def test_env_stdin_and_the_operation_log_record(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("from stdin\n")
    argv = ["-i", str(lab_fleet.inventory), "run", "web01", "--json", "--env", "GREETING=hi there",
            "--stdin", str(feed), "--", 'echo "$GREETING"; cat']  # fmt: skip
    assert main(argv) == 0
    assert json_rows(capsys.readouterr().out)["web01"]["stdout"] == "hi there\nfrom stdin\n"
    with AuditLog(isolated_env / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None
        assert (record.kind, record.status, record.pattern, record.hosts) == (
            "run", "ok", "web01", ["web01"],
        )  # fmt: skip
        assert record.argv == ["herd", *argv]
        assert record.command == 'echo "$GREETING"; cat'


@both_engines
def test_a_command_that_exits_without_reading_its_stdin_is_not_a_lost_connection(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_bytes(b"unread\n" * 1000)
    for _ in range(5):  # the command is often gone, channel closed, before herd writes
        argv = ["-i", str(lab_fleet.inventory), "run", "all", "--json", "--stdin", str(feed),
                "--", "exit 3"]  # fmt: skip
        assert main(argv) == 1
        rows = json_rows(capsys.readouterr().out)
        assert {(r["status"], r["exit_status"]) for r in rows.values()} == {("failed", 3)}


@both_engines
def test_proxyjump_from_an_ssh_config_file_reaches_a_host_through_another(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jump, target = lab_fleet.host("web01"), lab_fleet.host("db02")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host behind-jump\n  HostName {target.address}\n  Port {target.port}\n"
        f"  User {lab_fleet.user}\n  IdentityFile {lab_fleet.client_key}\n  ProxyJump jumpbox\n"
        f"Host jumpbox\n  HostName {jump.address}\n  Port {jump.port}\n  User {lab_fleet.user}\n"
        f"  IdentityFile {lab_fleet.client_key}\n  UserKnownHostsFile {lab_fleet.known_hosts}\n"
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"hosts": {"inner": {"ansible_host": "behind-jump"}},
                     "vars": {"known_hosts": str(lab_fleet.known_hosts)}}}
        )
    )  # fmt: skip
    base = ["-i", str(inventory), "run", "inner", "--json", "-F", str(config)]
    assert main([*base, "--", "echo through"]) == 0, capsys.readouterr().err
    assert json_rows(capsys.readouterr().out)["inner"]["stdout"] == "through\n"
    lab_fleet.stop("web01")  # the target is up, but the jump host is not: no way through
    try:
        assert main([*base, "--connect-timeout", "3", "--", "echo through"]) == 1
        row = json_rows(capsys.readouterr().out)["inner"]
        assert (row["status"], row["error"]) == (
            "unreachable",
            "jump host jumpbox: connection refused",
        )
    finally:
        lab_fleet.restart("web01")


def test_bad_input_is_one_line_exit_2_and_nothing_recorded(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    inventory = str(lab_fleet.inventory)
    assert main(["-i", inventory, "run", "all", "--", "  "]) == 2
    assert capsys.readouterr().err == "herd: error: empty command: give the command after --\n"
    assert main(["-i", inventory, "run", "nosuchgroup", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nosuchgroup" in err
    document = yaml.safe_load(lab_fleet.inventory.read_text())
    document["all"]["vars"]["ansible_ssh_private_key_file"] = str(tmp_path / "missing_key")
    broken = tmp_path / "inventory.yml"
    broken.write_text(yaml.safe_dump(document))
    assert main(["-i", str(broken), "run", "all", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing_key: cannot read the private key" in err
    assert main(["-i", inventory, "run", "all", "--env", "1BAD=x", "--", "true"]) == 2
    capsys.readouterr()
    assert not (isolated_env / "operations.db").exists() or _no_operations(isolated_env)


def _no_operations(home: Path) -> bool:
    with AuditLog(home / "operations.db", check_writable=False) as log:
        return log.last_operation_id() is None
