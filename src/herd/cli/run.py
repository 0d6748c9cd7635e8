"""``herd run PATTERN [options] -- COMMAND...``: one shell command on every matching host.

Everything that can be wrong with the input (the command, the pattern, a key
file, an option) is found before the operation is recorded or any host is
contacted: one line, exit 2, nothing run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from herd.cli.context import AppContext, pass_app
from herd.cli.fleet_options import (
    FleetOptions,
    SettingOption,
    become_options,
    check_become,
    connector_for,
    fleet_options,
    given_become,
    targets,
    with_become_password,
)
from herd.core.sizes import parse_size
from herd.errors import SourceError, UsageError

if TYPE_CHECKING:
    from herd.core.model import BatchResult, Host, HostResult
    from herd.hosts.become import Become
    from herd.hosts.command import RemoteCommand
    from herd.hosts.connect import Connector
    from herd.hosts.options import ConnectOptions
    from herd.operation.driver import HostWork, PerHost, Resources

__all__ = ["RunRequest", "execute", "run", "run_batch"]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_env(
    pairs: Sequence[str], environ: Mapping[str, str] = os.environ
) -> tuple[tuple[str, str], ...]:
    """``--env NAME=VALUE`` options as pairs; ``--env NAME`` takes herd's own value of NAME.

    The second form keeps a secret out of argv, the shell history and the log.
    """
    parsed: list[tuple[str, str]] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not _ENV_NAME.match(name):
            raise UsageError(
                f"--env {pair!r}: expected NAME=VALUE or NAME, with a shell variable name"
            )
        if not sep:
            if name not in environ:
                raise UsageError(f"--env {name}: {name} is not set in herd's environment")
            value = environ[name]
        parsed.append((name, value))
    return tuple(parsed)


def _output_cap(text: str | None) -> int | None:
    if text is None:
        return None
    size = parse_size(text)
    if size is None:
        raise UsageError(f"--output-cap {text!r}: give a size such as 64K, 1M or 0")
    return size


@contextlib.contextmanager
def stdin_source(given: str | None) -> Iterator[Path | None]:
    """The file every host reads as stdin: ``--stdin FILE``, or ``-`` for herd's own stdin.

    Anything but a regular file (a pipe, a terminal, ``/dev/stdin``) is read to its
    end first, into a private temporary file, so every host gets the same bytes at
    its own pace; herd reads its own stdin only when told to with ``-``.
    """
    if given is None:
        yield None
        return
    path = Path(given)
    try:
        if given != "-" and stat.S_ISREG(path.stat().st_mode):
            path.open("rb").close()  # readable: found now, not on every host
            yield path.absolute()  # the agent reads it from another directory
            return
        source = sys.stdin.buffer if given == "-" else path.open("rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read --stdin file: {exc.strerror or exc}") from exc
    with source, tempfile.TemporaryDirectory(prefix="herd-stdin-") as private:
        spooled = Path(private) / "stdin"
        with spooled.open("xb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
        yield spooled


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything ``herd run`` was asked, checked for form; settings fill what is None."""

    fleet: FleetOptions
    command: str
    timeout: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    become: Become | None = None  # the command line's; the password is asked at the start
    ask_become_pass: bool = False
    stdin: str | None = None  # a file, or "-" for herd's own stdin
    output_cap: int | None = None
    shown: str = ""  # the command as the log and the summary name it (a --script's name)
    script_text: str | None = field(default=None, repr=False)
    workers: int | None = None  # worker processes; None: herd decides by cores and hosts


def run_open_files(stdin: bool, out_dir: bool) -> int:
    """What one host of a run holds open: its SSH sockets, its --stdin file, its -o files."""
    from herd.core.open_files import SSH_HOST

    return SSH_HOST + int(stdin) + 2 * int(out_dir)


def execute(app: AppContext, request: RunRequest) -> int:
    """Check the input, record the operation, run on every host, render; the exit code."""
    return run_batch(app, request).exit_code


def run_batch(app: AppContext, request: RunRequest, kind: str = "run") -> BatchResult:
    """``execute``'s work, recorded as an operation of ``kind`` (``shell`` for a shell line).

    When the agent carries the hosts (no gateway or worker process does), this
    process reads no key and loads no SSH library: the agent reads the files and
    answers with their warnings or the one line that stops the command.
    """
    from herd.cli.agent import agent_for, checked_by_agent
    from herd.cli.gateways import chains_for, first_hops
    from herd.cli.operation import drive
    from herd.core.settings import load_settings, merged
    from herd.hosts.command import RemoteCommand
    from herd.ui.sinks import run_sinks

    loaded = load_settings(app.paths.settings_file)
    settings = merged(loaded.run, command_timeout=request.timeout, output_cap=request.output_cap)
    fleet = request.fleet
    with stdin_source(request.stdin) as stdin:
        hosts, reader = targets(app, fleet)
        chains = chains_for(app, hosts, fleet.extra_vars)
        if chains and stdin is not None:  # the file is here, the gateway there
            raise UsageError(
                f"{next(iter(chains))}: reached through a gateway, where --stdin does not go yet"
            )
        # Kept connections serve the hosts herd's own process would carry (not those of
        # worker processes asked for with --workers, nor gateways').
        agent = None
        if not chains and not request.workers and any(not host.local for host in hosts):
            agent = agent_for(fleet.no_agent, loaded.agent)
        checked = None if agent is None else checked_by_agent(agent, fleet, settings, hosts)
        connector = None
        if checked is None:
            connector = connector_for(fleet, settings, hosts)
            connector.preload(first_hops(chains))
        check_become(hosts, request.become)
        remote = RemoteCommand(
            command=request.command,
            env=request.env,
            become=with_become_password(request.become, request.ask_become_pass),
            stdin=stdin,
            timeout=settings.command_timeout or None,  # 0 means none, as in pssh and clush
            output_cap=settings.output_cap,
            script_text=request.script_text,
        )
        plan = fleet.plan(
            kind,
            request.shown or request.command,
            settings,
            len(hosts),
            open_files=run_open_files(stdin is not None, fleet.out_dir is not None),
        )
        detail: dict[str, object] = {"pick": fleet.pick} if fleet.pick else {}
        resources: Resources | None
        if agent is not None and checked is not None:
            per_host, resources = _through_agent(agent, checked, remote)
        else:
            assert connector is not None  # made above whenever the agent does not carry them
            per_host, resources = _carried_here(
                app, request, remote, connector, hosts=hosts, chains=chains, forks=plan.forks
            )
            if chains:
                from herd.cli.gateways import via_detail

                detail["via"] = via_detail(chains)
        return drive(
            app,
            plan,
            hosts,
            per_host,
            run_sinks(fleet.output_mode(), reader),
            record=not fleet.no_log,
            syslog=fleet.syslog_target(loaded.log),
            detail=detail or None,
            resources=resources,
        )


def _through_agent(
    pid: int, options: ConnectOptions, remote: RemoteCommand
) -> tuple[PerHost, Resources]:
    """The hosts handed to the agent; ``ansible_connection=local`` ones run here (only
    they load the engine)."""
    from herd.cli.agent import through_agent
    from herd.core.plain import plain

    made: list[PerHost] = []

    def local(host: Host, work: HostWork) -> Awaitable[HostResult]:
        if not made:
            from herd.hosts.connect import Connector
            from herd.hosts.remote import RunJob

            made.append(RunJob(remote).per_host(Connector(options)))
        return made[0](host, work)

    # SendEnv's values are this command's, not those of the command that started the agent
    carried = replace(remote, environment=tuple(os.environ.items()))
    setup = {"options": plain(options.for_agent()), "command": plain(carried)}
    return through_agent(pid, setup, local)


def _carried_here(
    app: AppContext,
    request: RunRequest,
    remote: RemoteCommand,
    connector: Connector,
    *,
    hosts: list[Host],
    chains: dict[str, tuple[Host, ...]],
    forks: int,
) -> tuple[PerHost, Resources | None]:
    """The hosts carried by this process, its worker processes and the gateways."""
    from herd.hosts.remote import RunJob
    from herd.hosts.workers import carriers

    job = RunJob(remote)
    direct = [h for h in hosts if h.name not in chains]
    per_host, resources = carriers(
        job, connector, direct, forks=forks, requested=request.workers, debug=app.debug
    )
    if not chains:
        return per_host, resources
    from herd.cli.gateways import through_gateways

    return through_gateways(job, connector, per_host, resources, hosts=hosts, chains=chains)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@click.argument("command", nargs=-1)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    cls=SettingOption,
    help="Seconds the command may run on each host; then it is stopped (default"
    " {command_timeout}; 0 means none, as in pssh and clush).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Set a variable for the command (repeatable); NAME alone passes herd's own value"
    " of NAME. Values reach the host on stdin, never in a command line.",
)
@become_options
@click.option(
    "--stdin",
    "stdin_file",
    metavar="FILE|-",
    default=None,
    help="Feed this file to the command's stdin on every host, streamed; '-' reads herd's"
    " own stdin (to its end first, so every host gets the same bytes).",
)
@click.option(
    "--output-cap",
    metavar="SIZE",
    default=None,
    cls=SettingOption,
    help="Bytes of stdout and of stderr kept per host for the summary, --json and the log"
    " (default {output_cap}); -o DIR always gets everything.",
)
@click.option(
    "--script",
    "script_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Send this local script to every host and run it there through its shebang line,"
    " with the words after -- as its arguments; it is removed whatever happens. CRLF line"
    " endings are fine (sent as LF); the log keeps its sha256.",
)
@click.option(
    "--diff",
    "as_diff",
    is_flag=True,
    help="Like -b, but every group after the largest is shown as a unified diff against it:"
    " the odd host out stands out.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Worker processes carrying the hosts (default: up to one per core, 100 hosts or"
    " more each; 0: all in herd's own process).",
)
@fleet_options
@pass_app
def run(
    app: AppContext,
    /,
    *,
    pattern: str,
    command: tuple[str, ...],
    timeout: float | None,
    env: tuple[str, ...],
    become: bool,
    become_user: str | None,
    become_method: str | None,
    ask_become_pass: bool,
    stdin_file: str | None,
    output_cap: str | None,
    script_file: Path | None,
    as_diff: bool,
    workers: int | None,
    **opts: Any,
) -> int:
    """Run a shell command on every host PATTERN matches, in parallel.

    Put the command after `--`. Exit status: 0 when every host ran it
    successfully, 1 when any host did not, 2 on bad input (nothing run),
    128+N when stopped by signal N (130 for Ctrl-C; SIGTERM and SIGHUP stop
    the remote commands the same way). Hosts' stderr lines go to herd's
    stderr, marked with `!`; -o writes DIR/HOST.out, HOST.err and HOST.exit.
    """
    shown = line = " ".join(command).strip()
    script = None
    if script_file is not None:
        from herd.hosts.script import LocalScript

        if stdin_file is not None:
            raise UsageError("--script reads the script on stdin: it cannot take --stdin too")
        script = LocalScript.read(script_file)
        line, shown = script.command(command), script.describe(command)
    elif not line:
        raise UsageError("empty command: give the command after --")
    fleet = FleetOptions.take(pattern, opts)
    if as_diff:
        fleet = replace(fleet, diff=True)
    request = RunRequest(
        fleet=fleet,
        command=line,
        shown=shown,
        script_text=None if script is None else script.text,
        timeout=timeout,
        env=parse_env(env),
        become=given_become(
            become or ask_become_pass, become_user, become_method, ask_password=ask_become_pass
        ),
        ask_become_pass=ask_become_pass,
        stdin=stdin_file,
        output_cap=_output_cap(output_cap),
        workers=workers,
    )
    return execute(app, request)
