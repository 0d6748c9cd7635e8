"""The agent on a real OpenSSH fleet: kept connections, their keys, its death, its users.

Each test runs the real CLI in a subprocess, as an operator would; each test has
its own runtime directory, so its own agent (tests/conftest.py stops it after).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import herd as herd_package
from herd.core.audit import AuditLog
from herd.operation.agent_protocol import AgentFiles, agent_pid, is_agent_process
from tests.agent_support import warm_serving

from .conftest import Fleet

pytestmark = pytest.mark.system

HERD = [sys.executable, "-m", "herd"]


def herd(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HERD, "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ports(home: Path, fleet: Fleet, *options: str) -> dict[str, str]:
    """Each host's client port as its sshd saw it ($SSH_CONNECTION), for one run."""
    done = herd(home, "-i", str(fleet.inventory), "run", "all", "--json", *options,
                "--", "echo $SSH_CONNECTION")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {row["host"]: row["stdout"].split()[1] for row in rows}


def agent_status(home: Path) -> dict[str, object]:
    done = herd(home, "agent", "status", "--json")
    assert done.returncode == 0, done.stderr
    status: dict[str, object] = json.loads(done.stdout)
    return status


def wait_until(condition: Callable[[], bool], bound: float = 30.0) -> bool:
    """Poll ``condition`` until it holds or ``bound`` seconds pass (a safety net, not a timing)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_second_run_reuses_the_agents_connections(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles
) -> None:
    home = tmp_path / "home"
    first = ports(home, lab_fleet)
    second = ports(home, lab_fleet)
    assert second == first
    status = agent_status(home)
    assert status["pid"] == agent_pid(private_agent)
    connections = status["connections"]
    assert isinstance(connections, list)
    assert sorted(c["host"] for c in connections) == sorted(lab_fleet.names())
    assert {c["uses"] for c in connections} == {2}


def test_no_agent_connects_afresh_and_leaves_the_kept_connections_alone(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    kept = ports(home, lab_fleet)
    fresh = ports(home, lab_fleet, "--no-agent")
    assert all(fresh[name] != kept[name] for name in kept)
    assert ports(home, lab_fleet) == kept


def test_a_strict_run_never_reuses_a_connection_opened_with_host_keys_off(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inventory = str(lab_fleet.inventory)
    loose = herd(home, "-i", inventory, "run", "all", "--host-keys", "off",
                 "--known-hosts", str(empty), "--", "true")  # fmt: skip
    assert loose.returncode == 0, loose.stderr
    strict = herd(home, "-i", inventory, "run", "all", "--json", "--known-hosts", str(empty),
                  "--", "true")  # fmt: skip
    assert strict.returncode == 1
    statuses = {json.loads(line)["status"] for line in strict.stdout.splitlines()}
    assert statuses == {"hostkey_unknown"}
    assert empty.read_text() == ""


def test_push_and_pull_of_relative_paths_go_through_the_agents_connections(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (tmp_path / "payload.txt").write_text("kept\n")
    inventory = str(lab_fleet.inventory)
    landing = tmp_path / "landed"
    landing.mkdir()
    landing.chmod(0o777)

    def herd_here(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HERD, "--home", str(home), "-i", inventory, *args],
            capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip

    pushed = herd_here("push", "web", "payload.txt", f"{landing}/{{host}}.txt")
    assert pushed.returncode == 0, pushed.stderr
    pulled = herd_here("pull", "web", f"{landing}/{{host}}.txt", "fetched")
    assert pulled.returncode == 0, pulled.stderr
    for name in lab_fleet.names("web"):
        assert (landing / f"{name}.txt").read_text() == "kept\n"
        assert (tmp_path / "fetched" / name / f"{landing}/{name}.txt".lstrip("/")).exists()
    connections = agent_status(home)["connections"]
    assert isinstance(connections, list)
    assert sorted((c["host"], c["uses"]) for c in connections) == [
        (name, 2) for name in lab_fleet.names("web")
    ]


def test_a_pull_through_the_agent_makes_its_directories_under_the_commands_umask(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles
) -> None:
    """The agent (started under umask 022) makes a pull's directories; they must be as
    the command's own umask (027) would make them, as without the agent."""
    home = tmp_path / "home"
    inventory = str(lab_fleet.inventory)
    started = herd(home, "-i", inventory, "run", "web", "--", "true")  # umask 022
    assert started.returncode == 0, started.stderr
    assert wait_until(lambda: warm_serving(private_agent))
    modes = {}
    for dest, extra in (("through", []), ("alone", ["--no-agent"])):
        pulled = subprocess.run(
            [*HERD, "--home", str(home), "-i", inventory, "pull", "web", "/etc/hostname",
             f"{dest}/deep", *extra],
            capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path, umask=0o027,
        )  # fmt: skip
        assert pulled.returncode == 0, pulled.stderr
        made = [tmp_path / dest, tmp_path / dest / "deep", tmp_path / dest / "deep" / "web01",
                tmp_path / dest / "deep" / "web01" / "etc"]  # fmt: skip
        modes[dest] = [oct(path.stat().st_mode & 0o777) for path in made]
    assert modes["through"] == modes["alone"] == ["0o750"] * 4


def test_a_dead_host_is_unreachable_and_the_others_keep_their_connections(
    make_fleet: Callable[..., Fleet], tmp_path: Path
) -> None:
    fleet = make_fleet(3, "web=3")
    home = tmp_path / "home"
    first = ports(home, fleet)
    fleet.stop("web02")
    done = herd(home, "-i", str(fleet.inventory), "run", "all", "--json",
                "--connect-timeout", "5", "--", "echo $SSH_CONNECTION")  # fmt: skip
    assert done.returncode == 1
    rows = {row["host"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert rows["web02"]["status"] == "unreachable"
    assert rows["web02"]["error"] == "connection refused"
    for name in ("web01", "web03"):
        assert rows[name]["status"] == "ok"
        assert rows[name]["stdout"].split()[1] == first[name]


def test_a_kept_connection_gone_silent_is_given_up_and_the_host_tried_afresh(
    make_fleet: Callable[..., Fleet], tmp_path: Path
) -> None:
    """web01 frozen after a run: its kept connection does not open the next command's
    channel within its bound, so the command was never sent there; the host is tried on
    a new connection, which meets a frozen sshd like any other. web02 keeps its own."""
    fleet = make_fleet(2, "web=2")
    home = tmp_path / "home"
    first = ports(home, fleet)
    fleet.freeze("web01")
    try:
        done = herd(home, "-i", str(fleet.inventory), "run", "all", "--json",
                    "--connect-timeout", "3", "--", "echo $SSH_CONNECTION")  # fmt: skip
    finally:
        fleet.thaw("web01")
    assert done.returncode == 1, done.stderr
    rows = {row["host"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert (rows["web01"]["status"], rows["web01"]["error"]) == (
        "unreachable",
        "no SSH banner within 3 s",
    )
    assert rows["web02"]["status"] == "ok"
    assert rows["web02"]["stdout"].split()[1] == first["web02"]
    again = ports(home, fleet)  # thawed: a new connection, kept from now on
    assert again["web02"] == first["web02"]
    assert again["web01"] != first["web01"]


def test_a_host_with_a_new_key_is_a_mismatch_on_the_next_run(
    make_fleet: Callable[..., Fleet], tmp_path: Path
) -> None:
    fleet = make_fleet(2, "web=2")
    home = tmp_path / "home"
    ports(home, fleet)
    fleet.regenerate_host_key("web01")
    done = herd(home, "-i", str(fleet.inventory), "run", "all", "--json", "--", "true")
    rows = {row["host"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert (rows["web01"]["status"], rows["web02"]["status"]) == ("hostkey_mismatch", "ok")
    assert done.returncode == 1


def test_an_agent_whose_herd_changed_on_disk_gives_way_to_a_new_one(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles
) -> None:
    """An upgrade while the agent runs: the next command finds it stale, it leaves (it
    is idle), and the command runs through a new agent with the new code, no warning."""
    source = tmp_path / "src"
    shutil.copytree(Path(herd_package.__file__).parent, source / "herd",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [*HERD, "--home", str(tmp_path / "home"), "-i", str(lab_fleet.inventory),
               "run", "all", "--json", "--", "true"]  # fmt: skip

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60,
                              check=False)  # fmt: skip

    first = run()
    assert first.returncode == 0, first.stderr
    old = agent_pid(private_agent)
    assert old is not None and is_agent_process(old)
    model = source / "herd" / "core" / "model.py"
    model.write_text(model.read_text() + "\n# upgraded\n")
    second = run()
    assert second.returncode == 0, second.stderr
    assert "warning" not in second.stderr
    new = agent_pid(private_agent)
    assert new is not None and new != old
    assert wait_until(lambda: not is_agent_process(old))


def test_the_agent_exits_once_idle_for_the_persist_time(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "herd.toml").write_text('[agent]\npersist = "1s"\n')
    ports(home, lab_fleet)
    pid = agent_pid(private_agent)
    assert pid is not None
    assert wait_until(lambda: not is_agent_process(pid))
    assert agent_status(home)["pid"] is None


def test_persist_zero_turns_the_agent_off(lab_fleet: Fleet, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "herd.toml").write_text("[agent]\npersist = 0\n")
    first = ports(home, lab_fleet)
    assert ports(home, lab_fleet) != first
    assert agent_status(home)["pid"] is None


def test_an_agent_killed_mid_run_fails_its_unfinished_hosts_and_runs_nothing_twice(
    make_fleet: Callable[..., Fleet], tmp_path: Path, private_agent: AgentFiles
) -> None:
    fleet = make_fleet(3, "web=3")
    home = tmp_path / "home"
    marks = tmp_path / "marks"
    marks.touch()
    marks.chmod(0o666)
    running = subprocess.Popen(
        [*HERD, "--home", str(home), "-i", str(fleet.inventory), "run", "all", "--json",
         "--", f"echo $HERD_HOST >> {marks}; sleep 60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_until(lambda: len(marks.read_text().split()) == 3)
        pid = agent_pid(private_agent)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        out, err = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert running.returncode == 1, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(row["host"] for row in rows) == fleet.names()
    for row in rows:
        assert (row["status"], row["error"]) == (
            "error",
            f"the agent (pid {pid}) died during the operation",
        )
    assert sorted(marks.read_text().split()) == fleet.names()  # each host ran it once
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
    assert record is not None
    assert record.status == "failed"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None, reason="needs root and useradd"
)
def test_another_user_cannot_talk_to_the_agent(tmp_path: Path, private_agent: AgentFiles) -> None:
    home = tmp_path / "home"
    started = herd(home, "agent", "start")
    assert started.returncode == 0, started.stderr
    # the warm command line, starting, makes sure of the directory's 0700 as herd does
    assert wait_until(lambda: warm_serving(private_agent))
    name = f"herdag{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True, capture_output=True)
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print('connect:', type(e).__name__); sys.exit()\n"
        "try:\n"
        '    s.sendall(b\'{"op":"status"}\\n\')\n'
        "except OSError:  # refused already: the answer says why\n"
        "    pass\n"
        "print('answer:', s.makefile('rb').readline().decode().strip())\n"
    )

    def as_other_user() -> str:
        done = subprocess.run(
            ["/usr/bin/python3", "-c", probe, str(private_agent.socket)],
            user=name, capture_output=True, text=True, timeout=30, check=False, cwd="/",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    try:
        assert as_other_user() == "connect: PermissionError"  # the 0700 directory
        for directory in (private_agent.directory.parent, private_agent.directory):
            directory.chmod(0o711)  # even past it, the agent checks the peer's uid
        private_agent.socket.chmod(0o666)
        answer = as_other_user()
        assert answer.startswith("answer: ")
        assert "refused: uid" in json.loads(answer.removeprefix("answer: "))["error"]
        assert agent_status(home)["connections"] == []
    finally:
        for directory in (private_agent.directory.parent, private_agent.directory):
            directory.chmod(0o700)
        subprocess.run(["userdel", "-f", name], capture_output=True, check=False)
