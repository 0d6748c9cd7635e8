"""push and pull with --become: a non-root login writes and reads root-owned paths.

The login user (bash, sudo with a password) cannot write /root-owned directories
nor read a 0600 root file; with --become -K the SFTP session runs as root, so the
same atomic, verified transfer lands there, owned by root.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import Fleet
from .test_run_faults import with_user

pytestmark = pytest.mark.system


def herd(args: list[str], password: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herd", *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, "HERD_HOME": str(home)},
        start_new_session=True,  # no terminal: -K reads the password from stdin
    )


def test_push_and_pull_become_root_for_paths_the_login_cannot_touch(
    bash_sudoer: tuple[Fleet, str, str], tmp_path: Path, isolated_env: Path
) -> None:
    fleet, user, password = bash_sudoer
    (host,) = fleet.names()
    inventory = with_user(fleet, host, user, tmp_path / "inventory.yml")
    root_only = Path(tempfile.mkdtemp(prefix="herd-become-"))  # root's, 0700
    try:
        secret = root_only / "secret.conf"
        secret.write_text("root only\n")
        secret.chmod(0o600)
        source = tmp_path / "motd"
        source.write_text("pushed as root\n")
        base = ["-i", str(inventory), "--home", str(isolated_env)]
        denied = herd(
            [*base, "push", "all", str(source), f"{root_only}/", "--json"], "", isolated_env
        )
        assert denied.returncode == 1
        assert "permission denied" in json.loads(denied.stdout)["error"].lower()

        pushed = herd([*base, "push", "all", str(source), f"{root_only}/", "--json", "-K"],
                      password, isolated_env)  # fmt: skip
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        landed = root_only / "motd"
        assert landed.read_text() == "pushed as root\n"
        assert landed.stat().st_uid == 0
        again = herd([*base, "push", "all", str(source), f"{root_only}/", "--json", "-K"],
                     password, isolated_env)  # fmt: skip
        row = json.loads(again.stdout)
        assert (row["status"], row["bytes"], row["skipped"]) == ("ok", 0, 1)  # verified as root

        pulled_dir = tmp_path / "pulled"
        pulled = herd([*base, "pull", "all", str(secret), str(pulled_dir), "--json", "--become",
                       "-K"], password, isolated_env)  # fmt: skip
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        copy = pulled_dir / host / str(secret).lstrip("/")
        assert copy.read_text() == "root only\n"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    finally:
        shutil.rmtree(root_only, ignore_errors=True)
