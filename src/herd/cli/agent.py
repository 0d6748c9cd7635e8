"""``herd agent start | stop | status``: the per-user process that keeps SSH connections.

``herd run`` starts the agent itself when ``[agent] persist`` is not 0, so these
commands are for looking at it and for stopping it early. ``serve`` is what a
starting command runs: it detaches (a second fork, its own session, its output
to ``agent.log``) and returns once the socket accepts connections.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import click

from herd.cli.context import AppContext, pass_app
from herd.core.daemon import detach
from herd.core.settings import AgentSettings
from herd.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from herd.cli.fleet_options import FleetOptions
    from herd.core.model import Host, HostResult
    from herd.core.settings import RunSettings
    from herd.hosts.options import ConnectOptions
    from herd.operation.agent_protocol import AgentFiles
    from herd.operation.driver import HostWork, PerHost, Resources

__all__ = ["agent", "agent_for", "checked_by_agent", "through_agent"]

_READY_BOUND = 25.0  # seconds the detached agent has to bind its socket
_STOP_BOUND = 10.0  # seconds a stopped agent has to exit before it gets SIGTERM
_GC_YOUNG = 10_000  # allocations between the agent's collections of young objects (Python: 700)


def agent_for(no_agent: bool, settings: AgentSettings) -> int | None:
    """The pid of the agent this command should use (started if need be), or None.

    None when ``--no-agent`` or ``[agent] persist = 0`` says so, or when no agent can
    be had: then a warning, and the command connects from its own process.
    """
    if no_agent or settings.persist <= 0:
        return None
    from herd.operation.agent_client import AgentUnavailable, ensure_agent

    try:
        return ensure_agent(settings.persist)
    except (AgentUnavailable, OSError, ConfigError) as exc:
        click.echo(f"herd: warning: {exc}; connecting without the agent", err=True)
        return None


def checked_by_agent(
    pid: int, fleet: FleetOptions, settings: RunSettings, hosts: list[Host]
) -> ConnectOptions | None:
    """How to connect to ``hosts``, once the agent (pid ``pid``) has read every file they
    need and this process has printed its warnings and asked its questions; None (with a
    warning) if the agent cannot answer: then this process reads the files itself.
    """
    from herd.cli.fleet_options import ask_up_front, connect_options
    from herd.core.plain import plain
    from herd.hosts.options import host_for_worker
    from herd.operation.agent_client import AgentUnavailable, check

    options = connect_options(fleet, settings)
    remote = [plain(host_for_worker(host)) for host in hosts if not host.local]
    try:
        warnings = check(plain(options.with_own_ssh_agent()), remote)
    except (AgentUnavailable, OSError) as exc:
        click.echo(f"herd: warning: the agent (pid {pid}): {exc}; connecting without it", err=True)
        return None
    return ask_up_front(fleet, settings, hosts, warnings, options)


def through_agent(
    pid: int, setup: dict[str, Any], in_process: PerHost
) -> tuple[PerHost, Resources]:
    """The per-host work handed to the agent (pid ``pid``) with ``setup``, and the link to it
    as the driver's resources; ``ansible_connection=local`` hosts stay ``in_process``."""
    from herd.hosts.options import host_for_agent
    from herd.operation.agent_client import AgentRun

    link = AgentRun(pid, setup, prepare=host_for_agent)

    def per_host(host: Host, work: HostWork) -> Awaitable[HostResult]:
        return in_process(host, work) if host.local else link.run_host(host, work)

    return per_host, lambda: link


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def agent() -> None:
    """The per-user process that keeps SSH connections open between commands.

    Its socket is in $XDG_RUNTIME_DIR/herd (else /tmp/herd-UID), reachable only by
    you. herd run starts it when needed; [agent] persist in herd.toml says how long
    an idle connection is kept (0 turns the agent off), --no-agent skips it once.
    """


def _persist(app: AppContext) -> float:
    from herd.core.settings import load_settings

    return load_settings(app.paths.settings_file).agent.persist


@agent.command()
@pass_app
def start(app: AppContext, /) -> int:
    """Start the agent (if it is not running)."""
    from herd.operation.agent_client import AgentUnavailable, ensure_agent
    from herd.operation.agent_protocol import agent_files

    persist = _persist(app)
    if persist <= 0:
        raise UsageError("the agent is turned off ([agent] persist = 0 in herd.toml)")
    try:
        pid = ensure_agent(persist)
    except AgentUnavailable as exc:
        raise ConfigError(str(exc)) from None
    click.echo(f"herd: agent (pid {pid}) serving on {agent_files().socket}", err=True)
    return 0


@agent.command()
def stop() -> int:
    """Stop the agent: its connections close."""
    from herd.operation.agent_client import request
    from herd.operation.agent_protocol import agent_files, agent_gone, agent_pid

    files = agent_files()
    pid = agent_pid(files)
    with contextlib.suppress(OSError):
        pid = int(request(files, {"op": "stop"})["pid"])
    if pid is None:
        click.echo("herd: no agent running", err=True)
        return 0
    if not agent_gone(pid, _STOP_BOUND):
        os.kill(pid, signal.SIGTERM)
    click.echo(f"herd: agent (pid {pid}) stopped", err=True)
    return 0


@agent.command()
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object.")
def status(as_json: bool) -> int:
    """The agent's connections: host, age, idle time, uses."""
    import json

    from herd.operation.agent_client import status as agent_status

    answer = agent_status()
    if answer is None:
        if as_json:
            click.echo(json.dumps({"pid": None, "connections": []}))
        else:
            click.echo("herd: no agent running", err=True)
        return 0
    if as_json:
        click.echo(json.dumps(answer))
        return 0
    connections: list[dict[str, Any]] = answer["connections"]
    warm = answer.get("warm_pid")
    click.echo(
        f"agent pid {answer['pid']}, socket {answer['socket']}, persist {answer['persist']:g} s,"
        f" {len(connections)} connection{'s' if len(connections) != 1 else ''},"
        f" warm command line {f'pid {warm}' if warm else 'not running'}"
    )
    for row in connections:
        user = f"{row['user']}@" if row["user"] else ""
        click.echo(
            f"  {row['host']:<20} {user}{row['address']:<20} age {row['age']:8.1f} s"
            f"  idle {row['idle']:8.1f} s  uses {row['uses']}"
        )
    return 0


@agent.command(hidden=True)
@click.option("--persist", type=click.FloatRange(min=0, min_open=True), required=True)
def serve(persist: float) -> int:
    """Detach and serve (what a starting command runs)."""
    from herd.operation.agent_protocol import agent_files

    files = agent_files()
    readable, writable = os.pipe()
    if os.fork():
        os.close(writable)
        ready, _, _ = select.select([readable], [], [], _READY_BOUND)
        said = os.read(readable, 16) if ready else b""
        if said in (b"ok", b"busy"):
            return 0
        click.echo(f"herd: error: the agent did not start; see {files.log}", err=True)
        return 1
    os.close(readable)
    detach(str(files.log))
    os.chdir("/")
    try:
        _serve(files, persist, writable)
    finally:
        os._exit(0)


def _serve(files: AgentFiles, persist: float, ready_pipe: int) -> None:
    import logging

    from herd.hosts.sshlib import load_asyncssh, run_loop

    load_asyncssh()  # before the engine imports it: the cheap way
    from herd.hosts.agent import AgentBusy, hold_lock, serve

    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(process)d %(message)s"
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    # The agent's sessions free nearly all they make by reference counting, yet every
    # 700 allocations the collector walked the young objects, and now and then all of
    # its connections' (20 ms with 200): 4% of its CPU. 10,000 keeps what it holds
    # before a collection small and the collections rare.
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])
    try:
        hold_lock(files)
    except AgentBusy:
        os.write(ready_pipe, b"busy")
        return

    def ready() -> None:
        os.write(ready_pipe, b"ok")
        os.close(ready_pipe)

    warm = _start_warm()
    try:
        run_loop(lambda: serve(files, persist, ready))
    finally:
        if warm is not None:
            warm.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                warm.wait(_STOP_BOUND)


def _start_warm() -> subprocess.Popen[bytes] | None:
    """Start the warm command line (``herd.cli.warm``) beside this agent, or None."""
    argv = [sys.executable, "-m", "herd", "agent", "warm", "--agent", str(os.getpid())]
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd="/")
    except OSError as exc:
        print(f"the warm command line did not start: {exc}", file=sys.stderr)
        return None


@agent.command(hidden=True)
@click.option("--agent", "agent_pid", type=int, required=True)
def warm(agent_pid: int) -> int:
    """Serve commands with herd's command line imported (what the agent starts)."""
    from herd.cli.warm import serve as serve_warm
    from herd.operation.agent_protocol import agent_files

    serve_warm(agent_files(), agent_pid)
    return 0
