"""What run, push and pull share, declared once: which hosts, how to reach them,
how to report, and whether to record.

Everything here happens before the operation is recorded or any host is
contacted, so bad input costs nothing: one line, exit 2, nothing run.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from herd.cli.context import AppContext
from herd.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from herd.cli.operation import BatchPlan
    from herd.core.config import RunSettings
    from herd.hosts.connect import Connector
    from herd.inventory.model import Host

__all__ = [
    "FleetOptions",
    "confirm_many",
    "extra_vars_option",
    "fleet_options",
    "prompt_secret",
    "reach",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """The shared options as given; ``None`` means "as the settings say"."""

    pattern: str
    limit: str | None = None
    extra_vars: tuple[str, ...] = ()  # the -e options as given
    forks: int | None = None
    connect_timeout: float | None = None
    host_keys: str | None = None
    known_hosts: Path | None = None
    ssh_config: tuple[Path, ...] = ()
    ask_pass: bool = False
    yes: bool = False
    confirm_over: int | None = None
    out_dir: Path | None = None
    gather: bool = False
    as_json: bool = False
    verbose: bool = False
    no_log: bool = False
    syslog: bool | None = None

    @classmethod
    def take(cls, pattern: str, opts: dict[str, Any]) -> FleetOptions:
        """Take this class's options out of a command's keyword arguments."""
        mine = {f.name: opts.pop(f.name) for f in fields(cls) if f.name in opts}
        return cls(pattern=pattern, **mine)

    def plan(self, kind: str, command: str | None, settings: RunSettings) -> BatchPlan:
        """What the operation driver needs to record and fan out."""
        from herd.cli.operation import BatchPlan

        return BatchPlan(
            kind=kind,
            pattern=self.pattern,
            command=command,
            forks=self.forks or settings.forks,
            no_log=self.no_log,
            syslog=self.syslog,
        )


extra_vars_option = click.option(
    "-e", "--extra-vars", "extra_vars", multiple=True, metavar="VARS",
    help="Set Ansible variables over every inventory value (repeatable): KEY=VALUE ...,"
         " @FILE (YAML or JSON) or inline JSON/YAML, e.g. -e ansible_user=deploy."
         " (The environment of a command: herd run --env.)",
)  # fmt: skip

_OPTIONS = [
    click.option("-l", "--limit", default=None, help="Further limit the hosts to this pattern."),
    extra_vars_option,
    click.option("-f", "--forks", type=click.IntRange(min=1), default=None,
                 help="Hosts worked on at once (default 100)."),
    click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Seconds to connect and log in, per host (default 10)."),
    click.option("--host-keys", type=click.Choice(["strict", "accept-new", "off"]), default=None,
                 help="Host key checking against known_hosts (default strict)."),
    click.option("--known-hosts", type=click.Path(path_type=Path, dir_okay=False), default=None,
                 help="known_hosts file to use for every host (default: inventory, ~/.ssh)."),
    click.option("-F", "--ssh-config", "ssh_config", multiple=True,
                 type=click.Path(path_type=Path, dir_okay=False, exists=True),
                 help="ssh config file to read instead of ~/.ssh/config (repeatable)."),
    click.option("-k", "--ask-pass", is_flag=True, help="Prompt once for the SSH password."),
    click.option("-y", "--yes", is_flag=True, help="Do not ask before working on many hosts."),
    click.option("--confirm-over", type=click.IntRange(min=0), default=None,
                 help="Ask before working on more hosts than this (default 500)."),
    click.option("-o", "--out-dir", type=click.Path(path_type=Path, file_okay=False),
                 default=None, help="Write one file per host and outcome into DIR."),
    click.option("-b", "--gather", is_flag=True,
                 help="Group hosts with identical results under their folded names."),
    click.option("--json", "as_json", is_flag=True, help="One JSON object per host on stdout."),
    click.option("-v", "--verbose", is_flag=True, help="Every host's reason in the summary."),
    click.option("--no-log", is_flag=True, help="Do not record this in the operation log."),
    click.option("--syslog/--no-syslog", default=None,
                 help="Also send a one-line summary to syslog (default: the [log] setting)."),
]  # fmt: skip


def fleet_options(command: F) -> F:
    """Add the shared options to a click command (they arrive as keyword arguments)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def prompt_secret(label: str) -> str:
    """Ask once for a secret on the terminal; it goes to the hosts, never to argv or the log.

    Without a controlling terminal (a script piping the secret in) the line is read
    from stdin, quietly: getpass would warn that it cannot hide what is typed.
    """
    try:
        if _has_terminal():
            return getpass.getpass(f"{label}: ", stream=sys.stderr)
        line = sys.stdin.readline()
    except EOFError:
        line = ""
    if not line:
        raise UsageError(f"{label}: no terminal to ask on and nothing on stdin; nothing was run")
    return line.rstrip("\n")


def _has_terminal() -> bool:
    """A terminal getpass can turn echo off on: the controlling one, or stdin."""
    if sys.stdin.isatty():
        return True
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def confirm_many(count: int, pattern: str, limit: int, yes: bool) -> None:
    """The guard rail: more than ``limit`` hosts needs a yes on a terminal, or ``-y``.

    Without a terminal to ask on (a script, cron, CI) herd refuses rather than
    skip the question: a script meant for ten hosts must not run on a thousand.
    """
    if yes or count <= limit:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            f"{pattern!r} matches {count} hosts, more than {limit}, and there is no terminal"
            " to confirm on: pass -y (or raise --confirm-over); nothing was done"
        )
    question = f"herd: {pattern!r} matches {count} hosts (more than {limit}). Go on all of them?"
    if not click.confirm(question, default=False, err=True):
        raise UsageError(f"not confirmed: nothing was done on the {count} hosts of {pattern!r}")


def reach(
    app: AppContext, fleet: FleetOptions, settings: RunSettings
) -> tuple[list[Host], Connector]:
    """The hosts and a connector for them, with every question asked up front.

    Keys are read, the guard rail asked and the password prompted here, before
    the operation is recorded or any host contacted.
    """
    from herd.cli.targets import select_hosts
    from herd.hosts.connect import ConnectOptions, Connector
    from herd.hosts.hostkeys import HostKeyMode

    if fleet.gather and fleet.as_json:
        raise ConfigError("--gather and --json are two output formats: choose one")
    hosts = list(select_hosts(app, fleet.pattern, fleet.limit, fleet.extra_vars))
    options = ConnectOptions(
        connect_timeout=fleet.connect_timeout or settings.connect_timeout,
        host_keys=HostKeyMode.parse(fleet.host_keys or settings.host_keys),
        known_hosts=fleet.known_hosts,
        ssh_config=fleet.ssh_config or None,
    )
    connector = Connector(options)
    connector.preload(hosts)
    limit = settings.confirm_over if fleet.confirm_over is None else fleet.confirm_over
    confirm_many(len(hosts), fleet.pattern, limit, fleet.yes)
    if fleet.ask_pass:
        connector.options = replace(options, password=prompt_secret("SSH password"))
    return hosts, connector
