"""A run handed to the agent keeps the command line thin: no SSH library, no transfer
engine, and the same refusals, with the same lines, as a run without the agent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.operation.agent_protocol import AgentFiles, agent_pid

from .conftest import Fleet
from .test_agent import herd

pytestmark = pytest.mark.system

HEAVY = ("asyncssh", "cryptography", "herd.hosts.connect", "herd.hosts.transfer", "herd.hosts.push",
         "herd.hosts.pull", "herd.hosts.workers")  # fmt: skip


def imported(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """A CLI run under ``-X importtime``, and the modules its process imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "herd", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return done, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(HEAVY))


def test_a_warm_run_through_the_agent_loads_no_ssh_library_in_the_command_line(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles
) -> None:
    home = tmp_path / "home"
    inventory = str(lab_fleet.inventory)
    first = herd(home, "-i", inventory, "run", "all", "--", "true")
    assert first.returncode == 0, first.stderr
    assert agent_pid(private_agent) is not None
    done, modules = imported(home, "-i", inventory, "run", "all", "--json", "--", "uname -n")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(lab_fleet.names())
    assert {"herd.cli.agent", "herd.cli.operation"} <= modules  # the probe sees the run's imports
    assert heavy(modules) == []
    cold, cold_modules = imported(home, "-i", inventory, "run", "all", "--no-agent", "--", "true")
    assert cold.returncode == 0, cold.stderr
    assert "asyncssh" in heavy(cold_modules)


@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("nokey", "herd: error: nokey: cannot read the private key for {host}:"
                  " [Errno 2] No such file or directory: 'nokey'"),
        ("badkey", "herd: error: badkey: cannot read the private key for {host}:"
                   " Invalid private key"),
    ],
)  # fmt: skip
def test_a_key_the_agent_cannot_read_stops_the_run_as_without_the_agent(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles, key: str, line: str
) -> None:
    home = tmp_path / "home"
    (tmp_path / "badkey").write_text("not a key\n")
    inventory = str(lab_fleet.inventory)
    warm = herd(home, "-i", inventory, "run", "all", "--", "true")  # the agent now runs
    assert warm.returncode == 0, warm.stderr
    first = lab_fleet.names()[0]
    args = ["-i", inventory, "run", first, "-e", f"ansible_ssh_private_key_file={key}", "--",
            "true"]  # fmt: skip
    answers = [
        subprocess.run(
            [sys.executable, "-m", "herd", "--home", str(home), *args, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        for extra in ([], ["--no-agent"])
    ]
    for done in answers:
        assert done.returncode == 2
        assert done.stderr.splitlines() == [line.format(host=first)]
    assert agent_pid(private_agent) is not None  # it refused: it did not die
    with AuditLog(home / "operations.db", check_writable=False) as log:
        assert log.last_operation_id() == 1  # the warm-up run alone: nothing else recorded


def test_relative_key_and_known_hosts_paths_reach_the_agent_from_the_command_lines_directory(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles
) -> None:
    home = tmp_path / "home"
    shutil.copy(lab_fleet.client_key, tmp_path / "key")
    (tmp_path / "key").chmod(0o600)
    shutil.copy(lab_fleet.known_hosts, tmp_path / "known")
    (tmp_path / "payload.txt").write_text("sent\n")
    host = lab_fleet.host(lab_fleet.names()[0])
    bare = tmp_path / "inventory.yml"
    bare.write_text(f"all:\n  hosts:\n    one:\n      ansible_host: {host.address}\n"
                    f"      ansible_port: {lab_fleet.port}\n")  # fmt: skip
    relative = ["-u", lab_fleet.user, "--private-key", "key", "--known-hosts", "known"]
    for args in (["run", "all", *relative, "--", "true"],
                 ["push", "all", "payload.txt", "/tmp/", *relative]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "herd", "--home", str(home), "-i", str(bare), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
    assert agent_pid(private_agent) is not None
    status = herd(home, "agent", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert [c["host"] for c in json.loads(status.stdout)["connections"]] == ["one"]
