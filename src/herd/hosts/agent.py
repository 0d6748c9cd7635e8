"""The agent: one process per user that keeps SSH connections open between herd commands.

It listens on a unix socket in the user's private runtime directory (see
``herd.operation.agent_protocol``), answers only peers of its own uid
(SO_PEERCRED), runs each host's work a client hands it on a kept connection
(``herd.hosts.agent_pool``) and streams the operation layer's events back.
The client stays the one writer of the operation log. Idle connections close
after the persist time, and the agent exits once it holds none and serves no
client. A client that goes away cancels its hosts' work (their remote commands
are stopped, as on Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from herd.core.daemon import CodeStamps, hold_pid_lock, peer_uid
from herd.core.events import HostFinished, encode
from herd.core.model import Host, HostResult
from herd.core.plain import typed
from herd.errors import UsageError
from herd.hosts.agent_pool import Pool, PooledConnector
from herd.hosts.command import RemoteCommand
from herd.hosts.connect import Connector
from herd.hosts.options import ConnectOptions
from herd.hosts.remote import run_on_host
from herd.hosts.ssh_config import SshMemo
from herd.hosts.workers import job_from
from herd.operation.agent_protocol import (
    LINE_LIMIT,
    AgentFiles,
    LineBatch,
    message,
    read_message,
)
from herd.operation.driver import HostWork, PerHost
from herd.operation.fanout import error_result

__all__ = ["AgentBusy", "check", "hold_lock", "serve"]

log = logging.getLogger("herd.agent")

_SWEEP_EVERY = 1.0  # seconds between looks for idle connections (less when persist is short)


class AgentBusy(Exception):
    """Another agent of this user holds the lock: it serves, this one need not."""


class _NoSlot:
    """The agent's hosts hold no fork slot of its own: the client's fan-out bounds them."""

    def step_out(self) -> bool:
        return False

    async def step_in(self) -> None:
        return None


def hold_lock(files: AgentFiles) -> int:
    """Take the agent lock (AgentBusy if another agent holds it) and write our pid in it."""
    fd = hold_pid_lock(files.lock)
    if fd is None:
        raise AgentBusy(str(files.lock))
    return fd


class _Agent:
    def __init__(self, files: AgentFiles, persist: float) -> None:
        self.files = files
        self.pool = Pool(persist)
        self.persist = persist
        self.clients = 0
        self.last_activity = time.monotonic()
        self.started = time.monotonic()
        self.stopping = asyncio.Event()
        self.requests = 0
        self.code = CodeStamps()  # the code it runs: once changed on disk, it leaves
        self.retiring = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
            if uid != os.getuid():
                log.warning("refused a peer of uid %d", uid)
                writer.write(message({"error": f"refused: uid {uid} is not this agent's user"}))
                return
            line = await reader.readline()
            if line:
                await self._request(read_message(line), reader, writer)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # PlainError is a ValueError
            log.warning("a request failed: %s", exc)
            with contextlib.suppress(OSError):
                writer.write(message({"error": f"bad request: {exc}"}))
        finally:
            self.clients -= 1
            self.last_activity = time.monotonic()
            if self.retiring and not self.clients:
                self.stopping.set()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _request(
        self, body: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        op = body.get("op")
        if op == "hello":
            answer = {"pid": os.getpid(), "home": str(Path.home())}
            if self.retiring or self.code.changed():
                if not self.retiring:
                    log.info("herd's files changed on disk: leaving once the last client is done")
                self.retiring = True
                answer["stale"] = True  # the client starts another agent, or goes without
            writer.write(message(answer))
        elif op == "status":
            writer.write(message(self.status()))
        elif op == "stop":
            writer.write(message({"pid": os.getpid(), "stopping": True}))
            self.stopping.set()
        elif op == "check":
            writer.write(message(check(body, self.pool.ssh_memo)))
        elif op == "run":
            self.requests += 1
            await _Operation(self.pool, body).serve(reader, writer)
        else:
            writer.write(message({"error": f"unknown request {op!r}"}))
        await writer.drain()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "socket": str(self.files.socket),
            "persist": self.persist,
            "uptime": round(time.monotonic() - self.started, 3),
            "operations": self.requests,
            "connections": self.pool.status(),
        }

    async def sweep(self) -> None:
        """Close idle connections; stop once there are none, no client, for ``persist``."""
        tick = max(0.05, min(_SWEEP_EVERY, self.persist / 4))
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self.stopping.wait()
            self.pool.sweep()
            idle = time.monotonic() - self.last_activity
            if not self.clients and not len(self.pool) and idle >= self.persist:
                log.info("idle for %.1f s with no connection: exiting", idle)
                self.stopping.set()


def check(body: dict[str, Any], ssh_memo: SshMemo | None = None) -> dict[str, Any]:
    """What ``Connector.preload`` finds for a command about to hand its hosts over: every
    key, known_hosts and ssh config file read here, as the run will read them.

    The answer is ``{"warnings": [...]}``, or ``{"refused": message, "kind": error class}``
    for input that stops the command before anything is recorded. The files are read
    from the client's directory (``cwd``), so the error names them as the client does:
    the reading holds the event loop, and no other request sees the change.
    """
    connector = Connector(typed(ConnectOptions, body["options"]), ssh_memo)
    hosts: list[Host] = [typed(Host, host) for host in body["hosts"]]
    home = Path.cwd()
    os.chdir(str(body["cwd"]))
    try:
        connector.preload(hosts)
    except UsageError as exc:
        return {"refused": str(exc), "kind": type(exc).__name__}
    finally:
        os.chdir(home)
    return {"warnings": connector.warnings}


class _Operation:
    """One client's operation (a run, a push, a pull): its hosts' work on kept connections,
    their events back to it."""

    def __init__(self, pool: Pool, setup: dict[str, Any]) -> None:
        self.per_host: PerHost
        if "job" in setup:  # a push or pull, handed over as a transfer worker is
            transfer = job_from(setup["job"])
            self.per_host = transfer.job.per_host(PooledConnector(transfer.connect, pool))
        else:
            connector = PooledConnector(typed(ConnectOptions, setup["options"]), pool)
            command: RemoteCommand = typed(RemoteCommand, setup["command"])
            self.per_host = partial(_run, command=command, connector=connector)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancelled: set[str] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(message({"ok": True, "pid": os.getpid()}))
        lines = LineBatch(writer)
        send = _sender(lines)
        try:
            while line := await reader.readline():
                body = read_message(line)
                if body.get("op") == "host":
                    host: Host = typed(Host, body["host"])
                    work = HostWork(_NoSlot(), send, bool(body.get("wants_output", True)))
                    self.tasks[host.name] = asyncio.create_task(self._one(host, work))
                elif body.get("op") == "cancel":
                    self._cancel(str(body.get("host")))
        except (OSError, ValueError) as exc:
            log.info("client gone: %s", exc)
        finally:  # the client is gone (done, interrupted or killed): stop what it started
            for name in list(self.tasks):
                self._cancel(name)
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            lines.flush()

    def _cancel(self, name: str) -> None:
        """Cancel a host's work once: a second cancel would cut short its stopping the
        remote command (the client hangs up right after asking)."""
        task = self.tasks.get(name)
        if task is not None and name not in self.cancelled:
            self.cancelled.add(name)
            task.cancel()

    async def _one(self, host: Host, work: HostWork) -> None:
        started = time.monotonic()
        try:
            result = await self.per_host(host, work)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a surprise on one host must not end the others
            log.exception("%s: unexpected error", host.name)
            result = error_result(host, exc, started)
        work.emit(HostFinished(result))


async def _run(
    host: Host, work: HostWork, *, command: RemoteCommand, connector: PooledConnector
) -> HostResult:
    return await run_on_host(host, command, connector, work)


def _sender(lines: LineBatch) -> Callable[[Any], None]:
    def send(event: Any) -> None:
        lines.write(encode(event).encode("utf-8") + b"\n")

    return send


async def serve(files: AgentFiles, persist: float, ready: Callable[[], None]) -> None:
    """Serve until stopped (SIGTERM, SIGINT, ``herd agent stop``) or idle; call ``ready``
    once the socket accepts connections."""
    agent = _Agent(files, persist)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, agent.stopping.set)
    files.socket.unlink(missing_ok=True)  # a dead agent's: we hold the lock
    old_umask = os.umask(0o177)  # the socket is born 0600
    try:
        server = await asyncio.start_unix_server(
            agent.handle, path=str(files.socket), limit=LINE_LIMIT
        )
    finally:
        os.umask(old_umask)
    log.info("agent %d serving on %s, persist %g s", os.getpid(), files.socket, persist)
    ready()
    sweeping = asyncio.create_task(agent.sweep())
    try:
        await agent.stopping.wait()
    finally:
        server.close()
        with contextlib.suppress(OSError):
            files.socket.unlink()
        sweeping.cancel()
        await agent.pool.close_all()
        log.info("agent %d stopped", os.getpid())
