"""The agent's warm command line on a real OpenSSH fleet: a warm ``herd run`` is handed
whole (arguments, environment, directory, terminal) to a fork of a process that has the
command line imported, and behaves exactly as the same run in its own process.

Each client here runs through ``PROBE``, which writes the modules the client process
imported when it exits: a client that handed its command over never imported click.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.core.audit_records import OperationRecord
from herd.operation.agent_protocol import AgentFiles, warm_pid
from tests.agent_support import warm_serving

from .conftest import Fleet
from .test_agent import herd, wait_until
from .test_shell import read_until, sleepers, sleeping

pytestmark = pytest.mark.system

PROBE = (
    "import atexit, sys\n"
    "def imported(path):\n"
    "    with open(path, 'w') as out:\n"
    "        out.write('\\n'.join(sorted(sys.modules)))\n"
    "atexit.register(imported, sys.argv[1])\n"
    "sys.argv = ['herd', *sys.argv[2:]]\n"
    "from herd.cli.launch import run\n"
    "run()\n"
)
SLEEP = "60.5432"  # a sleep no other test runs


def all_sleeping(fleet: Fleet) -> bool:
    """Whether every web host runs its ``sleep SLEEP``: a stop sent sooner may find a
    host whose PID herd has not learnt yet, which it reports, and leaves running."""
    return sleepers(SLEEP) == len(fleet.names("web"))


def client(modules: Path, *args: str, python: tuple[str, ...] = ()) -> list[str]:
    """The command line of a herd client that writes its imported modules to ``modules``."""
    return [sys.executable, *python, "-c", PROBE, str(modules), *args]


def handed_over(modules: Path) -> bool:
    """Whether the client that wrote ``modules`` handed its command to the warm process."""
    imported = set(modules.read_text().split())
    assert "herd.cli.launch" in imported  # the probe saw the client's imports
    return "click" not in imported and "herd.cli.main" not in imported


@pytest.fixture
def home(lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles) -> Path:
    """A herd home whose agent a first run started, its warm command line serving."""
    home = tmp_path / "home"
    first = herd(home, "-i", str(lab_fleet.inventory), "run", "all", "--", "true")
    assert first.returncode == 0, first.stderr
    assert wait_until(lambda: warm_serving(private_agent))
    return home


@contextlib.contextmanager
def sleeping_client(
    home: Path, fleet: Fleet, modules: Path, preexec: Callable[[], None] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A client of ``home``'s warm command line running ``sleep SLEEP`` on the web hosts,
    once they all sleep; killed on the way out if the test left it running."""
    running = subprocess.Popen(
        client(modules, "--home", str(home), "-i", str(fleet.inventory), "run", "web",
               "--", f"sleep {SLEEP}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=preexec,  # noqa: PLW1509 - the test process has no threads
        # a group of its own in this session, as a shell's job: however pytest was started
        # (setsid, a parent gone), the kernel would discard Ctrl-Z in an orphaned group
        process_group=0,
    )  # fmt: skip
    try:
        assert wait_until(lambda: all_sleeping(fleet))
        yield running
    finally:
        if running.poll() is None:
            running.kill()
        running.communicate(timeout=60)  # its pipes closed here, not by a later test's GC


def last_operation(home: Path) -> OperationRecord:
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
    assert record is not None
    return record


def test_a_warm_run_is_handed_over_with_its_directory_environment_and_exit_code(
    lab_fleet: Fleet, tmp_path: Path, home: Path
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "fleet.yml").write_text(lab_fleet.inventory.read_text())
    env = {**os.environ, "HERD_INVENTORY": "fleet.yml"}  # relative: found from the cwd
    modules = tmp_path / "modules"
    argv = ["--home", str(home), "run", "web", "--json", "--", "echo $HERD_HOST; exit 3"]
    warm = subprocess.run(client(modules, *argv), capture_output=True, text=True, env=env,
                          cwd=here, timeout=60, check=False)  # fmt: skip
    assert handed_over(modules), warm.stderr
    recorded = last_operation(home)
    alone = subprocess.run(client(modules, *argv, "--no-agent"), capture_output=True,
                           text=True, env=env, cwd=here, timeout=60, check=False)  # fmt: skip
    assert not handed_over(modules)
    assert warm.returncode == alone.returncode == 1  # some host failed
    rows = [json.loads(line) for line in warm.stdout.splitlines()]
    assert sorted(row["host"] for row in rows) == lab_fleet.names("web")
    assert {(row["stdout"].strip(), row["exit_status"]) for row in rows} == {
        (name, 3) for name in lab_fleet.names("web")
    }
    alone_rows = [json.loads(line) for line in alone.stdout.splitlines()]
    assert sorted((row["host"], row["stdout"]) for row in alone_rows) == sorted(
        (row["host"], row["stdout"]) for row in rows
    )
    assert warm.stderr.splitlines()[-1] == f"recorded as operation {recorded.id}:" \
        f" herd log show {recorded.id}"  # fmt: skip
    assert (recorded.kind, recorded.status, recorded.exit_code) == ("run", "failed", 1)
    assert recorded.argv == ["herd", *argv]
    assert recorded.pid != os.getpid()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_client_stops_the_handed_over_run_as_it_stops_any_run(
    lab_fleet: Fleet, tmp_path: Path, home: Path, signum: signal.Signals
) -> None:
    modules = tmp_path / "modules"
    with sleeping_client(home, lab_fleet, modules) as running:
        running.send_signal(signum)
        _, err = running.communicate(timeout=60)
    assert handed_over(modules)
    assert running.returncode == 128 + signum, err
    assert "interrupted" in err.splitlines()[-2]
    assert wait_until(lambda: not sleeping(SLEEP))  # stopped on every host
    assert last_operation(home).status == "interrupted"


def test_a_killed_client_hangs_up_the_handed_over_run(lab_fleet: Fleet, home: Path) -> None:
    running = subprocess.Popen(
        [sys.executable, "-m", "herd", "--home", str(home), "-i", str(lab_fleet.inventory),
         "run", "web", "--", f"sleep {SLEEP}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_until(lambda: all_sleeping(lab_fleet))
        running.kill()
        running.wait(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert wait_until(lambda: not sleeping(SLEEP))
    assert wait_until(lambda: last_operation(home).status == "interrupted")
    assert last_operation(home).exit_code == 128 + signal.SIGHUP


def test_ctrl_c_at_a_terminal_reaches_the_handed_over_run(
    lab_fleet: Fleet, tmp_path: Path, home: Path
) -> None:
    modules = tmp_path / "modules"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        # setsid -c: the pty is the client's controlling terminal, Ctrl-C its SIGINT
        ["setsid", "-c", *client(modules, "--home", str(home), "-i", str(lab_fleet.inventory),
                                 "run", "web", "--", f"sleep {SLEEP}")],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    screen = bytearray()
    try:
        assert wait_until(lambda: all_sleeping(lab_fleet))
        os.write(leader, b"\x03")
        assert read_until(leader, screen, b"herd log show"), screen
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    assert handed_over(modules)
    assert b"4 not finished\x1b[0m" in screen  # the summary, in colour: on a terminal
    assert wait_until(lambda: not sleeping(SLEEP))


def test_a_client_with_other_python_flags_runs_the_command_itself(
    lab_fleet: Fleet, tmp_path: Path, private_agent: AgentFiles, home: Path
) -> None:
    modules = tmp_path / "modules"
    argv = ["--home", str(home), "-i", str(lab_fleet.inventory), "run", "web", "--", "true"]
    same = subprocess.run(client(modules, *argv), capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert handed_over(modules)
    other = subprocess.run(client(modules, *argv, python=("-X", "herd_test=1")),
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert not handed_over(modules)
    assert other.stderr.splitlines()[0].startswith("4 hosts: 4 ok")
    assert warm_serving(private_agent)  # declining is not a reason to stop serving


def test_stopping_the_agent_stops_its_warm_command_line(
    private_agent: AgentFiles, home: Path
) -> None:
    pid = warm_pid(private_agent)
    assert pid is not None
    status = herd(home, "agent", "status")
    assert f"warm command line pid {pid}" in status.stdout
    stopped = herd(home, "agent", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: warm_pid(private_agent) is None)
    assert not private_agent.warm_socket.exists()


def test_a_client_with_a_terminal_but_stdin_elsewhere_runs_the_command_itself(
    lab_fleet: Fleet, tmp_path: Path, home: Path
) -> None:
    """A password prompt would go to the controlling terminal (/dev/tty), which a process
    in the agent's session cannot open: such a client keeps its command."""
    modules = tmp_path / "modules"
    leader, follower = pty.openpty()
    terminal = os.ttyname(follower)

    def take_the_terminal() -> None:  # a session leader's first terminal is its own
        os.close(os.open(terminal, os.O_RDWR))

    argv = client(modules, "--home", str(home), "-i", str(lab_fleet.inventory), "run", "web",
                  "--", "true")  # fmt: skip
    try:
        piped = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               start_new_session=True, preexec_fn=take_the_terminal,
                               timeout=60, check=False)  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)
    assert piped.returncode == 0, piped.stderr
    assert not handed_over(modules)
    without = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             start_new_session=True, timeout=60, check=False)  # fmt: skip
    assert without.returncode == 0, without.stderr
    assert handed_over(modules)  # no terminal at all: both would read stdin


def state(pid: int) -> str:
    """A process's state letter (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_ctrl_z_stops_the_handed_over_run_with_the_client_and_fg_continues_both(
    lab_fleet: Fleet, tmp_path: Path, home: Path
) -> None:
    modules = tmp_path / "modules"
    with sleeping_client(home, lab_fleet, modules) as running:
        command = last_operation(home).pid  # the fork that runs it records itself
        running.send_signal(signal.SIGTSTP)
        assert wait_until(lambda: state(running.pid) == "T" and state(command) == "T")
        running.send_signal(signal.SIGCONT)
        assert wait_until(lambda: state(running.pid) != "T" and state(command) != "T")
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=60)
    assert handed_over(modules)
    assert running.returncode == 130, err
    assert wait_until(lambda: not sleeping(SLEEP))


def test_the_handed_over_run_keeps_the_clients_niceness_and_cpus(
    lab_fleet: Fleet, tmp_path: Path, home: Path
) -> None:
    modules = tmp_path / "modules"
    first_cpu = min(os.sched_getaffinity(0))

    def nice_on_one_cpu() -> None:  # as `nice -n 7 taskset -c N herd ...`
        os.nice(7)
        os.sched_setaffinity(0, {first_cpu})

    with sleeping_client(home, lab_fleet, modules, nice_on_one_cpu) as running:
        command = last_operation(home).pid
        niceness = int(Path(f"/proc/{command}/stat").read_text().rpartition(")")[2].split()[16])
        cpus = os.sched_getaffinity(command)
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=60)
    assert handed_over(modules)
    assert (niceness, cpus) == (7, {first_cpu})
