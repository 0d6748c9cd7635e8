"""Bring a lab fleet up and down, and break single hosts on purpose for tests.

``Lab.up`` checks everything it can before starting anything (host count,
groups, engine, free ports, no lab already up), writes keys, known_hosts and
the inventory, starts the engine and records the PIDs in DIR/lab.json; if any
host fails to come up, everything started is stopped again.
"""

from __future__ import annotations

import datetime
import errno
import getpass
import os
import pwd
import random
import shutil
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from herd.errors import LabError
from herd.lab import builtin_launcher, openssh
from herd.lab.files import LabFiles, inventory_document
from herd.lab.keys import known_hosts_line, write_key_pair
from herd.lab.plan import DEFAULT_PORT, PlannedHost, address_of, plan_hosts
from herd.lab.processes import ProcessState, process_state, signal_tree, terminate
from herd.lab.state import LabHost, LabState, read_state, write_state

__all__ = ["ENGINES", "Lab", "current_user", "free_port", "pick_engine"]

ENGINES = ("auto", "openssh", "builtin")
_SIGNAL_WAIT = 5.0  # seconds for a signalled sshd to show as stopped or running


def current_user() -> str:
    """The login name the lab's hosts accept: the user running herd."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return getpass.getuser()


def pick_engine(engine: str) -> tuple[str, str | None]:
    """The engine to use and the sshd binary (for openssh); ``auto`` prefers openssh."""
    if engine not in ENGINES:
        raise LabError(f"unknown lab engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "builtin":
        return "builtin", None
    sshd = openssh.find_sshd()
    if sshd is not None:
        return "openssh", sshd
    if engine == "openssh":
        raise LabError("sshd not found: install OpenSSH's server or use --engine builtin")
    return "builtin", None


def _bind_problem(address: str, port: int) -> str | None:
    """Why ``address:port`` cannot be bound as sshd binds it, or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd binds
        try:
            probe.bind((address, port))
        except OSError as exc:
            return "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
    return None


def _check_ports_free(hosts: Sequence[PlannedHost]) -> None:
    """Refuse to start when some host's address:port is already taken."""
    for host in hosts:
        reason = _bind_problem(host.address, host.port)
        if reason is not None:
            raise LabError(
                f"port {host.port} on {host.address} ({host.name}) is {reason}: "
                "pick another with --port"
            )


def free_port(count: int, preferred: int = DEFAULT_PORT, tries: int = 50) -> int:
    """A port free on the addresses of all ``count`` lab hosts: ``preferred`` if it is."""
    addresses = [address_of(k) for k in range(1, count + 1)]
    candidates = [preferred, *random.sample(range(20000, 60000), tries)]
    for port in candidates:
        if all(_bind_problem(address, port) is None for address in addresses):
            return port
    raise LabError(f"no port free on all {count} lab addresses: pick one with --port")


def _read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class Lab:
    """A lab directory: its files, its state, and what can be done to its hosts."""

    def __init__(self, directory: Path) -> None:
        self.files = LabFiles(directory.expanduser().absolute())

    # -- what the tests and the CLI read ------------------------------------------------

    @property
    def dir(self) -> Path:
        return self.files.dir

    @property
    def inventory(self) -> Path:
        return self.files.inventory

    @property
    def known_hosts(self) -> Path:
        return self.files.known_hosts

    @property
    def client_key(self) -> Path:
        return self.files.client_key

    @property
    def state(self) -> LabState:
        """The recorded state; LabError when no lab is up here."""
        state = read_state(self.files.state)
        if state is None:
            raise LabError(f"no lab is up in {self.dir}")
        return state

    @property
    def engine(self) -> str:
        return self.state.engine

    @property
    def port(self) -> int:
        return self.state.port

    @property
    def hosts(self) -> list[LabHost]:
        return list(self.state.hosts)

    def host(self, name: str) -> LabHost:
        return self.state.host(name)

    def host_key_path(self, name: str) -> Path:
        """The private host key file of host ``name``."""
        self.state.host(name)
        return self.files.host_key(name)

    def marker(self, name: str) -> str:
        """What the command line of the process serving ``name`` contains."""
        if self.state.engine == "builtin":
            return builtin_launcher.marker(self.files)
        return openssh.config_marker(self.files, name)

    def status(self) -> list[tuple[LabHost, ProcessState]]:
        """Each host with the state of the process serving it."""
        return [(host, process_state(host.pid, self.marker(host.name))) for host in self.hosts]

    # -- up and down ------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        directory: Path,
        count: int,
        *,
        engine: str = "auto",
        groups: list[tuple[str, int]] | None = None,
        port: int = DEFAULT_PORT,
    ) -> Lab:
        """Start ``count`` hosts in ``directory``; LabError (nothing left running) if it fails."""
        lab = cls(directory)
        planned = plan_hosts(count, groups, port)
        chosen, sshd = pick_engine(engine)
        lab._refuse_if_up()
        _check_ports_free(planned)
        fingerprints = lab._write_files(planned)
        try:
            if chosen == "openssh":
                assert sshd is not None
                pids = lab._start_openssh(planned, sshd)
                server_pid = None
            else:
                server_pid = builtin_launcher.start(lab.files, planned)
                pids = dict.fromkeys((host.name for host in planned), server_pid)
            hosts = tuple(
                LabHost(h.name, h.group, h.address, h.port, pids[h.name], fingerprints[h.name])
                for h in planned
            )
            started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            state = LabState(chosen, str(lab.dir), port, current_user(), started, hosts, server_pid)
            write_state(lab.files.state, state)
        except OSError as exc:
            lab._stop_started(planned)
            raise LabError(f"cannot start the lab in {lab.dir}: {exc}") from exc
        except BaseException:  # Ctrl-C or a failed host: leave nothing running behind
            lab._stop_started(planned)
            raise
        return lab

    def _refuse_if_up(self) -> None:
        state = read_state(self.files.state)
        if state is None:
            return
        if any(status is not ProcessState.GONE for _, status in self.status()):
            raise LabError(f"a lab is already up in {self.dir}: run `herd lab down` first")
        self.files.state.unlink(missing_ok=True)  # stale: its processes are gone

    def _write_files(self, planned: Sequence[PlannedHost]) -> dict[str, str]:
        """Keys, authorized_keys, known_hosts and inventory; returns host fingerprints."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            user = current_user()
            client_public, _ = write_key_pair(self.files.client_key, f"herd-lab-client@{user}")
            self.files.authorized_keys.write_text(client_public + "\n", encoding="ascii")
            fingerprints: dict[str, str] = {}
            known: list[str] = []
            for host in planned:
                self.files.host_dir(host.name).mkdir(parents=True, exist_ok=True)
                public, fingerprints[host.name] = write_key_pair(
                    self.files.host_key(host.name), f"herd-lab-{host.name}", public_file=False
                )
                known.append(known_hosts_line(host.address, host.port, public))
            self.files.known_hosts.write_text("\n".join(known) + "\n", encoding="ascii")
            self.files.inventory.write_text(
                inventory_document(self.files, list(planned), user), encoding="utf-8"
            )
        except OSError as exc:
            raise LabError(f"cannot write the lab files in {self.dir}: {exc}") from exc
        return fingerprints

    def _start_openssh(self, planned: Sequence[PlannedHost], sshd: str) -> dict[str, int]:
        extra = openssh.version_options(sshd)
        for host in planned:
            openssh.write_sshd_config(self.files, host, extra)
        outcome = openssh.start_sshd(self.files, planned, sshd)
        failed = [(h, outcome[h.name]) for h in planned if not isinstance(outcome[h.name], int)]
        if failed:
            host, reason = failed[0]
            more = f" (and {len(failed) - 1} more hosts)" if len(failed) > 1 else ""
            where = f"{host.name} ({host.address}:{host.port})"
            raise LabError(f"{where} did not start: {reason}{more}")
        return {name: pid for name, pid in outcome.items() if isinstance(pid, int)}

    def _stop_started(self, planned: Sequence[PlannedHost]) -> None:
        """Stop every server whose PID file exists (a failed start leaves no process behind)."""
        started: list[tuple[int, str]] = []
        builtin_pid = _read_pid_file(self.files.builtin_pid)
        if builtin_pid is not None:
            started.append((builtin_pid, builtin_launcher.marker(self.files)))
        for host in planned:
            pid = _read_pid_file(self.files.pid_file(host.name))
            if pid is not None:
                started.append((pid, openssh.config_marker(self.files, host.name)))
        terminate(started)

    def down(self, *, purge: bool = False) -> list[int]:
        """Stop exactly the processes this lab started; return their PIDs.

        The state file goes; with ``purge`` the whole lab directory goes too.
        """
        state = self.state
        if state.engine == "builtin":
            processes = [(state.server_pid or 0, builtin_launcher.marker(self.files))]
        else:
            processes = [(host.pid or 0, self.marker(host.name)) for host in state.hosts]
        stopped = terminate(processes)
        self.files.state.unlink(missing_ok=True)
        self.files.builtin_pid.unlink(missing_ok=True)
        for host in state.hosts:
            self.files.pid_file(host.name).unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.dir, ignore_errors=True)
        return stopped

    # -- breaking one host on purpose (openssh engine) --------------------------------------

    def _openssh_host(self, name: str) -> LabHost:
        state = self.state
        if state.engine != "openssh":
            raise LabError(f"only an openssh lab can stop or freeze one host ({name})")
        return state.host(name)

    def stop(self, name: str) -> None:
        """Kill host ``name``'s sshd and its sessions: connections are refused afterwards."""
        host = self._openssh_host(name)
        terminate([(host.pid or 0, self.marker(name))])

    def freeze(self, name: str) -> None:
        """SIGSTOP host ``name``'s sshd and its sessions: connections hang in the handshake."""
        self._signal_and_wait(name, signal.SIGSTOP, ProcessState.FROZEN)

    def thaw(self, name: str) -> None:
        """SIGCONT host ``name``'s sshd and its sessions after ``freeze``."""
        self._signal_and_wait(name, signal.SIGCONT, ProcessState.RUNNING)

    def _signal_and_wait(self, name: str, signum: int, expected: ProcessState) -> None:
        """Signal the host's process tree and wait until its sshd shows the expected state."""
        pid = self._openssh_host(name).pid or 0
        marker = self.marker(name)
        if not signal_tree(pid, marker, signum):
            raise LabError(f"{name} is not running")
        deadline = time.monotonic() + _SIGNAL_WAIT
        while process_state(pid, marker) is not expected:
            if time.monotonic() > deadline:
                raise LabError(f"{name} (pid {pid}) is not {expected.value} after {signum!r}")
            time.sleep(0.005)

    def restart(self, name: str) -> int:
        """Stop host ``name``'s sshd if it runs and start it again; return the new PID."""
        self.stop(name)
        sshd = openssh.find_sshd()
        if sshd is None:
            raise LabError("sshd not found: cannot restart a host")
        host = self.host(name)
        planned = PlannedHost(host.name, host.group, host.address, host.port)
        outcome = openssh.start_sshd(self.files, [planned], sshd)[name]
        if not isinstance(outcome, int):
            raise LabError(f"{name} ({host.address}:{host.port}) did not restart: {outcome}")
        write_state(self.files.state, self.state.with_pid(name, outcome))
        return outcome

    def regenerate_host_key(self, name: str) -> str:
        """Give host ``name`` a new host key (known_hosts keeps the old one) and restart it.

        Returns the new key's fingerprint; connecting with strict checking now fails.
        """
        self._openssh_host(name)
        _, fingerprint = write_key_pair(
            self.files.host_key(name), f"herd-lab-{name}", public_file=False
        )
        write_state(self.files.state, self.state.with_fingerprint(name, fingerprint))
        self.restart(name)
        return fingerprint
