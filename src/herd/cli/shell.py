"""``herd shell PATTERN``: an interactive prompt on the hosts, over the agent's kept connections.

Each line runs on the current hosts as ``herd run`` would (``-b`` gathering by
default) and is recorded as an operation of kind ``shell``. ``+PATTERN`` and
``-PATTERN`` add and remove hosts (clush's editing of the node set); a host that
turns out unreachable is dropped from the set with a note, and ``:retry``
brings the dropped ones back. Ctrl-C stops the running line on every host and
returns to the prompt. With stdin not a terminal, lines are read from it and
the output is plain, so a shell session can be scripted.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from herd.cli.context import AppContext, pass_app
from herd.cli.fleet_options import FleetOptions, fleet_options
from herd.core.model import Status
from herd.errors import HerdError

if TYPE_CHECKING:
    from herd.core.hostset import FoldReader

__all__ = ["shell"]

HELP = """\
A line runs on the current hosts. Also:
  +PATTERN / -PATTERN   add / remove the hosts PATTERN matches
  :hosts                the current hosts (and the dropped ones)
  :retry                bring the hosts dropped as unreachable back
  :gather on|off        group identical outputs (-b), on by default
  :timeout N            stop a line on a host after N seconds (0: never)
  :sudo on|off          run the lines as root through sudo
  !COMMAND              run COMMAND here, on this machine
  :help, :quit (or Ctrl-D)
Ctrl-C stops the running line on every host."""


@dataclass(slots=True)
class ShellState:
    """The hosts a line runs on, and how."""

    hosts: list[str]
    dropped: list[str] = field(default_factory=list)
    gather: bool = True
    timeout: float | None = None  # None: herd.toml's; 0: none
    sudo: bool = False
    last_code: int = 0


class Shell:
    """One session: reads lines, runs them, edits the host set."""

    def __init__(self, app: AppContext, fleet: FleetOptions, state: ShellState) -> None:
        self.app = app
        self.fleet = fleet
        self.state = state
        self.reader: FoldReader | None = None

    def names(self, pattern: str) -> list[str]:
        """The host names ``pattern`` matches in the inventory (a bad one: a one-line error)."""
        from herd.cli.targets import select_targets

        hosts, self.reader = select_targets(self.app, pattern, None, self.fleet.extra_vars)
        return [h.name for h in hosts]

    def folded(self, names: list[str]) -> str:
        """``names`` folded as the inventory reads them back (as ``-b`` headers are)."""
        from herd.core.hostset import fold

        return fold(names, self.reader) if names else "none"

    def handle(self, line: str) -> bool:
        """Act on one line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if line in (":quit", ":q", ":exit"):
            return False
        try:
            self._handle(line)
        except HerdError as exc:
            click.echo(f"herd: error: {exc}", err=True)
        return True

    def _handle(self, line: str) -> None:
        state = self.state
        if line.startswith("!"):
            subprocess.run(line[1:], shell=True, check=False)
        elif line.startswith("+"):
            added = [n for n in self.names(line[1:].strip()) if n not in state.hosts]
            state.hosts += added
            state.dropped = [n for n in state.dropped if n not in added]
            self.note(f"{len(added)} added")
        elif line.startswith("-"):
            gone = set(self.names(line[1:].strip()))
            state.hosts = [n for n in state.hosts if n not in gone]
            state.dropped = [n for n in state.dropped if n not in gone]
            self.note(f"{len(gone)} removed")
        elif line.startswith(":"):
            self._command(*line[1:].split(None, 1))
        else:
            self.run(line)

    def _command(self, name: str, argument: str = "") -> None:
        state = self.state
        if name == "help":
            click.echo(HELP)
        elif name == "hosts":
            click.echo(f"{len(state.hosts)} hosts: {self.folded(state.hosts)}")
            if state.dropped:
                click.echo(f"dropped (unreachable): {self.folded(state.dropped)}")
        elif name == "retry":
            back, state.dropped = state.dropped, []
            state.hosts += [n for n in back if n not in state.hosts]
            self.note(f"{len(back)} back")
        elif name in ("gather", "sudo") and argument in ("on", "off"):
            setattr(state, name, argument == "on")
        elif name == "timeout" and _seconds(argument) is not None:
            state.timeout = _seconds(argument)
        else:
            click.echo(f"herd: not a shell command: :{name} {argument}".rstrip(), err=True)

    def note(self, text: str) -> None:
        click.echo(f"herd: {text}; {len(self.state.hosts)} hosts", err=True)

    def run(self, line: str) -> None:
        """Run ``line`` on the current hosts, recorded as a ``shell`` operation."""
        from herd.cli.run import RunRequest, run_batch
        from herd.hosts.become import Become

        state = self.state
        if not state.hosts:
            click.echo("herd: no hosts: add some with +PATTERN or :retry", err=True)
            return
        fleet = replace(
            self.fleet, pattern=",".join(state.hosts), gather=state.gather, yes=True, limit=None
        )
        request = RunRequest(
            fleet=fleet,
            command=line,
            timeout=state.timeout,
            become=Become() if state.sudo else None,
        )
        batch = run_batch(self.app, request, kind="shell")
        state.last_code = batch.exit_code
        lost = [r.host for r in batch.results if r.status is Status.UNREACHABLE]
        if lost:
            state.hosts = [n for n in state.hosts if n not in lost]
            state.dropped += [n for n in lost if n not in state.dropped]
            self.note(f"dropped {self.folded(lost)} (unreachable; :retry brings them back)")


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _lines(prompt: Any) -> Iterator[str]:
    """Lines from the terminal (with a prompt; Ctrl-C clears the line) or from the pipe."""
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input(prompt())
        except KeyboardInterrupt:
            click.echo("^C", err=True)
        except EOFError:
            click.echo("", err=True)
            return


@contextlib.contextmanager
def _readline(history: Path, words: list[str]) -> Iterator[None]:
    """History in the herd home, and tab completion of host and group names."""
    if not sys.stdin.isatty():
        yield
        return
    import readline

    def complete(text: str, index: int) -> str | None:
        sign = text[:1] if text[:1] in "+-" else ""
        found = [sign + w for w in words if w.startswith(text[len(sign) :])]
        return found[index] if index < len(found) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t,:&!")
    readline.parse_and_bind("tab: complete")
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(history)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern")
@fleet_options
@pass_app
def shell(app: AppContext, /, *, pattern: str, **opts: Any) -> int:
    """An interactive prompt on the hosts PATTERN matches, on kept connections.

    Each line runs on every current host (-b gathering by default) and is
    recorded as a `shell` operation; type :help for +PATTERN, -PATTERN, :hosts,
    :retry, :gather, :timeout, :sudo and !COMMAND. Piped lines run one after the
    other; the exit status is the last line's.
    """
    from herd.cli.targets import load_app_inventory

    fleet = FleetOptions.take(pattern, opts)
    session = Shell(app, fleet, ShellState([]))
    session.state.hosts = session.names(pattern)
    inventory = load_app_inventory(app, fleet.extra_vars)
    words = sorted({*inventory.host_names, *inventory.group_names})
    app.paths.home.mkdir(parents=True, exist_ok=True)
    with _readline(app.paths.home / "shell_history", words):
        if sys.stdin.isatty():
            session.note("type :help for help")
        for line in _lines(lambda: f"herd [{len(session.state.hosts)}]> "):
            if not session.handle(line):
                break
    return session.state.last_code
