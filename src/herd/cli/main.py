"""The ``herd`` command: global options, lazily loaded subcommands, one error path.

Subcommands are imported only when invoked, so ``herd --help`` and a run start
fast (asyncssh and rich are not imported before they are needed).
"""

from __future__ import annotations

import importlib
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import click

from herd import __version__
from herd.cli.context import AppContext, default_home
from herd.errors import HerdError, Interrupted, signal_exit_code

__all__ = ["main", "run", "stop_on_signals"]

# name -> (module, attribute, one-line help shown by `herd --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "hosts": ("herd.cli.inventory", "hosts", "List the hosts a pattern matches."),
    "groups": ("herd.cli.inventory", "groups", "Show the group tree with host counts."),
    "run": ("herd.cli.run", "run", "Run a shell command on every matching host."),
    "push": ("herd.cli.transfer", "push", "Send files or directories to every matching host."),
    "pull": ("herd.cli.transfer", "pull", "Fetch files from every matching host."),
    "shell": ("herd.cli.shell", "shell", "An interactive prompt on the hosts, kept connections."),
    "agent": ("herd.cli.agent", "agent", "The per-user process that keeps SSH connections."),
    "log": ("herd.cli.log", "log", "Search, show, verify and export the operation log."),
    "lab": ("herd.cli.lab", "lab", "A local fleet of SSH hosts for trying herd."),
    "ftp": ("herd.cli.ftp", "ftp", "The FTP server, its users, and an FTP client."),
    "demo": ("herd.cli.demo", "demo", "The guided tour a new user runs first."),
    "gateway": ("herd.cli.gateway", "gateway", "Carry hosts for a herd that runs this over SSH."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when first used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, _ = entry
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="herd")
@click.option(
    "-i",
    "--inventory",
    "inventories",
    multiple=True,
    metavar="INVENTORY",
    help="Inventory file or directory (repeatable; default $HERD_INVENTORY, ./inventory.yml).",
)
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where herd keeps its operation log, FTP users and lab (default $HERD_HOME).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, inventories: tuple[str, ...], home: Path | None, debug: bool) -> None:
    """herd: run commands on groups of hosts, move files, serve FTP, and keep a log of it all."""
    ctx.obj = AppContext(
        inventories=inventories,
        home=(home or default_home()).expanduser(),
        debug=debug,
        argv=("herd", *ctx.obj) if isinstance(ctx.obj, tuple) else (),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (DESIGN.md's contract)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # obj carries the raw arguments into cli(), which keeps them for the operation log
        result = cli.main(args=args, prog_name="herd", standalone_mode=False, obj=tuple(args))
    except Interrupted as exc:
        click.echo(f"herd: {exc}", err=True)
        return exc.exit_code
    except HerdError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"herd: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        if debug:
            traceback.print_exc()
        exc.show()
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        click.echo("herd: interrupted", err=True)
        return signal_exit_code(signal.SIGINT)
    return result if isinstance(result, int) else 0


def _stop(signum: int, _frame: object) -> None:
    raise Interrupted(signum, signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a ``timeout`` wrapper, a cancelled CI job, a dropped SSH
    session) stop herd the way Ctrl-C does: remote commands are stopped, the
    operation recorded and the summary printed, and the exit code is 128+N.
    """
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)


def run() -> None:
    """Run the command line in this process (``herd.cli.launch.run`` decides it is this one)."""
    stop_on_signals()
    sys.exit(main())
