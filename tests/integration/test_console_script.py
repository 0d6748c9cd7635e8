"""The installed ``herd`` console script prints nothing on stderr that herd did not write.

Third-party warnings (asyncssh touching cryptography's deprecated DSA classes, say)
must never reach a user; these run the real entry point in a fresh interpreter,
with no pytest warning filters in between.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_run_local import local_inventory

HERD = Path(sys.executable).with_name("herd")


def herd(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERD_HOME": str(home), "NO_COLOR": "1"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [str(HERD), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_the_console_script_is_installed_beside_the_interpreter() -> None:
    assert HERD.is_file() and os.access(HERD, os.X_OK)


@pytest.mark.parametrize("command", [["--help"], ["run", "--help"], ["ftp", "--help"]])
def test_help_writes_nothing_on_stderr(command: list[str], isolated_env: Path) -> None:
    done = herd(*command, home=isolated_env)
    assert done.returncode == 0
    assert done.stderr == ""


def test_a_successful_run_writes_only_herds_own_summary_on_stderr(
    tmp_path: Path, isolated_env: Path
) -> None:
    inventory = local_inventory(tmp_path, 2)
    done = herd("-i", str(inventory), "run", "all", "--json", "--", "true", home=isolated_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"status": "ok"') == 2
    summary, recorded = done.stderr.splitlines()
    assert summary.startswith("2 hosts: 2 ok"), done.stderr
    assert recorded == "recorded as operation 1: herd log show 1"


def test_listing_hosts_writes_nothing_on_stderr(tmp_path: Path, isolated_env: Path) -> None:
    inventory = local_inventory(tmp_path, 2)
    done = herd("-i", str(inventory), "hosts", "all", home=isolated_env)
    assert done.returncode == 0
    assert "node1" in done.stdout and "node2" in done.stdout
    assert done.stderr == ""
