"""The openssh engine: one real sshd per lab host, each with its own config and host key.

Each sshd daemonizes itself (so it outlives ``herd lab up``) and writes its PID
file once its socket listens: a host is ready when its PID file exists. All
hosts are started at once, so 200 come up in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from herd.errors import LabError
from herd.lab.files import LabFiles
from herd.lab.plan import PlannedHost

__all__ = ["config_marker", "find_sshd", "start_sshd", "version_options", "write_sshd_config"]

_STARTERS = 64  # sshd parents started at once; each exits once its daemon forked
_READY_TIMEOUT = 30.0


def find_sshd() -> str | None:
    """The sshd binary: on PATH, else the usual sbin places (not on a user's PATH)."""
    found = shutil.which("sshd")
    if found:
        return found
    for candidate in ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _version(sshd: str) -> tuple[int, int]:
    """sshd's (major, minor) version from ``sshd -V``; (0, 0) if it cannot tell."""
    try:
        done = subprocess.run([sshd, "-V"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return (0, 0)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", done.stdout + done.stderr)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _quoted(path: Path) -> str:
    return '"' + str(path) + '"'


def config_marker(files: LabFiles, name: str) -> str:
    """What the command line of host ``name``'s sshd contains: its config path."""
    return str(files.sshd_config(name))


def version_options(sshd: str) -> list[str]:
    """Config lines that only some sshd versions know (asked once per lab, not per host)."""
    if _version(sshd) >= (9, 8):
        # tests provoke failed logins on purpose; they must not lock the client out
        return ["PerSourcePenalties no"]
    return []


def write_sshd_config(files: LabFiles, host: PlannedHost, extra: Sequence[str] = ()) -> None:
    """Write one host's sshd_config: key-only login with the lab's client key, quiet, fast."""
    lines = [
        f"ListenAddress {host.address}:{host.port}",
        f"HostKey {_quoted(files.host_key(host.name))}",
        f"PidFile {_quoted(files.pid_file(host.name))}",
        f"AuthorizedKeysFile {_quoted(files.authorized_keys)}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "LogLevel ERROR",
        # benchmarks open hundreds of connections at once
        "MaxStartups 1000",
        "MaxSessions 100",
        "UseDNS no",
        # Debian's bash sources ~/.bashrc for sshd's commands unless it is not the first
        # shell; a heavy .bashrc would otherwise swamp every measurement. HERD_LAB_HOST tells
        # a command which lab host it runs on (they all share this machine's hostname).
        f"SetEnv SHLVL=1 HERD_LAB_HOST={host.name}",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "Subsystem sftp internal-sftp",
    ]
    lines.extend(extra)
    files.sshd_config(host.name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _privilege_separation_dir() -> None:
    """sshd running as root wants /run/sshd (Debian creates it only for its own service)."""
    if os.geteuid() == 0:
        try:
            Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise LabError(f"cannot create sshd's privilege separation dir: {exc}") from exc


def _launch(sshd: str, files: LabFiles, names: Sequence[str]) -> dict[str, str]:
    """Start one sshd per name at once (each daemonizes); map the failed ones to why."""
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    failed: dict[str, str] = {}
    for name in names:
        files.pid_file(name).unlink(missing_ok=True)
        files.log_file(name).unlink(missing_ok=True)
        command = [sshd, "-f", str(files.sshd_config(name)), "-E", str(files.log_file(name))]
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            failed[name] = f"cannot start {sshd}: {exc}"
            continue
        started.append((name, process))
    deadline = time.monotonic() + _READY_TIMEOUT
    for name, process in started:
        try:
            _, stderr = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            failed[name] = f"{sshd} did not daemonize within {_READY_TIMEOUT:.0f} s"
            continue
        if process.returncode != 0:
            reason = _one_line(stderr.decode(errors="replace"))
            failed[name] = reason or _one_line(_read(files.log_file(name))) or "sshd failed"
    return failed


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _one_line(text: str) -> str:
    """sshd's complaint on one line: its lines joined (the cause comes first)."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _command_lines() -> list[bytes]:
    """The command lines of every process we can see (none without /proc)."""
    lines: list[bytes] = []
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return lines
    for entry in entries:
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes())
            except OSError:
                continue
    return lines


def _wait_ready(files: LabFiles, hosts: Sequence[PlannedHost]) -> dict[str, int | str]:
    """Each host's PID once it listens, or the reason it did not come up."""
    outcome: dict[str, int | str] = {}
    pending = list(hosts)
    deadline = time.monotonic() + _READY_TIMEOUT
    while pending:
        still: list[PlannedHost] = []
        complaints: dict[str, str] = {}
        for host in pending:
            pid_text = _read(files.pid_file(host.name)).strip()
            if pid_text.isdigit():
                outcome[host.name] = int(pid_text)
                continue
            complaint = _one_line(_read(files.log_file(host.name)))
            if complaint:
                complaints[host.name] = complaint
            still.append(host)
        if complaints:  # a complaint is fatal only if that sshd is gone
            running = _command_lines()
            for name, complaint in complaints.items():
                if not any(config_marker(files, name).encode() in line for line in running):
                    outcome[name] = complaint
        pending = [host for host in still if host.name not in outcome]
        if pending and time.monotonic() > deadline:
            for host in pending:
                outcome[host.name] = f"no PID file after {_READY_TIMEOUT:.0f} s"
            break
        if pending:
            time.sleep(0.02)
    return outcome


def start_sshd(files: LabFiles, hosts: Sequence[PlannedHost], sshd: str) -> dict[str, int | str]:
    """Start one sshd per host, all at once; map each host to its PID or to why it failed.

    The configs and keys must already be written.
    """
    _privilege_separation_dir()
    outcome: dict[str, int | str] = {}
    names = [host.name for host in hosts]
    for first in range(0, len(names), _STARTERS):
        outcome.update(_launch(sshd, files, names[first : first + _STARTERS]))
    # sshd writes its PID file only once its socket listens; probing each port as well
    # would make every sshd fork and re-exec a child: seconds of CPU for 200 hosts
    outcome.update(_wait_ready(files, [h for h in hosts if h.name not in outcome]))
    return outcome
