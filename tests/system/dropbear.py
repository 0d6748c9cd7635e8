"""Dropbear hosts with a BusyBox userland, on loopback, for the system tests.

Routers, switches and minimal containers run Dropbear with BusyBox's ``sh``;
these hosts are that, made from the real programs (Debian's ``dropbear-bin``
and ``busybox``) without touching the machine's own files. Each ``dropbear``
runs as root in a private mount namespace where:

- ``/etc`` is a directory of symlinks to the real ``/etc`` (so sudoers, shadow and
  users added later are seen live), except ``passwd``: its own copy, where the
  login user's home is the userland's (holding ``.ssh/authorized_keys``) and
  the login shell is ``/bin/sh``. Whole directories are mounted, never single
  files: a file mount vanishes from the namespace as soon as a tool such as
  ``useradd`` replaces the real file;
- ``/usr/bin`` and ``/usr/sbin`` (so ``/bin/sh`` and the whole ``PATH`` Dropbear
  sets) hold only BusyBox applets, plus ``sudo``; ``/usr/local`` is empty;
- for a host without SFTP, ``/usr/lib/openssh`` is an empty tmpfs, so
  ``/usr/lib/sftp-server`` (Dropbear's SFTP server) dangles.

Host variants: ``full`` (every applet), ``nohash`` (no ``sha256sum``, ``shasum``
or ``openssl``), ``nosetsid`` (no ``setsid``: a command cannot be given its own
process group), ``nosftp``, and ``bare`` (neither SFTP nor a hash tool). Each
host listens on its own 127.0.2.x address; its ``dropbear -F`` is a child of the
test process, stopped by PID.
"""

from __future__ import annotations

import os
import pwd
import random
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from herd.lab.processes import ProcessState, process_state, signal_tree, terminate

__all__ = ["DropbearFleet", "DropbearHost", "Userland", "need_dropbear"]

DROPBEAR = "/usr/sbin/dropbear"
_LEAVE_OUT = {
    "full": frozenset(),
    "nosftp": frozenset(),
    "nohash": frozenset({"sha256sum", "shasum", "openssl"}),
    "nosetsid": frozenset({"setsid"}),
    "bare": frozenset({"sha256sum", "shasum", "openssl"}),  # and no sftp-server either
}
_NO_SFTP = frozenset({"nosftp", "bare"})
_READY_TIMEOUT = 15.0
_PORT_TRIES = 20
_SIGNAL_WAIT = 5.0


def need_dropbear() -> None:
    """Skip unless root with Dropbear and BusyBox (a missing one as root is a failure)."""
    if os.geteuid() != 0:
        pytest.skip("Dropbear hosts need root (a private mount namespace per host)")
    needed = (DROPBEAR, "/usr/bin/dropbearkey", "/usr/bin/busybox", "/usr/bin/unshare")
    missing = [path for path in needed if not Path(path).exists()]
    if missing:
        pytest.fail(f"missing although we run as root: {missing}: `make test` installs them")


class Userland:
    """What every Dropbear host of a session shares: the BusyBox trees, /etc, home, client key."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.real = directory / "real"  # the real /etc, /usr/bin, /usr/sbin, inside a namespace
        self.etc = directory / "etc"
        self.home = directory / "home"
        self.empty = directory / "empty"
        self.client_key = directory / "client_key"
        self._logins: dict[str, Path] = {self.user: self.home}
        for name in ("etc", "bin", "sbin"):
            (self.real / name).mkdir(parents=True)
        self.empty.mkdir()
        for variant in _LEAVE_OUT:
            self._busybox_tree(variant)
        self._etc()
        (self.home / ".ssh").mkdir(parents=True, mode=0o700)
        self.home.chmod(0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "herd-dropbear-client",
             "-f", str(self.client_key)],
            check=True,
        )  # fmt: skip
        authorized = self.home / ".ssh" / "authorized_keys"
        authorized.write_text(self.client_key.with_name("client_key.pub").read_text())
        authorized.chmod(0o600)

    def bin_dir(self, variant: str) -> Path:
        return self.dir / "bb" / ("full" if variant == "nosftp" else variant)

    def _busybox_tree(self, variant: str) -> None:
        if variant == "nosftp":
            return
        tree = self.bin_dir(variant)
        tree.mkdir(parents=True)
        # the applets link to busybox, which links to the real binary as the namespace sees it
        (tree / "busybox").symlink_to(self.real / "bin" / "busybox")
        listed = subprocess.run(["busybox", "--list"], capture_output=True, text=True, check=True)
        for applet in listed.stdout.split():
            if applet != "busybox" and applet not in _LEAVE_OUT[variant]:
                (tree / applet).symlink_to("busybox")
        (tree / "sudo").symlink_to(self.real / "bin" / "sudo")  # where PATH reaches sudo

    def _etc(self) -> None:
        self.etc.mkdir()
        for entry in os.listdir("/etc"):
            if entry != "passwd":
                (self.etc / entry).symlink_to(self.real / "etc" / entry)
        self.write_passwd()

    def add_login(self, user: str, home: Path) -> None:
        """Let ``user`` (in the real /etc/passwd) log in with BusyBox sh and ``home``."""
        self._logins[user] = home
        self.write_passwd()

    def remove_login(self, user: str) -> None:
        self._logins.pop(user, None)
        self.write_passwd()

    def write_passwd(self) -> None:
        """The real passwd with our logins' home and shell changed, replaced in one rename."""
        lines = []
        for line in Path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) == 7 and fields[0] in self._logins:
                fields[5], fields[6] = str(self._logins[fields[0]]), "/bin/sh"
            lines.append(":".join(fields))
        scratch = self.etc / ".passwd.new"
        scratch.write_text("\n".join(lines) + "\n")
        scratch.chmod(0o644)
        scratch.replace(self.etc / "passwd")

    def launch_script(self, variant: str, address: str, port: int, key: Path, pid: Path) -> str:
        """The shell code that sets up one host's mount namespace and becomes its dropbear."""
        q = shlex.quote
        mounts = [
            ("/etc", self.real / "etc"),
            ("/usr/bin", self.real / "bin"),
            ("/usr/sbin", self.real / "sbin"),
            (self.etc, "/etc"),
            (self.empty, "/usr/local"),
            (self.bin_dir(variant), "/usr/sbin"),
            (self.bin_dir(variant), "/usr/bin"),
        ]
        lines = ["set -e"]
        if variant in _NO_SFTP:
            lines.append(
                "/usr/bin/mount -t tmpfs -o size=64k,mode=0755 herd-nosftp /usr/lib/openssh"
            )
        lines += [f"/usr/bin/mount --bind {q(str(a))} {q(str(b))}" for a, b in mounts]
        dropbear = self.real / "sbin" / "dropbear"
        # -F foreground, -E log to stderr, -s keys only, -e pass HERD_LAB_HOST on
        options = f"-F -E -s -e -p {address}:{port} -r {q(str(key))} -P {q(str(pid))}"
        lines.append(f"exec {q(str(dropbear))} {options}")
        return "\n".join(lines)


@dataclass
class DropbearHost:
    """One Dropbear host: its name and group, where it listens, its variant, its process."""

    name: str
    group: str
    address: str
    variant: str
    port: int = 0
    fingerprint: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


class DropbearFleet:
    """Dropbear hosts sharing one port, with the helpers of the OpenSSH test fleet.

    ``.inventory`` (same layout as the lab's), ``.known_hosts``, ``.client_key``,
    ``.user``, ``.hosts``, ``.host(name)``, ``.names(group)``, ``.stop``,
    ``.freeze``/``.thaw``, ``.restart``, ``.regenerate_host_key``, ``.heal``, ``.down``.
    """

    engine = "dropbear"

    def __init__(
        self, directory: Path, userland: Userland, hosts: Sequence[tuple[str, str, str]], first: int
    ) -> None:
        """``hosts``: (name, group, variant); addresses are 127.0.2.``first``, and on."""
        self.dir = directory
        self.userland = userland
        self.inventory = directory / "inventory.yml"
        self.known_hosts = directory / "known_hosts"
        self.hosts = [
            DropbearHost(name, group, f"127.0.2.{first + index}", variant)
            for index, (name, group, variant) in enumerate(hosts)
        ]
        self.port = 0

    @property
    def user(self) -> str:
        return self.userland.user

    @property
    def client_key(self) -> Path:
        return self.userland.client_key

    def host(self, name: str) -> DropbearHost:
        return next(h for h in self.hosts if h.name == name)

    def names(self, group: str | None = None) -> list[str]:
        return [h.name for h in self.hosts if group is None or h.group == group]

    def host_key_path(self, name: str) -> Path:
        return self.dir / name / "host_key"

    # -- up and down ------------------------------------------------------------------------

    def up(self) -> DropbearFleet:
        """Start every host on one free port (another port when one is taken)."""
        for name in self.names():
            (self.dir / name).mkdir(parents=True, exist_ok=True)
            self._new_host_key(name)
        failed = ""
        for _ in range(_PORT_TRIES):
            self.port = random.randint(20000, 60000)
            failed = self._start(self.hosts)
            if not failed:
                self._write_files()
                return self
            self.down()
            if "in use" not in failed:  # a port another test run took: try another
                break
        raise AssertionError(f"the Dropbear fleet in {self.dir} did not come up: {failed}")

    def _new_host_key(self, name: str) -> None:
        key = self.host_key_path(name)
        key.unlink(missing_ok=True)
        made = subprocess.run(
            ["dropbearkey", "-t", "ed25519", "-f", str(key)],
            capture_output=True,
            text=True,
            check=True,
        )
        public = next(line for line in made.stdout.splitlines() if line.startswith("ssh-ed25519 "))
        self.host(name).fingerprint = next(
            line.split()[-1] for line in made.stdout.splitlines() if line.startswith("Fingerprint:")
        )
        (self.dir / name / "host_key.pub").write_text(public + "\n")

    def _start(self, hosts: Iterable[DropbearHost]) -> str:
        """Start ``hosts`` at once; wait until each listens. Returns why one did not, or ''."""
        started = []
        for host in hosts:
            host.port = self.port
            pid_file, log = self.dir / host.name / "pid", self.dir / host.name / "log"
            pid_file.unlink(missing_ok=True)
            script = self.userland.launch_script(
                host.variant, host.address, self.port, self.host_key_path(host.name), pid_file
            )
            with log.open("ab") as out:
                host.process = subprocess.Popen(
                    ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    env={"HERD_LAB_HOST": host.name, "PATH": "/usr/bin:/bin"},
                )
            started.append(host)
        deadline = time.monotonic() + _READY_TIMEOUT
        for host in started:
            pid_file = self.dir / host.name / "pid"
            assert host.process is not None
            while not pid_file.exists():
                if host.process.poll() is not None:
                    return f"{host.name}: {(self.dir / host.name / 'log').read_text()[-500:]}"
                if time.monotonic() > deadline:
                    return f"{host.name}: no PID file after {_READY_TIMEOUT:g} s"
                time.sleep(0.01)
        return ""

    def _write_files(self) -> None:
        lines = []
        children: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
        for host in self.hosts:
            public = (self.dir / host.name / "host_key.pub").read_text().split()
            lines.append(f"[{host.address}]:{self.port} {public[0]} {public[1]}")
            group = children.setdefault(host.group, {"hosts": {}})
            group["hosts"][host.name] = {"ansible_host": host.address}
        self.known_hosts.write_text("\n".join(lines) + "\n")
        known = str(self.known_hosts)
        document = {
            "all": {
                "vars": {
                    "ansible_port": self.port,
                    "ansible_user": self.user,
                    "ansible_ssh_private_key_file": str(self.client_key),
                    "known_hosts": known,
                    "ansible_ssh_common_args": (
                        f"-o UserKnownHostsFile={shlex.quote(known)} -o StrictHostKeyChecking=yes"
                    ),
                },
                "children": children,
            }
        }
        self.inventory.write_text(yaml.safe_dump(document, sort_keys=False))

    def _marker(self, host: DropbearHost) -> str:
        return str(self.dir / host.name / "pid")  # on dropbear's command line (-P)

    def down(self) -> None:
        """Stop exactly the dropbears this fleet started, and the sessions they forked."""
        for host in self.hosts:
            self._terminate(host)

    def _terminate(self, host: DropbearHost) -> None:
        """TERM, then KILL, the host's dropbear and what it forked; reap it."""
        if host.process is None:
            return
        terminate([(host.process.pid, self._marker(host))])
        host.process.wait(timeout=10)
        host.process = None

    # -- breaking one host on purpose ---------------------------------------------------------

    def state(self, name: str) -> ProcessState:
        host = self.host(name)
        return process_state(host.pid, self._marker(host))

    def stop(self, name: str) -> None:
        """Kill host ``name``'s dropbear and its sessions: connections are refused afterwards."""
        self._terminate(self.host(name))

    def freeze(self, name: str) -> None:
        """SIGSTOP the host's dropbear and its sessions: connections hang in the handshake."""
        self._signal_and_wait(name, signal.SIGSTOP, ProcessState.FROZEN)

    def thaw(self, name: str) -> None:
        self._signal_and_wait(name, signal.SIGCONT, ProcessState.RUNNING)

    def _signal_and_wait(self, name: str, signum: int, expected: ProcessState) -> None:
        host = self.host(name)
        if not signal_tree(host.pid or 0, self._marker(host), signum):
            raise AssertionError(f"{name} is not running")
        deadline = time.monotonic() + _SIGNAL_WAIT
        while self.state(name) is not expected:
            assert time.monotonic() < deadline, f"{name} is not {expected.value} after {signum!r}"
            time.sleep(0.005)

    def restart(self, name: str) -> int:
        """Stop host ``name`` if it runs and start it again on the same address and port."""
        host = self.host(name)
        self._terminate(host)
        failed = self._start([host])
        assert not failed, failed
        assert host.pid is not None
        return host.pid

    def regenerate_host_key(self, name: str) -> str:
        """A new host key (known_hosts keeps the old one), and a restart; its fingerprint."""
        self._new_host_key(name)
        self.restart(name)
        return self.host(name).fingerprint

    def heal(self) -> None:
        """Thaw frozen hosts and restart stopped ones."""
        for host in self.hosts:
            state = self.state(host.name)
            if state is ProcessState.FROZEN:
                self.thaw(host.name)
            elif state is ProcessState.GONE:
                self.restart(host.name)
