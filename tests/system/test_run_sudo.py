"""``herd run --sudo`` through the real sudo on the OpenSSH fleet.

The lab's hosts log in as the user running the tests (root in CI), for whom
sudo asks no password: this checks the command really runs through sudo, with
its environment and stdin intact, and that the become password of
``--ask-become-pass`` never reaches the command's stdin, argv or the log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog

from .conftest import Fleet

pytestmark = pytest.mark.system


def need_sudo() -> None:
    if shutil.which("sudo") is None:
        if os.geteuid() != 0:
            pytest.skip("sudo is not installed and we are not root")
        pytest.fail("sudo is missing although we run as root: `make test` installs it")
    if subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode:
        pytest.skip("this user cannot sudo without a password")


def test_sudo_runs_the_command_as_root_with_its_variables_and_stdin(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sudo()
    feed = tmp_path / "feed"
    feed.write_text("from stdin\n")
    command = 'id -u; echo "sudo by $SUDO_USER"; echo "$GREETING"; cat'
    code = main(["-i", str(lab_fleet.inventory), "run", "web01", "--sudo", "--json",
                 "-e", "GREETING=hello there", "--stdin", str(feed), "--", command])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    (row,) = map(json.loads, out.splitlines())
    assert row["stdout"] == f"0\nsudo by {lab_fleet.user}\nhello there\nfrom stdin\n"


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
