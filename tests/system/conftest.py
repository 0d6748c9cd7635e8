"""The test fleets: real OpenSSH sshd and Dropbear processes on loopback, for every system test.

Fixtures (the contract other system tests code against):

- ``lab_fleet``: an 8-host fleet, groups web=4 (web01..web04), db=2
  (db01..db02), cache=2 (cache01..cache02), on one free random port, shared
  by the whole session and torn down at its end, even after failures. By
  default the openssh lab (127.0.1.1..127.0.1.8); ``@both_engines`` runs a
  test once on it and once on the same hosts served by Dropbear with a BusyBox
  userland (127.0.2.1..127.0.2.8, see ``dropbear.py``). Tests must leave it
  healthy; as a safety net, a host left stopped or frozen is restarted or
  thawed after each test.
- ``odd_hosts`` (session): Dropbear hosts ``nosftp``, ``nohash`` (no
  sha256sum) and ``nosetsid`` (no setsid), group ``odd``, in their own inventory.
- ``make_fleet(n=8, groups=None, engine="openssh")`` (function): a private fleet
  for tests that break hosts (``engine="dropbear"`` too); every fleet it made
  is torn down after the test.

A fleet has ``.dir``, ``.inventory``, ``.known_hosts``, ``.client_key``,
``.port``, ``.user``, ``.hosts`` (``.name``, ``.address``, ``.port``, ``.pid``,
``.group``, ``.fingerprint``), ``.host(name)``, ``.names(group=None)``,
``.stop(name)`` (connections refused), ``.freeze(name)`` / ``.thaw(name)``
(SIGSTOP/SIGCONT: the handshake hangs), ``.restart(name)``,
``.host_key_path(name)`` and ``.regenerate_host_key(name)`` (a changed host
key: strict checking against ``.known_hosts`` now fails). An openssh fleet is
a ``herd.lab.Lab`` (``Fleet``); a Dropbear one is a ``DropbearFleet``.

System tests are skipped only when sshd (or, for Dropbear hosts, root) is
missing and we are not root (as root, ``make test`` installs sshd, Dropbear and
BusyBox; a missing one as root is an error).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from herd.errors import LabError
from herd.lab import Lab, ProcessState, parse_groups
from herd.lab.openssh import find_sshd
from herd.lab.plan import plan_hosts

from .dropbear import DropbearFleet, Userland, need_dropbear

FLEET_SIZE = 8
FLEET_GROUPS = "web=4,db=2,cache=2"
_PORT_TRIES = 20


class Fleet(Lab):
    """A running test lab, with the helpers system tests use to break and mend hosts."""

    @property
    def user(self) -> str:
        return self.state.user

    def names(self, group: str | None = None) -> list[str]:
        """Host names, in order; only those of ``group`` when given."""
        return [h.name for h in self.hosts if group is None or h.group == group]

    def heal(self) -> None:
        """Thaw frozen hosts and restart stopped ones (after a test that broke some)."""
        for host, state in self.status():
            if state is ProcessState.FROZEN:
                self.thaw(host.name)
            elif state is ProcessState.GONE:
                self.restart(host.name)


def need_sshd() -> str:
    """The sshd binary; skip when it cannot be had and we are not root."""
    sshd = find_sshd()
    if sshd is None:
        if os.geteuid() != 0:
            pytest.skip("OpenSSH's sshd is not installed and we are not root")
        pytest.fail("sshd is missing although we run as root: `make test` installs it")
    return sshd


def start_fleet(
    directory: Path, count: int = FLEET_SIZE, groups: str | None = None, engine: str = "openssh"
) -> Fleet:
    """Bring up a lab on a random free port, trying again when another test took the port."""
    layout = parse_groups(groups) if groups else None
    last: LabError | None = None
    for _ in range(_PORT_TRIES):
        port = random.randint(20000, 60000)
        try:
            Fleet.up(directory, count, engine=engine, groups=layout, port=port)
        except LabError as exc:  # a race with another test run for the same port
            if "in use" not in str(exc) and "did not start" not in str(exc):
                raise
            last = exc
            continue
        return Fleet(directory)
    raise AssertionError(f"no free port for a test fleet after {_PORT_TRIES} tries: {last}")


_session_fleets: list[Fleet | DropbearFleet] = []
AnyFleet = TypeVar("AnyFleet", Fleet, DropbearFleet)

ENGINES = ("openssh", "dropbear")
# Runs a test on the openssh lab fleet and on the same hosts served by Dropbear and BusyBox.
both_engines = pytest.mark.parametrize("lab_fleet", ENGINES, indirect=True)


@contextlib.contextmanager
def shared(fleet: AnyFleet) -> Iterator[AnyFleet]:
    """A fleet for the whole session: mended after each test, torn down at the end."""
    _session_fleets.append(fleet)
    try:
        yield fleet
    finally:
        _session_fleets.remove(fleet)
        fleet.down()


@pytest.fixture(scope="session")
def openssh_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The shared 8-host openssh fleet (web=4, db=2, cache=2)."""
    need_sshd()
    with shared(
        start_fleet(tmp_path_factory.mktemp("lab-fleet"), FLEET_SIZE, FLEET_GROUPS)
    ) as fleet:
        yield fleet


@pytest.fixture(scope="session")
def busybox_userland() -> Iterator[Userland]:
    """The BusyBox trees, /etc, home and client key every Dropbear host shares.

    Outside pytest's private temporary directory: a user sudo runs a command as
    must reach the BusyBox binary through it.
    """
    need_dropbear()
    top = Path(tempfile.mkdtemp(prefix="herd-dropbear-"))
    try:
        top.chmod(0o755)
        yield Userland(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def dropbear_layout(count: int, groups: str | None) -> list[tuple[str, str, str]]:
    """(name, group, "full") for ``count`` hosts named and grouped as the lab names them."""
    layout = parse_groups(groups) if groups else None
    return [(h.name, h.group, "full") for h in plan_hosts(count, layout, 2222)]


@pytest.fixture(scope="session")
def dropbear_fleet(
    tmp_path_factory: pytest.TempPathFactory, busybox_userland: Userland
) -> Iterator[DropbearFleet]:
    """The shared 8-host fleet of the openssh lab's layout, served by Dropbear with BusyBox."""
    layout = dropbear_layout(FLEET_SIZE, FLEET_GROUPS)
    fleet = DropbearFleet(tmp_path_factory.mktemp("dropbear-fleet"), busybox_userland, layout, 1)
    with shared(fleet.up()):
        yield fleet


@pytest.fixture(scope="session")
def odd_hosts(
    tmp_path_factory: pytest.TempPathFactory, busybox_userland: Userland
) -> Iterator[DropbearFleet]:
    """Dropbear hosts missing what minimal ones miss: sftp-server, a hash tool, setsid."""
    layout = [(variant, "odd", variant) for variant in ("nosftp", "nohash", "nosetsid")]
    fleet = DropbearFleet(tmp_path_factory.mktemp("odd-hosts"), busybox_userland, layout, 9)
    with shared(fleet.up()):
        yield fleet


@pytest.fixture
def lab_fleet(request: pytest.FixtureRequest) -> Fleet | DropbearFleet:
    """The shared 8-host fleet: openssh unless the test is parametrized (``@both_engines``)."""
    engine = getattr(request, "param", "openssh")
    return request.getfixturevalue(f"{engine}_fleet")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _heal_session_fleet() -> Iterator[None]:
    """After each system test, mend any host of the shared fleets the test left broken."""
    yield
    for fleet in _session_fleets:
        fleet.heal()


@pytest.fixture
def make_fleet(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Fleet]]:
    """A factory of private fleets, each torn down after the test."""
    made: list[Fleet | DropbearFleet] = []

    def make(n: int = FLEET_SIZE, groups: str | None = None, engine: str = "openssh") -> Fleet:
        if engine == "dropbear":
            userland: Userland = request.getfixturevalue("busybox_userland")
            layout = dropbear_layout(n, groups)
            fleet: Fleet | DropbearFleet = DropbearFleet(
                tmp_path_factory.mktemp("dropbear-lab"), userland, layout, 21
            )
            made.append(fleet)
            return fleet.up()  # type: ignore[return-value]
        if engine == "openssh":
            need_sshd()
        fleet = start_fleet(tmp_path_factory.mktemp("lab"), n, groups, engine)
        made.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in made:
            with contextlib.suppress(LabError):  # the test brought it down itself
                fleet.down()


def need_sudo() -> None:
    if shutil.which("sudo") is None:
        if os.geteuid() != 0:
            pytest.skip("sudo is not installed and we are not root")
        pytest.fail("sudo is missing although we run as root: `make test` installs it")
    if subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode:
        pytest.skip("this user cannot sudo without a password")


@pytest.fixture
def bash_sudoer(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Fleet, str, str]]:
    """A one-host fleet whose login user has bash as shell and a sudo that asks a password.

    sudo without a terminal remembers a password per parent process; a bash that
    replaced itself with the last command's sudo lost it (dash keeps it), so this is
    the case the lab's own login user never met.
    """
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root (to add a user) and useradd")
    need_sudo()
    name = f"herdsu{os.getpid() % 100000}"
    password = f"pw-{time.monotonic_ns()}"
    sudoers = Path(f"/etc/sudoers.d/{name}")
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
    # a fleet directory the new user may read its authorized_keys from (sshd reads it as them)
    top = Path(tempfile.mkdtemp(prefix="herd-sudo-"))
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        sudoers.write_text(f"{name} ALL=(ALL:ALL) ALL\n")
        sudoers.chmod(0o440)
        top.chmod(0o755)
        fleet = start_fleet(top / "lab", 1)
        try:
            (top / "lab").chmod(0o755)
            fleet.files.authorized_keys.chmod(0o644)
            yield fleet, name, password
        finally:
            fleet.down()
    finally:
        sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True, check=False)
        shutil.rmtree(top, ignore_errors=True)
