"""``herd lab up N | status | down``: a local fleet of SSH hosts for trying herd."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from herd.cli.context import AppContext, pass_app
from herd.errors import LabError
from herd.lab import DEFAULT_PORT, ENGINES, MAX_HOSTS, Lab, ProcessState, parse_groups

__all__ = ["lab"]

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The lab directory (default: HOME/lab under herd's home).",
)


def _lab_dir(app: AppContext, directory: Path | None) -> Path:
    return directory if directory is not None else app.paths.lab_dir


@click.group()
def lab() -> None:
    """A local fleet of SSH hosts on loopback addresses, for trying herd."""


@lab.command(short_help="Start N SSH hosts on loopback addresses and write an inventory.")
@click.argument("count", type=int, metavar="N")
@_DIR_OPTION
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="openssh: one real sshd per host; builtin: asyncssh in one process; "
    "auto: openssh when sshd is installed.",
)
@click.option(
    "--groups",
    default=None,
    metavar="NAME=COUNT,...",
    help="Group sizes in host order, e.g. web=4,db=2 (hosts beyond them go in 'other'). "
    "Default: half in web, a quarter in db, the rest in cache.",
)
@click.option(
    "--port",
    type=int,
    default=DEFAULT_PORT,
    show_default=True,
    help="The port every host listens on.",
)
@pass_app
def up(
    app: AppContext,
    *,
    count: int,
    directory: Path | None,
    engine: str,
    groups: str | None,
    port: int,
) -> int:
    """Start N SSH hosts (1 to 5000) on 127.0.1.1, 127.0.1.2, ... and write an inventory.

    Host k listens on 127.0.1.k (127.0.2.x beyond 254). The lab directory gets
    inventory.yml, known_hosts (every host key, for strict checking) and the
    client key; `herd -i DIR/inventory.yml run all -- hostname` then works.
    """
    if not 1 <= count <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {count}")
    layout = parse_groups(groups) if groups is not None else None
    started = time.monotonic()
    fleet = Lab.up(_lab_dir(app, directory), count, engine=engine, groups=layout, port=port)
    state = fleet.state
    seconds = time.monotonic() - started
    group_sizes: dict[str, int] = {}
    for host in state.hosts:
        group_sizes[host.group] = group_sizes.get(host.group, 0) + 1
    first, last = state.hosts[0], state.hosts[-1]
    click.echo(
        f"lab up: {len(state.hosts)} hosts ({state.engine}) on "
        f"{first.address}..{last.address} port {state.port} in {seconds:.1f} s"
    )
    click.echo("groups: " + ", ".join(f"{name} ({size})" for name, size in group_sizes.items()))
    click.echo(f"inventory: {fleet.inventory}")
    click.echo(f"try: herd -i {fleet.inventory} run all -- uname -n")
    return 0


@lab.command(short_help="Show each lab host and whether it runs.")
@_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host.")
@pass_app
def status(app: AppContext, directory: Path | None, as_json: bool) -> int:
    """Show each lab host and whether its server runs; exit 1 if any is down or frozen."""
    fleet = Lab(_lab_dir(app, directory))
    state = fleet.state
    rows = fleet.status()
    if as_json:
        for host, process in rows:
            record = {
                "host": host.name,
                "group": host.group,
                "address": host.address,
                "port": host.port,
                "pid": host.pid,
                "status": process.value,
            }
            click.echo(json.dumps(record))
    else:
        click.echo(
            f"lab in {fleet.dir}: {state.engine} engine, {len(rows)} hosts, started {state.started}"
        )
        width = max(len(host.name) for host, _ in rows)
        for host, process in rows:
            click.echo(
                f"  {host.name:<{width}}  {host.address}:{host.port:<5}  "
                f"pid {host.pid or '-':<7}  {process.value}"
            )
    return 0 if all(process is ProcessState.RUNNING for _, process in rows) else 1


@lab.command(short_help="Stop exactly the processes `lab up` started.")
@_DIR_OPTION
@click.option("--purge", is_flag=True, help="Also delete the lab directory.")
@pass_app
def down(app: AppContext, directory: Path | None, purge: bool) -> int:
    """Stop exactly the processes `lab up` started (checked by PID and command line)."""
    fleet = Lab(_lab_dir(app, directory))
    count = len(fleet.state.hosts)
    stopped = fleet.down(purge=purge)
    gone = "; directory removed" if purge else ""
    click.echo(f"lab down: {count} hosts, {len(stopped)} processes stopped{gone}")
    return 0
