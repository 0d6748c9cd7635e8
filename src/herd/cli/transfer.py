"""``herd push PATTERN SRC... DEST`` and ``herd pull PATTERN SRC... DEST_DIR``.

Bad input (a missing or unreadable local source, a bad pattern, an option
value) is found before the operation is recorded or any host contacted: one
line, exit 2, nothing sent. Each host's files, bytes, hashes and skips are
recorded in the operation log as the host finishes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from herd.cli.context import AppContext, pass_app
from herd.cli.fleet_options import (
    FleetOptions,
    become_options,
    check_become,
    fleet_options,
    given_become,
    reach,
    with_become_password,
)
from herd.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from herd.core.model import Host
    from herd.core.settings import AgentSettings
    from herd.hosts.connect import Connector
    from herd.hosts.transfer import TransferJob
    from herd.hosts.transfer_plan import TransferOptions
    from herd.operation.driver import PerHost, Resources

__all__ = ["pull", "push"]

F = TypeVar("F", bound=Callable[..., Any])


def _transfer_options(command: F) -> F:
    """The options of push and pull beyond those they share with run."""
    options = [
        click.option("--stall-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
                     show_default=True, help="A host that moves no data for this long fails."),
        click.option("-L", "--follow-links", is_flag=True,
                     help="Copy what symbolic links point to instead of the links."),
        click.option("--no-verify", is_flag=True, help="Do not check the sha256 of what landed."),
        click.option("--mode", default=None, metavar="OCTAL",
                     help="Permissions for every file (e.g. 0644) instead of the source's."),
        click.option("--no-progress", is_flag=True, help="No progress bar on the terminal."),
        click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Worker processes carrying the transfers (default: up to one per"
                          " core, 4 hosts or more each, unless a push is small (a few files);"
                          " 0: all in herd's own process)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return become_options(fleet_options(command))


def _mode(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 8)
    except ValueError:
        raise ConfigError(f"--mode {text!r}: give octal permissions such as 0644") from None
    if not 0 <= value <= 0o7777:
        raise ConfigError(f"--mode {text!r}: permissions go from 0000 to 7777")
    return value


@dataclass(frozen=True, slots=True)
class _Display:
    """How the transfer is carried and shown, beside what it does."""

    progress: bool  # the progress bar on a terminal
    workers: int | None  # worker processes; None: herd decides by cores and hosts
    ask_become_pass: bool = False  # -K: ask once, after the hosts are known to be fine


def _split_options(
    pattern: str, opts: dict[str, Any], *, mkdir: bool
) -> tuple[TransferOptions, FleetOptions, _Display]:
    """The transfer's own options, those shared with run, and how to carry and show it."""
    from herd.cli.launch import current_umask
    from herd.hosts.transfer_plan import TransferOptions

    ask = opts.pop("ask_become_pass")
    options = TransferOptions(
        mkdir=mkdir,
        mode=_mode(opts.pop("mode")),
        follow_symlinks=opts.pop("follow_links"),
        verify=not opts.pop("no_verify"),
        stall_timeout=opts.pop("stall_timeout"),
        umask=current_umask(),
        become=given_become(
            opts.pop("become") or ask,
            opts.pop("become_user"),
            opts.pop("become_method"),
            ask_password=ask,
        ),
    )
    display = _Display(
        progress=not opts.pop("no_progress"), workers=opts.pop("workers"), ask_become_pass=ask
    )
    return options, FleetOptions.take(pattern, opts), display


def _execute(
    app: AppContext,
    fleet: FleetOptions,
    job: TransferJob,
    what: str,
    display: _Display,
) -> int:
    """Select hosts, connect with run's engine, render, record: the shared half of push and pull.

    The hosts are carried by worker processes, one per core, when there are
    enough of them (``herd.hosts.workers``), else in this process.
    """
    from herd.cli.gateways import chains_for, first_hops, through_gateways, via_detail
    from herd.cli.operation import drive
    from herd.core.open_files import PULL_FILES, PUSH_FILES, SSH_HOST
    from herd.core.settings import load_settings
    from herd.ui.sinks import transfer_sinks

    loaded = load_settings(app.paths.settings_file)
    hosts, connector, reader = reach(app, fleet, loaded.run)
    chains = chains_for(app, hosts, fleet.extra_vars)
    connector.preload(first_hops(chains))
    check_become(hosts, job.options.become)
    if display.ask_become_pass:
        become = with_become_password(job.options.become, ask=True)
        job = replace(job, options=replace(job.options, become=become))
    extra = PUSH_FILES if job.kind == "push" else PULL_FILES
    plan = fleet.plan(job.kind, what, loaded.run, len(hosts), open_files=SSH_HOST + extra)
    per_host, resources = _carriers(
        app,
        fleet,
        job,
        connector=connector,
        hosts=[h for h in hosts if h.name not in chains],
        forks=plan.forks,
        display=display,
        agent=loaded.agent,
    )
    detail: dict[str, object] = {"pick": fleet.pick} if fleet.pick else {}
    if chains:
        per_host, resources = through_gateways(
            job, connector, per_host, resources, hosts=hosts, chains=chains
        )
        detail["via"] = via_detail(chains)
    batch = drive(
        app,
        plan,
        hosts,
        per_host,
        transfer_sinks(fleet.output_mode(progress=display.progress), reader, job.kind),
        record=not fleet.no_log,
        syslog=fleet.syslog_target(loaded.log),
        detail=detail or None,
        resources=resources,
    )
    return batch.exit_code


def _carriers(
    app: AppContext,
    fleet: FleetOptions,
    job: TransferJob,
    *,
    connector: Connector,
    hosts: list[Host],
    forks: int,
    display: _Display,
    agent: AgentSettings,
) -> tuple[PerHost, Resources | None]:
    """Who carries the hosts: worker processes when they pay, else the agent's kept
    connections when there is an agent, else this process."""
    from herd.cli.agent import agent_for, through_agent
    from herd.hosts.workers import WorkerJob, absolute, carried, job_data, sized

    sized_job, count = sized(job, hosts, forks=forks, requested=display.workers)
    pid = None
    if not count and not all(host.local for host in hosts):
        pid = agent_for(fleet.no_agent, agent)
    if pid is None:
        return carried(sized_job, connector, count, app.debug)
    options = connector.options.for_agent()
    setup = {"job": job_data(WorkerJob(absolute(sized_job), options))}
    return through_agent(pid, setup, sized_job.per_host(connector))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@click.argument("paths", nargs=-1, required=True, metavar="SRC... DEST")
@click.option("--mkdir", is_flag=True, help="Create the remote destination directory if missing.")
@_transfer_options
@pass_app
def push(app: AppContext, /, pattern: str, paths: tuple[str, ...], mkdir: bool, **opts: Any) -> int:
    """Send local files or directories to every host PATTERN matches.

    \b
    Where SRC lands (rsync's rule, so a re-run lands in the same place):
      dir        as DEST/dir (DEST is a directory; --mkdir creates it)
      dir/       its contents in DEST itself (also `.`)
      file       into DEST if DEST ends in / or is a directory, else at DEST
    Several SRCs all land in the directory DEST, each by its own rule.

    Each file is written under a temporary name, checked with sha256 and
    renamed into place; files already there with the same size and sha256 are
    skipped, so a re-run sends nothing. A symbolic link on the host below DEST
    is replaced, never written through (DEST itself may be a link to a
    directory). `{host}` in DEST becomes each host's inventory name (hosts
    sharing one filesystem). Hosts behind a gateway (herd_gateway) get their
    files from it: each file crosses to the gateway once.
    """
    from herd.hosts.transfer import PushJob
    from herd.hosts.transfer_plan import plan_push

    if len(paths) < 2:
        raise UsageError("push needs at least one SRC and a DEST")
    *sources, dest = paths
    options, fleet, display = _split_options(pattern, opts, mkdir=mkdir)
    plan = plan_push(sources, follow_symlinks=options.follow_symlinks)
    what = f"push {' '.join(sources)} -> {dest}"
    return _execute(app, fleet, PushJob(plan, dest, options), what, display)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@click.argument("paths", nargs=-1, required=True, metavar="SRC... DEST_DIR")
@_transfer_options
@pass_app
def pull(app: AppContext, /, pattern: str, paths: tuple[str, ...], **opts: Any) -> int:
    """Fetch remote files, directories or globs from every host PATTERN matches.

    Each host's files land in DEST_DIR/HOST/REMOTE_PATH, written under a
    temporary name, checked against the host's sha256 and renamed into place;
    directories come too, empty ones included. Nothing under DEST_DIR/HOST is
    ever written through a symbolic link, whatever the host sends. A file that
    grows while it is read (a live log) is kept as it was when listed; one
    rewritten meanwhile fails. A source missing on a host is that host's
    error; the others carry on. `{host}` in a SRC becomes each host's
    inventory name. Hosts behind a gateway (herd_gateway) land on the gateway
    first, then here by the same rules.
    """
    from herd.hosts.transfer import PullJob

    if len(paths) < 2:
        raise UsageError("pull needs at least one SRC and a DEST_DIR")
    *sources, dest = paths
    dest_dir = Path(dest)
    if dest_dir.exists() and not dest_dir.is_dir():
        raise UsageError(f"{dest_dir}: not a directory")
    options, fleet, display = _split_options(pattern, opts, mkdir=True)
    what = f"pull {' '.join(sources)} -> {dest_dir}"
    return _execute(app, fleet, PullJob(tuple(sources), dest_dir, options), what, display)
