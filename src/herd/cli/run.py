"""``herd run PATTERN [options] -- COMMAND...``: one shell command on every matching host.

Everything that can be wrong with the input (the command, the pattern, a key
file, an option) is found before the operation is recorded or any host is
contacted: one line, exit 2, nothing run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from herd.cli.context import AppContext, pass_app
from herd.cli.fleet_options import FleetOptions, fleet_options, prompt_secret, reach
from herd.errors import SourceError, UsageError

if TYPE_CHECKING:
    from herd.core.hostset import FoldReader
    from herd.ui.render import Renderers
    from herd.ui.summary import Summary

__all__ = ["RunRequest", "execute", "run"]

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


def _read_stdin_file(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read --stdin file: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything ``herd run`` was asked, checked for form; settings fill what is None."""

    fleet: FleetOptions
    command: str
    timeout: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    sudo: bool = False
    ask_become_pass: bool = False
    stdin: bytes | None = field(default=None, repr=False)


def _renderers(fleet: FleetOptions, reader: FoldReader) -> tuple[Renderers, Summary]:
    """The sinks for this run's output mode; only the chosen ones are imported."""
    from herd.ui.console import Printer
    from herd.ui.render import Renderer, Renderers
    from herd.ui.summary import Summary

    err = Printer(stderr=True)
    chosen: list[Renderer] = []
    streaming = False
    if fleet.out_dir is not None:
        from herd.ui.outdir import OutDir

        chosen.append(OutDir(fleet.out_dir))
    if fleet.as_json:
        from herd.ui.jsonlines import JsonLines

        chosen.append(JsonLines(sys.stdout))
    elif fleet.gather:
        from herd.ui.gather import GatherRenderer

        chosen.append(GatherRenderer(Printer(), reader))
    elif fleet.out_dir is None:
        from herd.ui.live import LiveLines

        chosen.append(LiveLines(Printer()))
        streaming = True
    if not streaming:
        from herd.ui.progress import ProgressBar

        chosen.append(ProgressBar(err, "run"))
    summary = Summary(err, reader=reader, verbose=fleet.verbose)
    chosen.append(summary)
    return Renderers(chosen), summary


def execute(app: AppContext, request: RunRequest) -> int:
    """Check the input, record the operation, run on every host, render; the exit code."""
    from herd.cli.operation import run_operation
    from herd.core.config import load_settings
    from herd.hosts.command import RemoteCommand
    from herd.hosts.remote import run_on_host

    settings = load_settings(app.paths.settings_file).run
    hosts, connector, reader = reach(app, request.fleet, settings)
    remote = RemoteCommand(
        command=request.command,
        env=request.env,
        sudo=request.sudo,
        become_password=prompt_secret("sudo password") if request.ask_become_pass else None,
        stdin=request.stdin,
        timeout=request.timeout if request.timeout is not None else settings.command_timeout,
        output_cap=settings.output_cap,
    )
    renderers, summary = _renderers(request.fleet, reader)

    def noted(op_id: int | None) -> None:
        if op_id is not None:
            summary.note = f"recorded as operation {op_id}: herd log show {op_id}"

    batch = run_operation(
        app,
        request.fleet.plan("run", request.command, settings),
        hosts,
        lambda host, emit: run_on_host(host, remote, connector, emit),
        renderers,
        on_begin=noted,
    )
    return batch.exit_code


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@click.argument("command", nargs=-1, required=True)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds the command may run on each host; then it is stopped (default none).",
)
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
    sudo: bool,
    ask_become_pass: bool,
    stdin_file: Path | None,
    **opts: Any,
) -> int:
    """Run a shell command on every host PATTERN matches, in parallel.

    Put the command after `--`. Exit status: 0 when every host ran it
    successfully, 1 when any host did not, 2 on bad input (nothing run),
    130 when interrupted. stderr lines are marked with `!`; -o writes
    DIR/HOST.out, HOST.err and HOST.exit.
    """
    line = " ".join(command).strip()
    if not line:
        raise UsageError("empty command: give the command after --")
    request = RunRequest(
        fleet=FleetOptions.take(pattern, opts),
        command=line,
        timeout=timeout,
        env=parse_env(env),
        sudo=sudo or ask_become_pass,
        ask_become_pass=ask_become_pass,
        stdin=_read_stdin_file(stdin_file),
    )
    return execute(app, request)
