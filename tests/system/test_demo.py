"""`make demo` stays true: the tour runs end to end against a real lab."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from herd.lab import ENGINES
from tests.system.conftest import need_sshd


@pytest.mark.system
@pytest.mark.timeout(180)
@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "auto"])
def test_demo_takes_the_whole_tour(engine: str) -> None:
    if engine == "openssh":
        need_sshd()
    result = subprocess.run(
        [sys.executable, "-m", "herd", "demo", "--engine", engine],
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # stderr holds herd's own summaries only: no third-party warning, no traceback
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    out = result.stdout
    assert "db02 is back" in out  # @failed retried the host that timed out
    assert "2 skipped" in out  # the second push sent nothing
    assert "nightly job done on cache01" in out  # pulled each host's own log
    assert "ok 8 records" in out  # the log verified
    assert "SHA-256 verified" in out  # the FTP round trip
    assert "lab down: 6 hosts" in out
