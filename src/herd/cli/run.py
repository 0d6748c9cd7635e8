"""``herd run PATTERN [options] -- COMMAND...``: one shell command on every matching host.

Everything that can be wrong with the input (the command, the pattern, a key
file, an option) is found before the operation is recorded or any host is
contacted: one line, exit 2, nothing run.
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from herd.cli.context import AppContext, pass_app
from herd.errors import ConfigError, SourceError, UsageError

if TYPE_CHECKING:
    from herd.inventory.model import Host
    from herd.ui.render import Renderers
    from herd.ui.summary import Summary

__all__ = ["run"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_env(pairs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``-e NAME=VALUE`` options as pairs; a malformed one is bad usage."""
    parsed: list[tuple[str, str]] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise UsageError(f"-e {pair!r}: expected NAME=VALUE with a shell variable name")
        parsed.append((name, value))
    return tuple(parsed)


def resolve_hosts(app: AppContext, pattern: str, limit: str | None) -> list[Host]:
    """The hosts ``pattern`` names (``@failed`` and ``@ID:failed`` included)."""
    from herd.cli.targets import select_hosts

    return list(select_hosts(app, pattern, limit))


def _read_stdin_file(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read --stdin file: {exc.strerror or exc}") from exc


def _confirm(count: int, pattern: str, limit: int, yes: bool) -> None:
    """The guard rail: more than ``limit`` hosts needs a yes on a terminal."""
    if yes or count <= limit or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return
    question = f"herd: {pattern!r} matches {count} hosts (more than {limit}). Run on all of them?"
    if not click.confirm(question, default=False, err=True):
        raise UsageError(f"not confirmed: nothing was run on the {count} hosts of {pattern!r}")


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything ``herd run`` was asked, checked for form; settings fill what is None."""

    pattern: str
    command: str
    limit: str | None = None
    forks: int | None = None
    connect_timeout: float | None = None
    timeout: float | None = None
    host_keys: str | None = None
    known_hosts: Path | None = None
    ssh_config: tuple[Path, ...] | None = None
    ask_pass: bool = False
    env: tuple[tuple[str, str], ...] = ()
    sudo: bool = False
    ask_become_pass: bool = False
    stdin: bytes | None = field(default=None, repr=False)
    yes: bool = False
    confirm_over: int | None = None
    out_dir: Path | None = None
    gather: bool = False
    as_json: bool = False
    verbose: bool = False
    no_log: bool = False
    syslog: bool | None = None  # None: as the [log] syslog setting says


def _prompt(label: str) -> str:
    """Ask once for a secret on the terminal; it goes to the hosts, never to argv or the log."""
    try:
        return getpass.getpass(f"{label}: ", stream=sys.stderr)
    except EOFError:
        raise UsageError(f"{label}: no terminal to ask on; nothing was run") from None


def _renderers(request: RunRequest) -> tuple[Renderers, Summary]:
    """The sinks for this run's output mode; only the chosen ones are imported."""
    from herd.ui.console import Printer
    from herd.ui.render import Renderer, Renderers
    from herd.ui.summary import Summary

    err = Printer(stderr=True)
    chosen: list[Renderer] = []
    streaming = False
    if request.out_dir is not None:
        from herd.ui.outdir import OutDir

        chosen.append(OutDir(request.out_dir))
    if request.as_json:
        from herd.ui.jsonlines import JsonLines

        chosen.append(JsonLines(sys.stdout))
    elif request.gather:
        from herd.ui.gather import GatherRenderer

        chosen.append(GatherRenderer(Printer()))
    elif request.out_dir is None:
        from herd.ui.live import LiveLines

        chosen.append(LiveLines(Printer()))
        streaming = True
    if not streaming:
        from herd.ui.progress import ProgressBar

        chosen.append(ProgressBar(err, "run"))
    summary = Summary(err, verbose=request.verbose)
    chosen.append(summary)
    return Renderers(chosen), summary


def execute(app: AppContext, request: RunRequest) -> int:
    """Check the input, record the operation, run on every host, render; the exit code."""
    from herd.cli.operation import BatchPlan, run_operation
    from herd.core.config import load_settings
    from herd.hosts.command import RemoteCommand
    from herd.hosts.connect import ConnectOptions, Connector
    from herd.hosts.hostkeys import HostKeyMode
    from herd.hosts.remote import run_on_host

    settings = load_settings(app.paths.settings_file).run
    hosts = resolve_hosts(app, request.pattern, request.limit)
    options = ConnectOptions(
        connect_timeout=request.connect_timeout or settings.connect_timeout,
        host_keys=HostKeyMode.parse(request.host_keys or settings.host_keys),
        known_hosts=request.known_hosts,
        ssh_config=request.ssh_config,
    )
    connector = Connector(options)
    connector.preload(hosts)
    limit = settings.confirm_over if request.confirm_over is None else request.confirm_over
    _confirm(len(hosts), request.pattern, limit, request.yes)
    if request.ask_pass:
        connector.options = replace(options, password=_prompt("SSH password"))
    remote = RemoteCommand(
        command=request.command,
        env=request.env,
        sudo=request.sudo,
        become_password=_prompt("sudo password") if request.ask_become_pass else None,
        stdin=request.stdin,
        timeout=request.timeout if request.timeout is not None else settings.command_timeout,
        output_cap=settings.output_cap,
    )
    renderers, summary = _renderers(request)

    def noted(op_id: int | None) -> None:
        if op_id is not None:
            summary.note = f"recorded as operation {op_id}: herd log show {op_id}"

    plan = BatchPlan(
        kind="run",
        pattern=request.pattern,
        command=request.command,
        forks=request.forks or settings.forks,
        no_log=request.no_log,
        syslog=request.syslog,
    )
    batch = run_operation(
        app,
        plan,
        hosts,
        lambda host, emit: run_on_host(host, remote, connector, emit),
        renderers,
        on_begin=noted,
    )
    return batch.exit_code


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@click.argument("command", nargs=-1, required=True)
@click.option("-l", "--limit", default=None, help="Further limit the hosts to this pattern.")
@click.option(
    "-f",
    "--forks",
    type=click.IntRange(min=1),
    default=None,
    help="Hosts worked on at once (default 100).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds to connect and log in, per host (default 10).",
)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds the command may run on each host; then it is stopped (default none).",
)
@click.option(
    "--host-keys",
    type=click.Choice(["strict", "accept-new", "off"]),
    default=None,
    help="Host key checking against known_hosts (default strict).",
)
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="known_hosts file to use for every host (default: inventory, ~/.ssh).",
)
@click.option(
    "-F",
    "--ssh-config",
    "ssh_config",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="ssh config file to read instead of ~/.ssh/config (repeatable).",
)
@click.option("-k", "--ask-pass", is_flag=True, help="Prompt once for the SSH password.")
@click.option(
    "-e",
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a variable for the command (repeatable).",
)
@click.option("--sudo", is_flag=True, help="Run the command through sudo.")
@click.option(
    "-K",
    "--ask-become-pass",
    is_flag=True,
    help="Prompt once for the sudo password (sent over stdin, never in argv).",
)
@click.option(
    "--stdin",
    "stdin_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Feed this file to the command's stdin on every host.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask before running on many hosts.")
@click.option(
    "--confirm-over",
    type=click.IntRange(min=0),
    default=None,
    help="Ask before running on more hosts than this (default 500).",
)
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write DIR/HOST.out, HOST.err and HOST.exit.",
)
@click.option(
    "-b",
    "--gather",
    is_flag=True,
    help="Group hosts with identical output under their folded names.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Every host's reason in the summary.")
@click.option("--no-log", is_flag=True, help="Do not record this run in the operation log.")
@click.option(
    "--syslog/--no-syslog",
    default=None,
    help="Also send a one-line summary to syslog (default: the [log] syslog setting).",
)
@pass_app
def run(  # noqa: PLR0917 (one parameter per option, as click passes them)
    app: AppContext,
    pattern: str,
    command: tuple[str, ...],
    limit: str | None,
    forks: int | None,
    connect_timeout: float | None,
    timeout: float | None,
    host_keys: str | None,
    known_hosts: Path | None,
    ssh_config: tuple[Path, ...],
    ask_pass: bool,
    env: tuple[str, ...],
    sudo: bool,
    ask_become_pass: bool,
    stdin_file: Path | None,
    yes: bool,
    confirm_over: int | None,
    out_dir: Path | None,
    gather: bool,
    as_json: bool,
    verbose: bool,
    no_log: bool,
    syslog: bool | None,
) -> int:
    """Run a shell command on every host PATTERN matches, in parallel.

    Put the command after `--`. Exit status: 0 when every host ran it
    successfully, 1 when any host did not, 2 on bad input (nothing run),
    130 when interrupted. stderr lines are marked with `!`.
    """
    line = " ".join(command).strip()
    if not line:
        raise UsageError("empty command: give the command after --")
    if gather and as_json:
        raise ConfigError("--gather and --json are two output formats: choose one")
    request = RunRequest(
        pattern=pattern,
        command=line,
        limit=limit,
        forks=forks,
        connect_timeout=connect_timeout,
        timeout=timeout,
        host_keys=host_keys,
        known_hosts=known_hosts,
        ssh_config=ssh_config or None,
        ask_pass=ask_pass,
        env=parse_env(env),
        sudo=sudo or ask_become_pass,
        ask_become_pass=ask_become_pass,
        stdin=_read_stdin_file(stdin_file),
        yes=yes,
        confirm_over=confirm_over,
        out_dir=out_dir,
        gather=gather,
        as_json=as_json,
        verbose=verbose,
        no_log=no_log,
        syslog=syslog,
    )
    return execute(app, request)
