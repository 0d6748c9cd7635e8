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
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

from herd.cli.context import AppContext
from herd.core.settings import merged
from herd.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from herd.core.hostset import FoldReader
    from herd.core.model import Host
    from herd.core.settings import LogSettings, RunSettings
    from herd.hosts.become import Become
    from herd.hosts.connect import Connector
    from herd.hosts.options import ConnectOptions
    from herd.operation.driver import Plan
    from herd.ui.sinks import OutputMode

__all__ = [
    "FleetOptions",
    "Reached",
    "SettingOption",
    "Targets",
    "ask_up_front",
    "become_options",
    "check_become",
    "confirm_many",
    "connect_options",
    "connector_for",
    "extra_vars_option",
    "fleet_options",
    "forks_within_open_files",
    "given_become",
    "prompt_secret",
    "reach",
    "targets",
    "with_become_password",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """The shared options as given; ``None`` means "as the settings say"."""

    pattern: str
    limit: str | None = None
    extra_vars: tuple[str, ...] = ()  # the -e options as given
    forks: int | None = None
    user: str | None = None
    port: int | None = None
    private_key: Path | None = None
    connect_timeout: float | None = None
    host_keys: str | None = None
    known_hosts: Path | None = None
    ssh_config: tuple[Path, ...] = ()
    ask_pass: bool = False
    yes: bool = False
    confirm_over: int | None = None
    out_dir: Path | None = None
    gather: bool = False
    diff: bool = False  # run's --diff: -b, with the groups after the largest as diffs
    as_json: bool = False
    verbose: bool = False
    no_log: bool = False
    syslog: bool | None = None
    batch: str | None = None
    batch_pause: float = 0.0
    max_fail: str | None = None
    pick: int | None = None
    no_agent: bool = False  # connect from this process, not through the agent's kept connections

    @classmethod
    def take(cls, pattern: str, opts: dict[str, Any]) -> FleetOptions:
        """Take this class's options out of a command's keyword arguments."""
        mine = {f.name: opts.pop(f.name) for f in fields(cls) if f.name in opts}
        return cls(pattern=pattern, **mine)

    def plan(
        self,
        kind: str,
        command: str | None,
        settings: RunSettings,
        hosts: int,
        *,
        open_files: int,
    ) -> Plan:
        """What the operation driver needs (the command line over herd.toml), for ``hosts``.

        ``open_files`` is what one host in flight holds open: the fan-out is
        lowered to what the limit on open files allows, with one warning.
        """
        from herd.operation.driver import Plan
        from herd.operation.rollout import Threshold, batch_sizes

        return Plan(
            kind=kind,
            forks=forks_within_open_files(
                merged(settings, forks=self.forks).forks, hosts, open_files
            ),
            pattern=self.pattern,
            command=command,
            batches=tuple(batch_sizes(self.batch, hosts)) if self.batch else (),
            batch_pause=self.batch_pause,
            max_fail=Threshold.parse(self.max_fail, hosts) if self.max_fail else None,
        )

    def output_mode(self, *, progress: bool = True) -> OutputMode:
        """How the operator asked to see the operation."""
        from herd.ui.sinks import OutputMode

        return OutputMode(
            as_json=self.as_json,
            gather=self.gather or self.diff,
            diff=self.diff,
            out_dir=self.out_dir,
            verbose=self.verbose,
            progress=progress,
        )

    def syslog_target(self, settings: LogSettings) -> str | None:
        """Where the operation's summary goes: --syslog/--no-syslog over [log] syslog."""
        return settings.syslog_target(self.syslog)


def forks_within_open_files(forks: int, hosts: int, per_host: int) -> int:
    """``forks``, or fewer where the hard limit on open files is too low for them.

    The soft limit is raised to the hard one first. A fork costs its host's
    ``per_host`` descriptors and the sockets of the hosts that may wait beside it
    for a TCP answer (``herd.operation.fanout``); a lowered fan-out is said once.
    """
    from herd.core.open_files import fit, open_now, raise_soft_limit
    from herd.operation.fanout import PARKING_PER_FORK

    limit = raise_soft_limit()
    wanted = max(1, min(forks, hosts))
    found = fit(wanted, per_host + PARKING_PER_FORK, limit=limit, in_use=open_now())
    if not found.lowered:
        return forks
    click.echo(
        f"herd: warning: open files are limited to {limit} (ulimit -n, hard limit):"
        f" -f lowered from {forks} to {found.count}",
        err=True,
    )
    return found.count


class SettingOption(click.Option):
    """An option whose help names the default in force: ``{forks}`` is herd.toml's value.

    The settings are read from the home the global options chose, when help is shown.
    """

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        names, text = record
        return names, text.format_map(_defaults_in_force(ctx))


def _defaults_in_force(ctx: click.Context) -> dict[str, str]:
    from herd.core.settings import RunSettings, help_defaults, load_settings

    app = ctx.find_object(AppContext)
    try:
        run = load_settings(app.paths.settings_file).run if app else RunSettings()
    except ConfigError:
        run = RunSettings()  # a broken herd.toml is reported when a command runs
    return help_defaults(run)


extra_vars_option = click.option(
    "-e", "--extra-vars", "extra_vars", multiple=True, metavar="VARS",
    help="Set Ansible variables over every inventory value (repeatable): KEY=VALUE ...,"
         " @FILE (YAML or JSON) or inline JSON/YAML, e.g. -e ansible_user=deploy."
         " (The environment of a command: herd run --env.)",
)  # fmt: skip

_OPTIONS = [
    click.option("-l", "--limit", default=None, help="Further limit the hosts to this pattern."),
    extra_vars_option,
    click.option("-f", "--forks", type=click.IntRange(min=1), default=None, cls=SettingOption,
                 help="Hosts worked on at once (default {forks})."),
    click.option("-u", "--user", default=None, metavar="USER",
                 help="Log in as USER where the inventory names no user (as Ansible's -u;"
                      " -e ansible_user=USER overrides the inventory too)."),
    click.option("--port", type=click.IntRange(1, 65535), default=None,
                 help="SSH port where the inventory names none."),
    click.option("--private-key", type=click.Path(path_type=Path, dir_okay=False),
                 default=None, metavar="FILE",
                 help="Private key where the inventory names none (Ansible's --private-key)."),
    click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                 cls=SettingOption,
                 help="Seconds to connect and log in, per host (default: the inventory's,"
                      " then ssh's ConnectTimeout, then {connect_timeout})."),
    click.option("--host-keys", type=click.Choice(["strict", "accept-new", "off"]), default=None,
                 cls=SettingOption,
                 help="Host key checking against known_hosts (default: ssh's"
                      " StrictHostKeyChecking for the host, else {host_keys})."),
    click.option("--known-hosts", type=click.Path(path_type=Path, dir_okay=False), default=None,
                 help="known_hosts file for every host (default: the inventory's known_hosts,"
                      " then ssh's UserKnownHostsFile, then ~/.ssh/known_hosts)."),
    click.option("-F", "--ssh-config", "ssh_config", multiple=True,
                 type=click.Path(path_type=Path, dir_okay=False, exists=True),
                 help="ssh config file to read instead of ~/.ssh/config and"
                      " /etc/ssh/ssh_config (repeatable)."),
    click.option("-k", "--ask-pass", is_flag=True, help="Prompt once for the SSH password."),
    click.option("-y", "--yes", is_flag=True, help="Do not ask before working on many hosts."),
    click.option("--confirm-over", type=click.IntRange(min=0), default=None, cls=SettingOption,
                 help="Ask before working on more hosts than this (default {confirm_over})."),
    click.option("--batch", default=None, metavar="SIZES",
                 help="Roll out in batches: counts or percentages of the hosts, the last"
                      " repeated (1,10%,50%: one host, then 10%, then half at a time); a batch"
                      " starts when the one before has ended."),
    click.option("--batch-pause", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
                 help="Wait this long between batches."),
    click.option("--max-fail", default=None, metavar="N|N%",
                 help="Once more than N hosts (or N% of them) are not ok, over the whole"
                      " operation, start no further host: the rest are skipped."),
    click.option("--pick", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Run on N hosts chosen at random among those matched (a canary);"
                      " they are named, and logged."),
    click.option("-o", "--out-dir", type=click.Path(path_type=Path, file_okay=False),
                 default=None, help="Write one file per host and outcome into DIR."),
    click.option("-b", "--gather", is_flag=True,
                 help="Group hosts with identical results under their folded names."),
    click.option("--json", "as_json", is_flag=True, help="One JSON object per host on stdout."),
    click.option("-v", "--verbose", is_flag=True, help="Every host's reason in the summary."),
    click.option("--no-log", is_flag=True, help="Do not record this in the operation log."),
    click.option("--no-agent", is_flag=True,
                 help="Connect afresh from this process instead of through the agent's kept"
                      " connections (herd agent; [agent] persist = 0 turns it off for good)."),
    click.option("--syslog/--no-syslog", default=None,
                 help="Also send a one-line summary to syslog (default: the [log] setting)."),
]  # fmt: skip


_BECOME_OPTIONS = [
    click.option("--become", "--sudo", "become", is_flag=True,
                 help="Run as another user (root unless --become-user), through"
                      " --become-method (sudo unless the inventory says otherwise)."),
    click.option("--become-user", default=None, metavar="USER",
                 help="The user to become (default root; the inventory's"
                      " ansible_become_user wins)."),
    click.option("--become-method", type=click.Choice(["sudo", "su", "doas"]), default=None,
                 help="How to become it (default sudo; su and doas only without a password)."),
    click.option("-K", "--ask-become-pass", is_flag=True,
                 help="Prompt once for the become password (sent over stdin, never in argv);"
                      " implies --become."),
]  # fmt: skip


def become_options(command: F) -> F:
    """Add Ansible's become options to a click command."""
    for option in reversed(_BECOME_OPTIONS):
        command = option(command)
    return command


def given_become(
    enabled: bool, user: str | None, method: str | None, *, ask_password: bool
) -> Become | None:
    """The command line's become; None when it asks for none (the inventory still may).

    A method that cannot take the password -K would ask for is refused before asking.
    """
    from herd.hosts.become import Become, check

    if not enabled:
        return None
    become = Become(method=method or "sudo", user=user or "root")
    check(replace(become, password="") if ask_password else become, "--become-method")
    return become


def with_become_password(become: Become | None, ask: bool) -> Become | None:
    """The command line's become, with the password -K asks for (once, before any host)."""
    if become is None or not ask:
        return become
    return replace(become, password=prompt_secret(f"{become.method} password"))


def check_become(hosts: list[Host], become: Become | None) -> None:
    """Each host's become as its inventory says, checked now: exit 2 before anything runs."""
    from herd.hosts.become import become_for

    for host in hosts:
        become_for(host, become)


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


class Reached(NamedTuple):
    """What ``reach`` found: the hosts, a connector for them, how their inventory folds."""

    hosts: list[Host]
    connector: Connector
    reader: FoldReader


class Targets(NamedTuple):
    """The hosts an operation is about, and how their inventory folds."""

    hosts: list[Host]
    reader: FoldReader


def reach(app: AppContext, fleet: FleetOptions, settings: RunSettings) -> Reached:
    """The hosts and a connector for them, with every question asked up front.

    Keys are read, the guard rail asked and the password prompted here, before
    the operation is recorded or any host contacted.
    """
    hosts, reader = targets(app, fleet)
    return Reached(hosts, connector_for(fleet, settings, hosts), reader)


def targets(app: AppContext, fleet: FleetOptions) -> Targets:
    """The hosts the pattern and ``--limit`` match (``--pick`` of them, named)."""
    from herd.cli.targets import select_targets

    fleet.output_mode()  # two output formats at once: exit 2 before the inventory is read
    hosts, reader = select_targets(app, fleet.pattern, fleet.limit, fleet.extra_vars)
    if fleet.pick is not None:
        from herd.core.hostset import fold
        from herd.operation.rollout import pick

        matched = len(hosts)
        hosts = pick(hosts, fleet.pick)
        names = fold([h.name for h in hosts], reader)
        click.echo(f"herd: picked {len(hosts)} of {matched} hosts: {names}", err=True)
    return Targets(hosts, reader)


def connector_for(fleet: FleetOptions, settings: RunSettings, hosts: list[Host]) -> Connector:
    """A connector for ``hosts`` in this process, every file it needs read, the questions asked."""
    from herd.hosts.connect import Connector

    connector = Connector(connect_options(fleet, settings))
    connector.preload(hosts)
    connector.options = ask_up_front(fleet, settings, hosts, connector.warnings, connector.options)
    return connector


def connect_options(fleet: FleetOptions, settings: RunSettings) -> ConnectOptions:
    """How to connect, from the command line over herd.toml (no password yet)."""
    from herd.hosts.options import ConnectOptions, HostKeyMode

    return ConnectOptions(
        connect_timeout=fleet.connect_timeout,
        host_keys=HostKeyMode(fleet.host_keys) if fleet.host_keys else None,
        known_hosts=fleet.known_hosts,
        ssh_config=fleet.ssh_config or None,
        user=fleet.user,
        port=fleet.port,
        identity_files=(str(fleet.private_key),) if fleet.private_key else (),
        default_connect_timeout=settings.connect_timeout,
        default_host_keys=HostKeyMode(settings.host_keys),
    )


def ask_up_front(
    fleet: FleetOptions,
    settings: RunSettings,
    hosts: list[Host],
    warnings: list[str],
    options: ConnectOptions,
) -> ConnectOptions:
    """Once the hosts' files are read: their warnings, the guard rail, the SSH password."""
    for warning in warnings:
        click.echo(f"herd: warning: {warning}", err=True)
    limit = settings.confirm_over if fleet.confirm_over is None else fleet.confirm_over
    confirm_many(len(hosts), fleet.pattern, limit, fleet.yes)
    if fleet.ask_pass:
        return replace(options, password=prompt_secret("SSH password"))
    return options
