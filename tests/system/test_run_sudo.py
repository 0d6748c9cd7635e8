"""``herd run --sudo`` through the real sudo on the OpenSSH fleet.

The lab's hosts log in as the user running the tests (root in CI), for whom
sudo asks no password: this checks the command really runs through sudo, with
its environment and stdin intact, and that the become password of
``--ask-become-pass`` never reaches the command's stdin, argv or the log.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from herd.cli.main import main
from herd.core.audit import AuditLog

from .conftest import Fleet, both_engines, need_sudo
from .dropbear import DropbearFleet
from .test_run_faults import herd, rows, with_user

pytestmark = pytest.mark.system


@both_engines
def test_sudo_runs_the_command_as_root_with_its_variables_and_stdin(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sudo()
    feed = tmp_path / "feed"
    feed.write_text("from stdin\n")
    command = 'id -u; echo "sudo by $SUDO_USER"; echo "$GREETING"; cat'
    code = main(["-i", str(lab_fleet.inventory), "run", "web01", "--sudo", "--json",
                 "--env", "GREETING=hello there", "--stdin", str(feed), "--", command])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    (row,) = map(json.loads, out.splitlines())
    assert row["stdout"] == f"0\nsudo by {lab_fleet.user}\nhello there\nfrom stdin\n"


@both_engines
def test_become_password_goes_to_sudo_not_to_the_command_argv_or_log(
    lab_fleet: Fleet, tmp_path: Path, isolated_env: Path
) -> None:
    need_sudo()
    secret = f"becomepw-{os.getpid()}"
    argv = [sys.executable, "-m", "herd", "-i", str(lab_fleet.inventory), "run", "web02",
            "--json", "-K", "--", "id -u; cat"]  # fmt: skip
    # getpass reads from the controlling terminal; without one it falls back to stdin.
    result = subprocess.run(
        argv,
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HERD_HOME": str(isolated_env)},
        start_new_session=True,  # no controlling terminal: the prompt reads stdin
    )
    assert result.returncode == 0, result.stderr
    (row,) = map(json.loads, result.stdout.splitlines())
    assert row["stdout"] == "0\n"  # the password line was consumed before the command
    for stored in isolated_env.glob("operations.db*"):  # the database and its WAL
        assert secret.encode() not in stored.read_bytes(), stored
    with AuditLog(isolated_env / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and secret not in " ".join(record.argv)


def test_sudo_runs_the_command_in_the_target_users_login_shell(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sudo()
    root_shell = pwd.getpwnam("root").pw_shell
    command = 'echo "$0"; echo {1..3}'
    code = main(["-i", str(lab_fleet.inventory), "run", "web03", "--sudo", "--json", "--", command])
    out, err = capsys.readouterr()
    assert code == 0, err
    (row,) = map(json.loads, out.splitlines())
    shell, braces = row["stdout"].splitlines()
    assert shell == root_shell  # what root gets on a terminal, not always /bin/sh
    if Path(root_shell).name == "bash":
        assert braces == "1 2 3"


@both_engines
def test_a_command_failing_under_sudo_is_never_ok(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sudo()
    code = main(
        ["-i", str(lab_fleet.inventory), "run", "web04", "--sudo", "--json", "--", "exit 3"]
    )
    out, _ = capsys.readouterr()
    assert code == 1
    (row,) = map(json.loads, out.splitlines())
    assert (row["status"], row["exit_status"]) == ("failed", 3)


def with_become_pass(
    inventory: Path, host: str, password: str, command: str, *, home: Path, feed: Path
) -> subprocess.CompletedProcess[str]:
    """``herd run HOST -K`` typing ``password`` at the prompt, with a variable and ``--stdin``."""
    argv = [sys.executable, "-m", "herd", "-i", str(inventory), "run", host, "--json", "-K",
            "--env", "GREETING=hi there", "--stdin", str(feed), "--", command]  # fmt: skip
    return subprocess.run(
        argv,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HERD_HOME": str(home)},
        start_new_session=True,  # no controlling terminal: the prompt reads stdin
    )


def check_become_pass(inventory: Path, host: str, user: str, password: str, tmp_path: Path) -> None:
    """The right password runs the command as root, variables and stdin intact; a wrong one
    fails plainly."""
    feed = tmp_path / "feed"
    feed.write_text("from stdin\n")
    command = 'id -u; echo "$GREETING $SUDO_USER"; cat'
    result = with_become_pass(inventory, host, password, command, home=tmp_path, feed=feed)
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = map(json.loads, result.stdout.splitlines())
    assert row["stdout"] == f"0\nhi there {user}\nfrom stdin\n"
    assert "Warning" not in result.stderr  # the password is read quietly off a pipe
    wrong = with_become_pass(inventory, host, "bad-password", command, home=tmp_path, feed=feed)
    assert wrong.returncode == 1
    (row,) = map(json.loads, wrong.stdout.splitlines())
    assert row["status"] == "failed" and "sudo did not accept the password" in row["stderr"]


def test_ask_become_pass_works_when_the_login_shell_is_bash(
    bash_sudoer: tuple[Fleet, str, str], tmp_path: Path
) -> None:
    fleet, user, password = bash_sudoer
    (host,) = fleet.names()
    inventory = with_user(fleet, host, user, tmp_path / "inventory.yml")
    check_become_pass(inventory, host, user, password, tmp_path)
    command = "[[ -n x ]] && echo bash"
    feed = tmp_path / "feed"
    bash = with_become_pass(inventory, host, password, command, home=tmp_path, feed=feed)
    assert json.loads(bash.stdout)["stdout"] == "bash\n", bash.stdout + bash.stderr


@pytest.fixture
def busybox_sudoer(dropbear_fleet: DropbearFleet) -> Iterator[tuple[DropbearFleet, str, str]]:
    """A user of the Dropbear hosts whose login shell is BusyBox sh, with a sudo that asks a
    password."""
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd")
    need_sudo()
    name = f"herdbb{os.getpid() % 100000}"
    password = f"pw-{time.monotonic_ns()}"
    sudoers = Path(f"/etc/sudoers.d/{name}")
    userland = dropbear_fleet.userland
    home = userland.dir / f"home-{name}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        sudoers.write_text(f"{name} ALL=(ALL:ALL) ALL\n")
        sudoers.chmod(0o440)
        (home / ".ssh").mkdir(parents=True)
        shutil.copy(userland.home / ".ssh" / "authorized_keys", home / ".ssh")
        for path in (home, home / ".ssh", home / ".ssh" / "authorized_keys"):
            shutil.chown(path, name)
        userland.add_login(name, home)
        yield dropbear_fleet, name, password
    finally:
        userland.remove_login(name)
        sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", "-f", name], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_ask_become_pass_works_when_the_login_shell_is_busybox_sh(
    busybox_sudoer: tuple[DropbearFleet, str, str], tmp_path: Path
) -> None:
    fleet, user, password = busybox_sudoer
    inventory = with_user(fleet, "web02", user, tmp_path / "inventory.yml")  # type: ignore[arg-type]
    check_become_pass(inventory, "web02", user, password, tmp_path)
    login = herd(tmp_path, inventory, "run", "web02", "--json", "--", "readlink /proc/$$/exe")
    assert rows(login.stdout)["web02"]["stdout"] == f"{fleet.userland.real}/bin/busybox\n"


def test_become_user_and_method_choose_whom_to_become_and_how(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sudo()
    # su runs the target's login shell (nobody has none) and needs no password from root
    choices = [("sudo", "nobody"), ("su", "root")]
    for method, user in choices if os.geteuid() == 0 else choices[:1]:
        argv = ["-i", str(lab_fleet.inventory), "run", "web01", "--json", "--become",
                "--become-user", user, "--become-method", method, "--", "id -un"]  # fmt: skip
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, (method, out, err)
        (row,) = map(json.loads, out.splitlines())
        assert row["stdout"] == f"{user}\n", method


@both_engines
def test_the_inventorys_become_variables_apply_per_host(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sudo()
    document = yaml.safe_load(lab_fleet.inventory.read_text())
    document["all"]["children"]["db"]["hosts"]["db01"].update(
        ansible_become=True, ansible_become_user="nobody"
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(document))
    assert main(["-i", str(inventory), "run", "db", "--json", "--", "id -un"]) == 0
    got = {
        row["host"]: row["stdout"] for row in map(json.loads, capsys.readouterr().out.splitlines())
    }
    assert got == {"db01": "nobody\n", "db02": f"{lab_fleet.user}\n"}


def test_a_password_su_or_doas_could_not_read_is_refused_before_anything_runs(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    argv = ["-i", str(lab_fleet.inventory), "run", "web01", "-K", "--become-method", "su",
            "--", "true"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "herd: error: --become-method: su reads a password only from a terminal, and herd runs"
        " commands without one: use sudo, or a rule that needs no password\n"
    )
    assert not (isolated_env / "operations.db").exists()
