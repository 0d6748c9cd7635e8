"""``herd run`` through gateways: hosts reached by way of another inventory host.

A host (or group) variable ``herd_gateway: NAME`` names the inventory host
through which the host is reached; that gateway may have a ``herd_gateway`` of
its own (a chain). For each first hop herd opens one SSH connection (the
ssh-agent forwarded: the gateway authenticates with it or its own keys, never
a copied private key) and runs ``herd gateway`` there (``herd_gateway_command``
overrides it, a venv's path say). The gateway is a worker (``herd.hosts.worker``)
on the far side of that channel: it reads the job and then its hosts as the same
JSON lines, each host with the rest of its chain (``via``), and sends the same
events back. The job carries the known_hosts lines herd has for the hosts it
carries, so the gateway checks their keys against herd's files, not its own.
A gateway whose chain goes on opens the next hop itself, the same way.

A push or pull through a gateway goes by way of a private cache there
(``herd.hosts.gateway_cache``): a push's files cross the link once before the
gateway gets its hosts; a pull's land there, and each host's are fetched back
into DEST/HOST as the host finishes.

Work is delivered at most once: a gateway that dies or is cut off makes its
unfinished hosts ``unreachable`` ("gateway gw1 lost after 12 s"), never run
another way. Ctrl-C cancels each host, which the gateway passes on as a
``cancel`` line; closing the channel stops all the gateway's hosts. The gateway's
connect timeout is spent once, when its connection opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncssh

from herd.core.model import Host, HostResult, Status
from herd.core.plain import plain
from herd.errors import ConfigError
from herd.hosts.connect import Connector, HostFailure, connect, connection_lost
from herd.hosts.gateway_cache import FETCHING, drop_cache, fetch_back, send_cache
from herd.hosts.options import GATEWAY_VARIABLE, gateway_names
from herd.hosts.sftp_ops import describe
from herd.hosts.transfer import PullJob, PushJob
from herd.hosts.workers import Carrier, Job, WorkerJob, control, host_for_worker, job_data
from herd.operation.driver import HostWork, PerHost

__all__ = [
    "COMMAND_VARIABLE",
    "DEFAULT_COMMAND",
    "GATEWAY_VARIABLE",
    "Gateways",
    "gateway_chain",
    "gateway_names",
    "known_lines",
]

COMMAND_VARIABLE = "herd_gateway_command"
DEFAULT_COMMAND = "herd gateway"
_STOP_GRACE = 10.0  # seconds a gateway gets to end its hosts once told to stop


def gateway_chain(host: Host, gateways: Mapping[str, Host]) -> tuple[Host, ...]:
    """The gateways ``host`` is reached through, the first hop first (ConfigError if none fits)."""
    chain: list[Host] = []
    current = host
    while name := current.vars.get(GATEWAY_VARIABLE):
        if not isinstance(name, str):
            raise ConfigError(f"{current.name}: {GATEWAY_VARIABLE} must name a host, not {name!r}")
        gateway = gateways.get(name)
        if gateway is None:
            raise ConfigError(f"{current.name}: {GATEWAY_VARIABLE} {name!r} is no inventory host")
        if gateway.name == host.name or gateway in chain:
            raise ConfigError(f"{host.name}: its {GATEWAY_VARIABLE} chain loops through {name}")
        if gateway.local:
            raise ConfigError(f"{current.name}: gateway {name} is a local host, not an SSH one")
        chain.append(gateway)
        current = gateway
    return tuple(reversed(chain))


def _far(host: Host) -> Host:
    """``host`` as a gateway gets it: key files named here mean nothing there."""
    return host_for_worker(replace(host, identity_files=()))


class _Gateway(Carrier):
    """One gateway's ``herd gateway``, over its SSH channel."""

    lost_status = Status.UNREACHABLE

    def __init__(
        self,
        name: str,
        conn: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        cache: str | None = None,
    ) -> None:
        self._name = name
        self._cache = cache  # a push's files or a pull's on the gateway, removed when it ends
        self._fetching = asyncio.Semaphore(FETCHING)
        self._conn = conn
        self._process = process
        self._opened = time.monotonic()
        self._last_error = ""
        self._errors = asyncio.create_task(self._read_errors())
        super().__init__(process.stdin, process.stdout)

    async def _read_errors(self) -> None:
        """Keep the gateway's last stderr line: it says why a gateway that fails failed."""
        with contextlib.suppress(OSError, asyncssh.Error):
            while line := await self._process.stderr.readline():
                text = line.decode("utf-8", errors="replace").strip()
                if text:
                    self._last_error = text[:200]

    async def fetch_back(self, host: Host, result: HostResult, job: PullJob) -> HostResult:
        """``host``'s pull, from the gateway's cache into ``job``'s DEST/HOST."""
        if self._cache is None:
            return result
        async with self._fetching:
            return await fetch_back(self._conn, result, host=host, cache=self._cache, job=job)

    def kill(self, exc: Exception) -> str:
        self._process.close()
        return f"gateway {self._name} sent what herd cannot read: {exc}"

    async def ended(self) -> str:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(1.0):
                await self._errors  # its last words, if it had time for them
        took = time.monotonic() - self._opened
        said = f": {self._last_error}" if self._last_error else ""
        return f"gateway {self._name} lost after {took:.0f} s{said}"

    async def stop(self) -> None:
        """Close its stdin (it ends when its hosts are done); cut it off if it lingers."""
        with contextlib.suppress(OSError, asyncssh.Error):
            self._process.stdin.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_GRACE):
                await self._reader
        self._process.close()
        if self._cache is not None:  # the gateway removes it; unless it died
            await drop_cache(self._conn, self._cache)
        self._conn.close()
        self._errors.cancel()
        for task in (self._reader, self._errors):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass(frozen=True, slots=True)
class _Closed:
    """A gateway herd could not open: its hosts' status and reason."""

    status: Status
    reason: str


class Gateways:
    """The gateways of one operation, each opened when its first host needs it.

    ``per_host`` runs a host with no gateway through ``direct`` and any other on
    its first hop; ``async with gateways.running():`` closes them at the end.
    """

    def __init__(
        self,
        job: Job,
        connector: Connector,
        direct: PerHost,
        *,
        hosts: Sequence[Host] = (),
        chains: Mapping[str, tuple[Host, ...]] | None = None,
        known_hosts: Sequence[str] | None = None,
    ) -> None:
        self._job = job
        self._connector = connector
        self._direct = direct
        self._hosts = hosts  # the operation's hosts, for their known_hosts files
        self._chains = chains or {}
        self._known_hosts = known_hosts  # None: read herd's own files for the hosts
        self._opening: dict[str, asyncio.Task[_Gateway | _Closed]] = {}

    async def per_host(self, host: Host, work: HostWork) -> HostResult:
        """``host``'s result, through its gateways if it has any."""
        return await self.carry(host, self._chains.get(host.name, ()), work)

    async def carry(self, host: Host, chain: Sequence[Host], work: HostWork) -> HostResult:
        """``host``'s result, reached through ``chain`` (the first hop first)."""
        if not chain:
            return await self._direct(host, work)
        first, rest = chain[0], chain[1:]
        opening = self._opening.get(first.name)
        if opening is None:
            opening = asyncio.get_running_loop().create_task(self._open(first))
            self._opening[first.name] = opening
        gateway = await asyncio.shield(opening)
        if isinstance(gateway, _Closed):
            return HostResult(host.name, host.address, gateway.status, error=gateway.reason)
        via = [plain(_far(g)) for g in rest]
        result = await gateway.run(_far(host), work, via=via)
        if isinstance(self._job, PullJob) and result.status in (Status.OK, Status.ERROR):
            return await gateway.fetch_back(host, result, self._job)
        return result

    async def _open(self, gateway: Host) -> _Gateway | _Closed:
        try:
            conn = await connect(gateway, self._connector, forward_agent=True)
        except HostFailure as failure:
            return _Closed(failure.status, f"gateway {gateway.name}: {failure.reason}")
        command = str(gateway.vars.get(COMMAND_VARIABLE) or DEFAULT_COMMAND)
        job, cache = self._job, None
        if isinstance(job, PushJob | PullJob):  # files cross this link once, not once per host
            try:
                cache, job = await send_cache(conn, job)
            except (OSError, asyncssh.Error) as exc:
                conn.close()
                reason = f"gateway {gateway.name}: cannot send it the files: {describe(exc)}"
                return _Closed(Status.ERROR, reason)
            except BaseException:
                conn.close()  # cancelled (Ctrl-C) while sending: the cache went with it
                raise
        try:
            process = await conn.create_process(command, encoding=None)
        except (OSError, asyncssh.Error) as exc:
            if cache is not None:
                await drop_cache(conn, cache)
            conn.close()
            reason = f"gateway {gateway.name}: {connection_lost(exc)}"
            return _Closed(Status.UNREACHABLE, reason)
        carrier = _Gateway(gateway.name, conn, process, cache)
        options = replace(
            self._connector.options, known_hosts=None, ssh_config=None, identity_files=()
        )
        data: dict[str, Any] = job_data(WorkerJob(job, options))
        lines = self._lines_for(gateway.name)
        carrier.send(control("job", **data, known_hosts=lines, cache=cache))
        return carrier

    def _lines_for(self, first_hop: str) -> list[str]:
        """The known_hosts lines for the hosts behind ``first_hop``, from herd's own files."""
        if self._known_hosts is not None:
            return list(self._known_hosts)
        files: dict[Path, None] = {}
        for host in self._hosts:
            chain = self._chains.get(host.name, ())
            if chain and chain[0].name == first_hop:
                for reached in (*chain[1:], host):
                    files.update(dict.fromkeys(self._connector.route(reached).known_hosts.read))
        return known_lines(files)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Close every gateway opened, once the operation is done."""
        try:
            yield
        finally:
            await self.close()

    async def close(self) -> None:
        openings = list(self._opening.values())
        self._opening.clear()
        for opening in openings:
            opening.cancel()
        opened = await asyncio.gather(*openings, return_exceptions=True)
        await asyncio.gather(*(g.stop() for g in opened if isinstance(g, _Gateway)))


def known_lines(files: Iterable[Path]) -> list[str]:
    """The entries of known_hosts ``files`` (those that can be read), comments left out."""
    lines: dict[str, None] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # a file herd cannot read trusts nothing here either
        for line in text.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                lines[stripped] = None
    return list(lines)
