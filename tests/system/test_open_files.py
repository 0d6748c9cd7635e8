"""A hard limit on open files too low for the fan-out: herd lowers -f and every host ends ok.

Before, ``ulimit -n 48`` with ``-f 60`` on 60 hosts failed a third of them with
"[Errno 24] Too many open files".
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Fleet

pytestmark = pytest.mark.system

LIMIT = 48


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def test_sixty_forks_under_48_open_files_are_lowered_once_and_every_host_ends_ok(
    make_fleet: Callable[..., Fleet], tmp_path: Path
) -> None:
    fleet = make_fleet(60, groups="web=60")
    done = subprocess.run(
        [sys.executable, "-m", "herd", "--home", str(tmp_path / "home"), "-i",
         str(fleet.inventory), "run", "all", "-f", "60", "--json", "--", "echo up"],
        capture_output=True, text=True, timeout=100, check=False, preexec_fn=_low_limit,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 60
    assert {r["status"] for r in results} == {"ok"}, [r["error"] for r in results if r["error"]]
    warnings = [line for line in done.stderr.splitlines() if "open files" in line]
    assert len(warnings) == 1, done.stderr
    assert f"limited to {LIMIT}" in warnings[0]
    assert "-f lowered from 60 to" in warnings[0], warnings


def test_the_ftp_server_lowers_max_connections_to_the_open_files_limit() -> None:
    script = (
        "from herd.cli.ftp_serve import within_open_files\n"
        "from herd.ftp.settings import FtpSettings\n"
        "print(within_open_files(FtpSettings()).max_connections)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
        check=False, preexec_fn=_low_limit,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert 1 <= int(done.stdout) < LIMIT // 4
    assert done.stderr.count("open files are limited to 48") == 1
    assert "max_connections lowered from 2000 to" in done.stderr
