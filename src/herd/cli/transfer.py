"""``herd push PATTERN SRC... DEST`` and ``herd pull PATTERN SRC... DEST_DIR``.

Bad input (a missing or unreadable local source, a bad pattern, an option
value) is found before the operation is recorded or any host contacted: one
line, exit 2, nothing sent. Each host's files, bytes, hashes and skips are
recorded in the operation log as the host finishes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from herd.cli.context import AppContext, pass_app
from herd.errors import ConfigError, UsageError

__all__ = ["pull", "push"]


@dataclass(frozen=True, slots=True)
class _Common:
    """The options push and pull share with ``herd run``."""

    pattern: str
    limit: str | None
    forks: int | None
    connect_timeout: float | None
    host_keys: str | None
    known_hosts: Path | None
    ssh_config: tuple[Path, ...]
    yes: bool
    confirm_over: int | None
    out_dir: Path | None
    gather: bool
    as_json: bool
    verbose: bool
    no_log: bool
    no_progress: bool


def _common_options(command: Any) -> Any:
    """The options of push and pull, declared once."""
    options = [
        click.option("-l", "--limit", default=None, help="Further limit the hosts to a pattern."),
        click.option("-f", "--forks", type=click.IntRange(min=1), default=None,
                     help="Hosts worked on at once (default 100)."),
        click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True),
                     default=None, help="Seconds to connect and log in, per host (default 10)."),
        click.option("--stall-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
                     show_default=True, help="A host that moves no data for this long fails."),
        click.option("--host-keys", type=click.Choice(["strict", "accept-new", "off"]),
                     default=None, help="Host key checking against known_hosts (default strict)."),
        click.option("--known-hosts", type=click.Path(path_type=Path, dir_okay=False),
                     default=None, help="known_hosts file to use for every host."),
        click.option("-F", "--ssh-config", "ssh_config", multiple=True,
                     type=click.Path(path_type=Path, dir_okay=False, exists=True),
                     help="ssh config file to read instead of ~/.ssh/config (repeatable)."),
        click.option("-y", "--yes", is_flag=True, help="Do not ask before working on many hosts."),
        click.option("--confirm-over", type=click.IntRange(min=0), default=None,
                     help="Ask before working on more hosts than this (default 500)."),
        click.option("-L", "--follow-links", is_flag=True,
                     help="Copy what symbolic links point to instead of the links."),
        click.option("--no-verify", is_flag=True, help="Do not check the sha256 of what landed."),
        click.option("--mode", default=None, metavar="OCTAL",
                     help="Permissions for every file (e.g. 0644) instead of the source's."),
        click.option("-o", "--out-dir", type=click.Path(path_type=Path, file_okay=False),
                     default=None, help="Write DIR/HOST.json and DIR/HOST.exit."),
        click.option("-b", "--gather", is_flag=True,
                     help="Group hosts with the same outcome and files under folded names."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per host on stdout."),
        click.option("-v", "--verbose", is_flag=True, help="Every host's reason in the summary."),
        click.option("--no-progress", is_flag=True, help="No progress bar on the terminal."),
        click.option("--no-log", is_flag=True, help="Do not record this in the operation log."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


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


def _split_options(opts: dict[str, Any], *, mkdir: bool) -> tuple[Any, _Common]:
    """The transfer's own options, and those push and pull share with run."""
    from herd.hosts.transfer_plan import TransferOptions

    options = TransferOptions(
        mkdir=mkdir,
        mode=_mode(opts.pop("mode")),
        follow_symlinks=opts.pop("follow_links"),
        verify=not opts.pop("no_verify"),
        stall_timeout=opts.pop("stall_timeout"),
    )
    return options, _Common(**opts)


def _execute(app: AppContext, kind: str, common: _Common, make_job: Any, what: str) -> int:
    """Select hosts, connect with run's engine, render, record: the shared half of push and pull."""
    from herd.cli.operation import BatchPlan, run_operation
    from herd.cli.run import _confirm as confirm_many  # the same guard rail as run
    from herd.cli.run import resolve_hosts
    from herd.core.config import load_settings
    from herd.hosts.connect import ConnectOptions, Connector
    from herd.hosts.hostkeys import HostKeyMode
    from herd.ui.console import Printer
    from herd.ui.render import Renderers
    from herd.ui.summary import Summary
    from herd.ui.transfer import (
        TransferGather,
        TransferJsonLines,
        TransferLines,
        TransferOutDir,
        TransferProgressBar,
        TransferTotals,
    )

    if common.gather and common.as_json:
        raise ConfigError("--gather and --json are two output formats: choose one")
    settings = load_settings(app.paths.settings_file).run
    hosts = resolve_hosts(app, common.pattern, common.limit)
    connector = Connector(
        ConnectOptions(
            connect_timeout=common.connect_timeout or settings.connect_timeout,
            host_keys=HostKeyMode.parse(common.host_keys or settings.host_keys),
            known_hosts=common.known_hosts,
            ssh_config=common.ssh_config or None,
        )
    )
    connector.preload(hosts)
    limit = settings.confirm_over if common.confirm_over is None else common.confirm_over
    confirm_many(len(hosts), common.pattern, limit, common.yes)
    verb = "sent" if kind == "push" else "fetched"
    out, err = Printer(), Printer(stderr=True)
    bar = TransferProgressBar(err, kind)
    renderers: list[Any] = []
    if common.as_json:
        renderers.append(TransferJsonLines(sys.stdout))
    elif common.gather:
        renderers.append(TransferGather(out, verb))
    else:
        renderers.append(TransferLines(out, verb))
    if common.out_dir is not None:
        try:
            renderers.append(TransferOutDir(common.out_dir))
        except OSError as exc:
            raise ConfigError(f"{common.out_dir}: cannot create: {exc.strerror}") from exc
    if not common.no_progress:
        renderers.append(bar)
    summary = Summary(err, verbose=common.verbose)
    totals = TransferTotals(summary, verb)
    renderers.append(totals)
    renderers.append(summary)
    plan = BatchPlan(
        kind=kind,
        pattern=common.pattern,
        command=what,
        forks=common.forks or settings.forks,
        no_log=common.no_log,
    )
    job = make_job(connector, bar)

    def noted(op_id: int | None) -> None:
        if op_id is not None:
            totals.recorded = f"recorded as operation {op_id}: herd log show {op_id}"

    batch = run_operation(app, plan, hosts, job, Renderers(renderers), on_begin=noted)
    return batch.exit_code


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@click.argument("paths", nargs=-1, required=True, metavar="SRC... DEST")
@click.option("--mkdir", is_flag=True, help="Create the remote destination directory if missing.")
@_common_options
@pass_app
def push(app: AppContext, /, pattern: str, paths: tuple[str, ...], mkdir: bool, **opts: Any) -> int:
    """Send local files or directories to every host PATTERN matches.

    DEST is a remote directory (ending in / or existing) that each SRC lands in,
    or, for a single SRC, the remote path it lands at. Each file is written
    under a temporary name, checked with sha256 and renamed into place; files
    already there with the same size and sha256 are skipped. `{host}` in DEST
    becomes each host's inventory name (hosts sharing one filesystem).
    """
    from herd.hosts.transfer import push_job
    from herd.hosts.transfer_plan import plan_push
    from herd.hosts.transfer_stream import BlockSource

    if len(paths) < 2:
        raise UsageError("push needs at least one SRC and a DEST")
    *sources, dest = paths
    options, common = _split_options({"pattern": pattern, **opts}, mkdir=mkdir)
    plan = plan_push([Path(s) for s in sources], follow_symlinks=options.follow_symlinks)
    source = BlockSource(options.block_size)
    what = f"push {' '.join(sources)} -> {dest}"
    return _execute(
        app,
        "push",
        common,
        lambda connector, bar: push_job(
            connector, plan=plan, dest=dest, options=options, source=source, progress=bar
        ),
        what,
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@click.argument("paths", nargs=-1, required=True, metavar="SRC... DEST_DIR")
@_common_options
@pass_app
def pull(app: AppContext, /, pattern: str, paths: tuple[str, ...], **opts: Any) -> int:
    """Fetch remote files, directories or globs from every host PATTERN matches.

    Each host's files land in DEST_DIR/HOST/REMOTE_PATH, written under a
    temporary name, checked against the host's sha256 and renamed into place.
    A source missing on a host is that host's error; the others carry on.
    `{host}` in a SRC becomes each host's inventory name.
    """
    from herd.hosts.transfer import pull_job

    if len(paths) < 2:
        raise UsageError("pull needs at least one SRC and a DEST_DIR")
    *sources, dest = paths
    dest_dir = Path(dest)
    if dest_dir.exists() and not dest_dir.is_dir():
        raise UsageError(f"{dest_dir}: not a directory")
    options, common = _split_options({"pattern": pattern, **opts}, mkdir=True)
    what = f"pull {' '.join(sources)} -> {dest_dir}"
    return _execute(
        app,
        "pull",
        common,
        lambda connector, bar: pull_job(
            connector, sources=list(sources), dest_dir=dest_dir, options=options, progress=bar
        ),
        what,
    )
