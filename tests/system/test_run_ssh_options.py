"""OpenSSH's and Ansible's words mean what they mean there, on a real sshd fleet.

``-u``, ``--port``, ``--private-key``; ssh options from ``-F`` files and from
``ansible_ssh_common_args``; an unknown host key is not a changed one; a dead or
frozen jump host is named; ``-t 0`` is no timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from herd.cli.main import main
from herd.operation.agent_protocol import AgentFiles

from .conftest import Fleet

pytestmark = pytest.mark.system


def rows(out: str) -> dict[str, dict[str, object]]:
    return {row["host"]: row for row in map(json.loads, out.splitlines())}


def inventory(path: Path, hosts: dict[str, dict[str, object]], **common: object) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": common}}))
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, rows(out), err


def test_user_port_and_private_key_on_the_command_line_fill_what_the_inventory_leaves_out(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web01, web02 = lab_fleet.host("web01"), lab_fleet.host("web02")
    bare = inventory(
        tmp_path / "inv.yml",
        {"a": {"ansible_host": web01.address}, "b": {"ansible_host": web02.address,
                                                   "ansible_user": "nosuchuser"}},
        known_hosts=str(lab_fleet.known_hosts),
    )  # fmt: skip
    code, got, err = run(["-i", str(bare), "run", "all", "--json", "-u", lab_fleet.user,
                          "--port", str(lab_fleet.port), "--private-key", str(lab_fleet.client_key),
                          "--", "id -un"], capsys)  # fmt: skip
    assert code == 1, err
    assert (got["a"]["status"], got["a"]["stdout"]) == ("ok", f"{lab_fleet.user}\n")
    # as in Ansible, the inventory's ansible_user wins over -u
    assert got["b"]["error"] == "authentication failed for user nosuchuser"


def ssh_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_ssh_config_file_decides_known_hosts_checking_port_user_and_key(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = lab_fleet.host("db01")
    fresh = tmp_path / "fresh_known_hosts"
    base = {"t": {"ansible_host": "t-alias"}}
    inv = inventory(tmp_path / "inv.yml", base)
    head = (
        f"Host t-alias\n  HostName {target.address}\n  Port {target.port}\n"
        f"  User {lab_fleet.user}\n  IdentityFile {lab_fleet.client_key}\n  IdentitiesOnly yes\n"
    )
    strict = ssh_config(
        tmp_path / "strict", head + f"  UserKnownHostsFile {lab_fleet.known_hosts}\n"
    )
    code, got, err = run(["-i", str(inv), "run", "t", "--json", "-F", str(strict), "--", "echo hi"],
                         capsys)  # fmt: skip
    assert (code, got["t"]["stdout"]) == (0, "hi\n"), err
    unknown = ssh_config(tmp_path / "unknown", head + f"  UserKnownHostsFile {fresh}\n")
    code, got, _ = run(["-i", str(inv), "run", "t", "--json", "-F", str(unknown), "--", "true"],
                       capsys)  # fmt: skip
    assert got["t"]["status"] == "hostkey_unknown"
    assert "trust it with --host-keys accept-new, or add it with ssh-keyscan" in got["t"]["error"]
    accept = ssh_config(
        tmp_path / "accept",
        head + f"  UserKnownHostsFile {fresh}\n  StrictHostKeyChecking accept-new\n",
    )
    code, got, err = run(["-i", str(inv), "run", "t", "--json", "-F", str(accept), "--", "true"],
                         capsys)  # fmt: skip
    assert code == 0, err
    assert f"[{target.address}]:{target.port} ssh-ed25519 " in fresh.read_text()
    # the command line's --host-keys beats the ssh config's StrictHostKeyChecking
    off = ssh_config(tmp_path / "off", head + "  UserKnownHostsFile /dev/null\n"
                     "  StrictHostKeyChecking no\n")  # fmt: skip
    assert run(["-i", str(inv), "run", "t", "--json", "-F", str(off), "--", "true"], capsys)[0] == 0
    code, got, _ = run(["-i", str(inv), "run", "t", "--json", "-F", str(off), "--host-keys",
                        "strict", "--", "true"], capsys)  # fmt: skip
    assert got["t"]["status"] == "hostkey_unknown"


def test_ssh_arguments_in_the_inventory_are_read_as_ssh_reads_its_command_line(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = lab_fleet.host("cache01")
    args = (f"-o UserKnownHostsFile={lab_fleet.known_hosts} -o StrictHostKeyChecking=yes"
            f" -p {target.port} -l {lab_fleet.user} -i {lab_fleet.client_key}"
            " -o BindAddress=127.0.0.77 -o ControlMaster=auto -o ConnectionAttempts=3")  # fmt: skip
    inv = inventory(tmp_path / "inv.yml", {"c": {"ansible_host": target.address,
                                                 "ansible_ssh_common_args": args}})  # fmt: skip
    code, got, err = run(["-i", str(inv), "run", "c", "--json", "-F", "/dev/null",
                          "--", 'echo "${SSH_CONNECTION%% *}"'], capsys)  # fmt: skip
    assert code == 0, err
    assert got["c"]["stdout"] == "127.0.0.77\n"  # BindAddress chose the source address
    warnings = [line for line in err.splitlines() if line.startswith("herd: warning:")]
    assert warnings == [  # named once; ControlMaster changes nothing for herd: not named
        "herd: warning: ssh option ConnectionAttempts (the inventory's ssh arguments)"
        " is not supported; herd ignores it"
    ]


def test_ciphers_from_the_ssh_options_are_the_ones_offered(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = lab_fleet.host("cache02")
    inv = inventory(tmp_path / "inv.yml", {"c": {"ansible_host": target.address,
                                                 "ansible_port": target.port}},
                    ansible_user=lab_fleet.user,
                    ansible_ssh_private_key_file=str(lab_fleet.client_key),
                    known_hosts=str(lab_fleet.known_hosts))  # fmt: skip
    cbc = ssh_config(tmp_path / "cbc", "Host *\n  Ciphers 3des-cbc\n")
    got = run(["-i", str(inv), "run", "c", "--json", "-F", str(cbc), "--", "true"], capsys)[1]
    assert got["c"]["status"] == "unreachable"  # sshd offers no 3des-cbc: the option was used
    ctr = ssh_config(
        tmp_path / "ctr", "Host *\n  Ciphers aes256-ctr\n  KexAlgorithms curve25519-sha256\n"
    )
    assert run(["-i", str(inv), "run", "c", "--json", "-F", str(ctr), "--", "true"], capsys)[0] == 0


def test_host_key_alias_looks_the_key_up_under_the_alias(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = lab_fleet.host("web03")
    line = next(
        entry for entry in lab_fleet.known_hosts.read_text().splitlines()
        if entry.startswith(f"[{target.address}]:{target.port} ")
    )  # fmt: skip
    aliased = tmp_path / "known_hosts"
    aliased.write_text(f"[web03-alias]:{target.port} {line.split(' ', 1)[1]}\n")
    config = ssh_config(tmp_path / "cfg", f"Host *\n  HostKeyAlias web03-alias\n"
                        f"  UserKnownHostsFile {aliased}\n")  # fmt: skip
    inv = inventory(tmp_path / "inv.yml", {"w": {"ansible_host": target.address,
                                                 "ansible_port": target.port}},
                    ansible_user=lab_fleet.user,
                    ansible_ssh_private_key_file=str(lab_fleet.client_key))  # fmt: skip
    code, got, err = run(["-i", str(inv), "run", "w", "--json", "-F", str(config), "--", "true"],
                         capsys)  # fmt: skip
    assert code == 0, (got, err)


def test_a_host_missing_from_known_hosts_is_unknown_not_mismatched(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    code, got, _ = run(["-i", str(lab_fleet.inventory), "run", "web04", "--json",
                        "--known-hosts", str(empty), "--", "true"], capsys)  # fmt: skip
    assert code == 1
    assert got["web04"]["status"] == "hostkey_unknown"


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_a_dead_or_frozen_jump_host_is_named_in_every_host_behind_it(
    make_fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    fleet: Fleet = make_fleet(3)
    bastion, *targets = fleet.hosts
    inv = yaml.safe_load(fleet.inventory.read_text())
    for group in inv["all"]["children"].values():
        for name, host_vars in group["hosts"].items():
            if name != bastion.name:
                host_vars["jump"] = f"{fleet.user}@{bastion.address}:{bastion.port}"
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(inv))
    pattern = ",".join(t.name for t in targets)
    assert main(["-i", str(path), "run", pattern, "--json", "--", "true"]) == 0
    capsys.readouterr()
    if fault == "stopped":
        fleet.stop(bastion.name)
    else:
        fleet.freeze(bastion.name)
    code = main(["-i", str(path), "run", pattern, "-b", "--connect-timeout", "2", "--", "true"])
    err = capsys.readouterr().err
    assert code == 1
    spec = f"{fleet.user}@{bastion.address}:{bastion.port}"
    reason = "connection refused" if fault == "stopped" else "no SSH banner within 2 s"
    assert f"jump host {spec}: {reason}" in err
    assert err.count(f"jump host {spec}") == len(targets)  # one line per host, same reason


def test_timeout_zero_means_no_timeout(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, got, err = run(["-i", str(lab_fleet.inventory), "run", "web01", "--json", "-t", "0",
                          "--", "sleep 1; echo done"], capsys)  # fmt: skip
    assert (code, got["web01"]["stdout"]) == (0, "done\n"), err


def test_send_env_and_set_env_reach_the_host_with_each_commands_own_values(
    make_fleet: Callable[..., Fleet], tmp_path: Path, private_agent: AgentFiles
) -> None:
    """SendEnv's values are the command's: on a new connection, on one the agent kept
    from a command with other values, and on one of the command's own."""
    fleet = make_fleet(1, "web=1")
    (name,) = fleet.names()
    config = fleet.files.sshd_config(name)
    config.write_text(config.read_text() + "AcceptEnv HERD_SENT_* HERD_SET\n")
    fleet.restart(name)
    options = ssh_config(tmp_path / "ssh_config", "SendEnv HERD_SENT_*\nSetEnv HERD_SET=set\n")
    seen = []
    for value, extra in (("first", []), ("second", []), ("alone", ["--no-agent"])):
        env = {**os.environ, "HERD_SENT_A": value, "HERD_SENT_B": "b", "HERD_SET": "not sent"}
        done = subprocess.run(
            [sys.executable, "-m", "herd", "--home", str(tmp_path / "home"), "-i",
             str(fleet.inventory), "run", "all", "--json", "-F", str(options), *extra, "--",
             'echo "$HERD_SENT_A $HERD_SENT_B $HERD_SET"'],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        seen.append(rows(done.stdout)[name]["stdout"])
    assert seen == ["first b set\n", "second b set\n", "alone b set\n"]
