"""Where ``herd run`` gets what OpenSSH would: ~/.ssh/config and ssh-agent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import Fleet

pytestmark = pytest.mark.system


def run_herd(home: Path, inventory: Path, env: dict[str, str], pattern: str) -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "herd", "--home", str(home / "herd"), "-i", str(inventory),
         "run", pattern, "--json", "--connect-timeout", "5", "--", "echo reached"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    return {row["host"]: row for row in map(json.loads, done.stdout.splitlines())}


def bare_inventory(fleet: Fleet, path: Path, hosts: dict[str, dict[str, object]]) -> Path:
    """An inventory that names no key: only the fleet's known_hosts."""
    document = {"all": {"hosts": hosts, "vars": {"known_hosts": str(fleet.known_hosts)}}}
    path.write_text(yaml.safe_dump(document))
    return path


def test_user_ssh_config_gives_alias_user_port_and_identity_file(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    target = lab_fleet.host("web02")
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    key = ssh_dir / "lab_key"
    shutil.copy(lab_fleet.client_key, key)
    key.chmod(0o600)
    (ssh_dir / "config").write_text(
        f"Host web02-alias\n  HostName {target.address}\n  Port {target.port}\n"
        f"  User {lab_fleet.user}\n  IdentityFile {key}\n"
    )
    inventory = bare_inventory(lab_fleet, tmp_path / "inv.yml", {"w2": {"address": "web02-alias"}})
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("SSH_AUTH_SOCK", None)
    row = run_herd(tmp_path, inventory, env, "w2")["w2"]
    assert (row["status"], row["stdout"]) == ("ok", "reached\n"), row


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[str]:
    """A private ssh-agent in the foreground (so we hold its PID); yields its socket."""
    socket_path = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", socket_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(socket_path).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield socket_path
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_keys_held_by_ssh_agent_log_in_and_none_without_it(
    lab_fleet: Fleet, tmp_path: Path, ssh_agent: str
) -> None:
    target = lab_fleet.host("db01")
    inventory = bare_inventory(
        lab_fleet,
        tmp_path / "inv.yml",
        {"d1": {"address": target.address, "port": target.port, "user": lab_fleet.user}},
    )
    (tmp_path / ".ssh").mkdir(mode=0o700)  # an empty ~/.ssh: the agent is the only key source
    env = {**os.environ, "HOME": str(tmp_path), "SSH_AUTH_SOCK": ssh_agent}
    subprocess.run(
        ["ssh-add", str(lab_fleet.client_key)], env=env, check=True, capture_output=True, timeout=10
    )
    assert run_herd(tmp_path, inventory, env, "d1")["d1"]["status"] == "ok"
    env.pop("SSH_AUTH_SOCK")
    row = run_herd(tmp_path, inventory, env, "d1")["d1"]
    assert (row["status"], row["error"]) == (
        "auth_failed",
        f"authentication failed for user {lab_fleet.user}",
    )
