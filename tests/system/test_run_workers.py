"""``herd run`` with its hosts carried by worker processes, on the real OpenSSH fleet.

The fault tests (``test_run_faults``) run with ``--workers 2`` too; these check
what only workers can get wrong: that the hosts are really spread over the
worker processes, that each host's output reaches every sink as it would in one
process, and that a host's inventory variables still decide how it becomes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import Fleet, need_sudo
from .test_run_faults import HERD, MARK, herd, marked, rows, wait_unmarked

pytestmark = pytest.mark.system

_WORKER = b"herd.hosts.worker"


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _is_worker(pid: int) -> bool:
    try:
        return _WORKER in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def _sockets(pid: int) -> set[int]:
    """The inodes of the sockets ``pid`` holds open."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _connections_to(port: int) -> set[int]:
    """The inodes of the established TCP connections to ``port`` on this machine."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
            found.add(int(fields[9]))
    return found


def test_the_hosts_of_a_run_are_spread_over_the_worker_processes(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    marker = f"herd-spread-{os.getpid()}-{time.monotonic_ns()}"
    process = subprocess.Popen(
        [*HERD, "--home", str(tmp_path / "home"), "-i", str(lab_fleet.inventory), "run", "all",
         "--json", "--workers", "2", "--env", f"{MARK}={marker}", "--", "sleep 3; echo done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(set(marked(marker).values()) - {""}) < 8:
            time.sleep(0.1)  # every host runs the command: each holds its connection
        connections = _connections_to(lab_fleet.port)
        workers = [child for child in _children(process.pid) if _is_worker(child)]
        held = {pid: len(_sockets(pid) & connections) for pid in [process.pid, *workers]}
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert len(workers) == 2, held
    assert held[process.pid] == 0, held  # herd's own process connects to no host
    assert all(held[pid] >= 1 for pid in workers), held
    assert sum(held.values()) == 8, held
    assert {row["stdout"] for row in rows(stdout).values()} == {"done\n"}
    assert wait_unmarked(marker) == {}


def test_output_reaches_the_sinks_the_same_with_workers_as_in_one_process(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    command = 'echo "out of $HERD_HOST"; printf "err, no newline" >&2; exit 3'
    seen: dict[str, dict[str, str]] = {}
    live: dict[str, tuple[list[str], list[str]]] = {}
    for workers in ("0", "2"):
        out_dir = tmp_path / f"out-{workers}"
        done = herd(
            tmp_path / "home", lab_fleet.inventory, "run", "all", "--workers", workers,
            "-o", str(out_dir), "--", command,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "8 hosts: 8 failed" in done.stderr
        seen[workers] = {f.name: f.read_text() for f in out_dir.iterdir()}
        shown = herd(
            tmp_path / "home", lab_fleet.inventory, "run", "all", "--workers", workers,
            "--", command,
        )  # fmt: skip
        errors = [line for line in shown.stderr.splitlines() if " ! " in line]
        live[workers] = sorted(shown.stdout.splitlines()), sorted(errors)
    assert seen["0"] == seen["2"]
    assert live["0"] == live["2"]  # each host's lines on the terminal, as they came
    assert "web01   | out of web01" in live["2"][0]
    assert "web01   ! err, no newline" in live["2"][1]
    assert seen["2"]["web01.err"] == "err, no newline"
    assert seen["2"]["web01.exit"] == "3\n"


def test_a_hosts_inventory_become_variables_reach_the_worker_that_runs_it(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    need_sudo()
    document = yaml.safe_load(lab_fleet.inventory.read_text())
    hosts = document["all"]["children"]["web"]["hosts"]
    hosts["web01"].update(ansible_become=True, ansible_become_user="nobody")
    hosts["web02"].update(ansible_become="yes", ansible_become_user="daemon")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(document))
    done = herd(
        tmp_path / "home", inventory, "run", "web", "--workers", "2", "--json",
        "--", "id -un",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    users = {host: str(row["stdout"]).strip() for host, row in rows(done.stdout).items()}
    assert users == {"web01": "nobody", "web02": "daemon", "web03": lab_fleet.user,
                     "web04": lab_fleet.user}  # fmt: skip
    assert json.loads(done.stdout.splitlines()[0])["status"] == "ok"


def test_forks_bound_the_hosts_running_at_once_across_the_workers(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    marker = f"herd-forks-{os.getpid()}-{time.monotonic_ns()}"
    process = subprocess.Popen(
        [*HERD, "--home", str(tmp_path / "home"), "-i", str(lab_fleet.inventory), "run", "all",
         "--json", "--workers", "2", "-f", "2", "--env", f"{MARK}={marker}", "--",
         "sleep 0.5; echo done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: set[str] = set()
    most = 0
    try:
        while process.poll() is None:
            running = set(marked(marker, but=process.pid).values()) - {""}
            seen |= running
            most = max(most, len(running))
            time.sleep(0.02)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert len(rows(stdout)) == 8
    assert 1 <= most <= 2, (most, seen)  # -f 2: never a third host at once, whatever worker
