"""Start the builtin engine: one detached asyncssh server process for the whole fleet.

The server (``python -m herd.lab.builtin SPEC``) reads the hosts from
DIR/builtin.json, forks into the background and exits its foreground half only
once every host listens (or with the reason one could not), like sshd does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from herd.errors import LabError
from herd.lab.files import LabFiles
from herd.lab.plan import PlannedHost

__all__ = ["marker", "spec_path", "start"]

_START_TIMEOUT = 60.0


def spec_path(files: LabFiles) -> Path:
    """The file that tells the builtin server which hosts to serve."""
    return files.dir / "builtin.json"


def marker(files: LabFiles) -> str:
    """What the builtin server's command line contains: its spec file."""
    return str(spec_path(files))


def start(files: LabFiles, hosts: Sequence[PlannedHost]) -> int:
    """Start the server for ``hosts`` (keys already written); return its PID."""
    spec = {
        "dir": str(files.dir),
        "authorized_keys": str(files.authorized_keys),
        "pid_file": str(files.builtin_pid),
        "log_file": str(files.builtin_log),
        "hosts": [
            {
                "name": host.name,
                "address": host.address,
                "port": host.port,
                "host_key": str(files.host_key(host.name)),
                "home": str(files.home(host.name)),
            }
            for host in hosts
        ],
    }
    try:
        for host in hosts:
            files.home(host.name).mkdir(parents=True, exist_ok=True)
        spec_path(files).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
        files.builtin_pid.unlink(missing_ok=True)
    except OSError as exc:
        raise LabError(f"cannot write the builtin lab files in {files.dir}: {exc}") from exc
    command = [sys.executable, "-m", "herd.lab.builtin", marker(files)]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        limit = f"{_START_TIMEOUT:.0f} s"
        raise LabError(f"the builtin lab server did not start within {limit}") from None
    except OSError as exc:
        raise LabError(f"cannot start the builtin lab server: {exc}") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise LabError(lines[-1] if lines else "the builtin lab server failed to start")
    try:
        return int(files.builtin_pid.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise LabError(f"the builtin lab server wrote no PID file: {exc}") from exc
