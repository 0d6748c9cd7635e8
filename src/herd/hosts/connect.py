"""Open an SSH connection to one host, or say in a person's words why it failed.

Every failure becomes a ``HostFailure`` with a status (who caused it) and a
one-line reason: "connection refused", "no SSH banner within 3 s", "host key
for web03 changed: SHA256:...", "authentication failed for user bob".
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from herd.core.model import Host, Status
from herd.core.paths import expanded
from herd.errors import SourceError
from herd.hosts.algorithms import first_contact_host_key_algs, preferred_ciphers
from herd.hosts.hostkeys import (
    HostKeyPolicy,
    HostKeyVerdict,
    KnownHostsFiles,
    default_known_hosts,
)
from herd.hosts.options import ConnectOptions, HostKeyMode
from herd.hosts.ssh_config import SshMemo, SshOptions, SshSettings
from herd.hosts.wire import batch_writes, keep_send_env, skip_ignore_packets, skip_packet_logs
from herd.operation.fanout import HostSlot, leaf_errors

__all__ = [
    "SPOKEN_CONNECTIONS",
    "ClientKeys",
    "ConnectOptions",
    "Connector",
    "HostFailure",
    "Route",
    "connect",
    "connection_lost",
]


# ansible_connection values herd speaks over SSH (Ansible's ssh, paramiko, smart); "local"
# hosts run on this machine without connecting
SPOKEN_CONNECTIONS = frozenset({"ssh", "paramiko", "smart"})


class HostFailure(Exception):
    """One host could not be used: a status and a reason a person understands."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class NotStarted(Exception):
    """A command's channel never opened on a kept connection (dead, or silent past its
    bound): nothing ran, so the host may be tried once more on a new connection."""


@dataclass(frozen=True, slots=True)
class Route:
    """How one host is reached and trusted, every source of options applied."""

    user: str | None
    port: int | None
    identity_files: tuple[str, ...]
    timeout: float
    host_keys: HostKeyMode
    known_hosts: KnownHostsFiles
    jump: str | None
    ssh: SshSettings


class ClientKeys:
    """Private keys named by the inventory, each file read once per run.

    ``preload`` reads every key before anything connects, so an unreadable key
    file stops the command with exit 2 and nothing run.
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, ...], list[asyncssh.SSHKeyPair]] = {}

    def for_host(self, host: Host, files: tuple[str, ...]) -> list[asyncssh.SSHKeyPair] | None:
        """The key pairs in ``files``, or None to let asyncssh use ~/.ssh, the agent, ssh config."""
        if not files:
            return None
        loaded = self._loaded.get(files)  # most hosts share the same files
        if loaded is None:
            paths = tuple(str(Path(p).expanduser()) for p in files)
            loaded = []
            for path in paths:
                try:
                    loaded.extend(asyncssh.load_keypairs(path))
                except (OSError, asyncssh.KeyImportError, ValueError) as exc:
                    raise SourceError(
                        f"{path}: cannot read the private key for {host.name}: {_first_line(exc)}"
                    ) from exc
            self._loaded[files] = loaded
        return loaded


@dataclass(slots=True)
class _Handshake:
    """How far one connection got, to explain a timeout."""

    tcp: bool = False
    authenticated: bool = False
    connection: asyncssh.SSHClientConnection | None = None
    hostkey: HostKeyVerdict = field(default_factory=HostKeyVerdict)


def _client_factory(
    host: Host, policy: HostKeyPolicy, route: Route, progress: _Handshake
) -> type[asyncssh.SSHClient]:
    class _Client(asyncssh.SSHClient):
        def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
            progress.tcp = True
            progress.connection = conn

        def auth_completed(self) -> None:
            progress.authenticated = True

        def validate_host_public_key(
            self, host_name: str, addr: str, port: int, key: asyncssh.SSHKey
        ) -> bool:
            return policy.decide(
                route.known_hosts,
                route.host_keys,
                key,
                name=host.name,
                host=host_name,
                addr=addr,
                port=port,
                verdict=progress.hostkey,
            )

    return _Client


def _jump_host(spec: str, via: Host) -> Host:
    """The last hop of a ProxyJump list (``[user@]host[:port]``, hops comma-separated).

    The hops before it are its own jump. A hop without a user logs in as its own
    ssh config says, else as the target does; it trusts the target's keys files.
    """
    earlier, _, last = spec.rpartition(",")
    user, _, rest = last.strip().rpartition("@")
    address, port = rest, None
    if rest.count(":") == 1:
        address, port_text = rest.split(":")
        port = int(port_text) if port_text.isdigit() else None
    return Host(
        name=last.strip(),
        address=address,
        port=port,
        user=user or None,
        identity_files=via.identity_files,
        password=via.password,
        jump=earlier.strip() or None,
        known_hosts=via.known_hosts,
        connect_timeout=via.connect_timeout,
    )


async def connect(
    host: Host,
    connector: Connector,
    *,
    budget: float | None = None,
    fallback_user: str | None = None,
    slot: HostSlot | None = None,
    forward_agent: bool = False,
) -> asyncssh.SSHClientConnection:
    """Connect and log in to ``host`` within its connect timeout, or raise HostFailure.

    ``forward_agent`` forwards herd's ssh-agent (a gateway logs in to its hosts with it).

    Through a jump host, the jump's connection comes out of the same time budget,
    and a failure there names the jump host: every host behind a dead bastion
    says "jump host bastion1: connection refused", and ``-b`` gathers them.
    """
    if host.connection not in SPOKEN_CONNECTIONS:
        reason = f"ansible_connection={host.connection} is not something herd speaks"
        raise HostFailure(Status.ERROR, reason)
    route = connector.route(host, fallback_user)
    timeout = route.timeout if budget is None else min(route.timeout, budget)
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout
    tunnel: asyncssh.SSHClientConnection | None = None
    if route.jump:
        jump = _jump_host(route.jump, host)
        try:
            tunnel = await connect(
                jump, connector, budget=timeout, fallback_user=route.user, slot=slot
            )
        except HostFailure as failure:
            raise HostFailure(failure.status, f"jump host {jump.name}: {failure.reason}") from None
    progress = _Handshake()
    remaining = max(ends - loop.time(), 0.001)
    try:
        async with asyncio.timeout(remaining) as deadline:
            opening = asyncio.ensure_future(
                _open(
                    host,
                    route,
                    connector,
                    progress=progress,
                    tunnel=tunnel,
                    forward_agent=forward_agent,
                )
            )
            try:
                await _park_while_silent(opening, progress, deadline, slot)
                conn = await opening
            finally:
                opening.cancel()  # a no-op once it is done
    except TimeoutError:
        _close_quietly(tunnel)
        raise HostFailure(Status.UNREACHABLE, _timeout_reason(progress, timeout)) from None
    except HostFailure:
        _close_quietly(tunnel)
        raise
    except (OSError, asyncssh.Error, ValueError) as exc:
        _close_quietly(tunnel)
        raise _classify(host, route, exc, progress) from None
    if tunnel is not None:
        conn.set_tunnel(tunnel)  # closing the connection closes the jump too
    return conn


async def _open(
    host: Host,
    route: Route,
    connector: Connector,
    *,
    progress: _Handshake,
    tunnel: asyncssh.SSHClientConnection | None,
    forward_agent: bool = False,
) -> asyncssh.SSHClientConnection:
    options = connector.options
    extra: dict[str, object] = {}
    if route.port is not None:
        extra["port"] = route.port
    if route.user is not None:
        extra["username"] = route.user
    password = host.password or options.password
    if password is not None:
        extra["password"] = password
    client_keys = connector.keys.for_host(host, route.identity_files)
    if client_keys is not None:
        extra["client_keys"] = client_keys
    agent_path = options.agent_path or os.environ.get("SSH_AUTH_SOCK")
    extra["agent_path"] = agent_path if options.agent and agent_path else None
    if forward_agent and extra["agent_path"]:
        extra["agent_forwarding"] = True
    ciphers = () if route.ssh.ciphers else preferred_ciphers()
    if ciphers:
        extra["encryption_algs"] = ciphers
    if route.ssh.keepalive_count_max is not None:
        extra["keepalive_count_max"] = route.ssh.keepalive_count_max
    known_hosts = connector.policy.known_hosts(route.known_hosts, route.host_keys)
    host_key_algs = (
        ()
        if route.ssh.host_key_algorithms  # the ssh options' order stands
        else first_contact_host_key_algs(
            route.ssh.known_as or host.address, route.port or route.ssh.port or 22, known_hosts
        )
    )
    if host_key_algs:
        extra["server_host_key_algs"] = host_key_algs
    conn: asyncssh.SSHClientConnection = await asyncssh.connect(
        host.address,
        config=list(route.ssh.config),
        tunnel=tunnel,  # herd made the jump itself (or there is none): not asyncssh again
        known_hosts=known_hosts,
        client_factory=_client_factory(host, connector.policy, route, progress),
        connect_timeout=None,  # our own timeout covers TCP, banner, key exchange and login
        keepalive_interval=route.ssh.keepalive_interval or 0,
        **extra,
    )
    batch_writes(conn)
    skip_packet_logs(conn)
    skip_ignore_packets(conn)
    keep_send_env(conn)
    return conn


_LIVENESS = 0.5  # seconds without a TCP answer before a host gives its fork slot away
_PARKED_POLL = 0.2  # seconds between looks at a host waiting outside the forks


async def _park_while_silent(
    opening: asyncio.Future[asyncssh.SSHClientConnection],
    progress: _Handshake,
    deadline: asyncio.Timeout,
    slot: HostSlot | None,
) -> None:
    """Wait for the TCP answer; past a short while, wait without holding a fork slot.

    When the host answers, it takes a slot again to go on; the wait for that
    slot does not count against its connect timeout.
    """
    await asyncio.wait({opening}, timeout=_LIVENESS)
    if opening.done() or progress.tcp or slot is None or not slot.step_out():
        return
    while not opening.done() and not progress.tcp:
        await asyncio.wait({opening}, timeout=_PARKED_POLL)
    if opening.done() and (opening.cancelled() or opening.exception() is not None):
        return  # it failed: the host is done, no slot needed
    loop = asyncio.get_running_loop()
    when = deadline.when()
    remaining = None if when is None else when - loop.time()
    deadline.reschedule(None)
    await slot.step_in()
    if remaining is not None:
        deadline.reschedule(loop.time() + remaining)


def _timeout_reason(progress: _Handshake, timeout: float) -> str:
    seconds = f"{timeout:g} s"
    if not progress.tcp:
        return f"no TCP connection within {seconds}"
    conn = progress.connection
    if conn is None or conn.get_extra_info("server_version") is None:
        return f"no SSH banner within {seconds}"
    if not progress.authenticated:
        return f"SSH handshake and login not finished within {seconds}"
    return f"connection not ready within {seconds}"


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset by the host",
    errno.ETIMEDOUT: "TCP connection timed out",
}


def _classify(host: Host, route: Route, exc: BaseException, progress: _Handshake) -> HostFailure:
    if isinstance(exc, asyncssh.Error):
        return _classify_ssh(host, route, exc, progress)
    if isinstance(exc, socket.gaierror):
        return HostFailure(Status.UNREACHABLE, f"cannot resolve {host.address}: {exc.strerror}")
    if isinstance(exc, OSError):
        known = _ERRNO_REASONS.get(exc.errno or 0)
        if known is None and isinstance(exc, ConnectionRefusedError):
            known = "connection refused"
        return HostFailure(Status.UNREACHABLE, known or _first_line(exc))
    return HostFailure(Status.ERROR, _first_line(exc))


def _classify_ssh(
    host: Host, route: Route, exc: asyncssh.Error, progress: _Handshake
) -> HostFailure:
    conn = progress.connection
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        verdict = progress.hostkey
        reason = verdict.reason or f"host key for {host.name} not trusted: {exc.reason}"
        return HostFailure(verdict.status if verdict.reason else Status.HOSTKEY_MISMATCH, reason)
    if isinstance(exc, asyncssh.PermissionDenied):
        user = route.user or (conn.get_extra_info("username") if conn else None) or "?"
        return HostFailure(Status.AUTH_FAILED, f"authentication failed for user {user}")
    if conn is None:
        reason = connection_lost(exc)
    elif conn.get_extra_info("server_version") is None:
        reason = "connection closed before the SSH banner"
    else:
        reason = f"connection closed during the handshake: {_first_line(exc)}"
    return HostFailure(Status.UNREACHABLE, reason)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def connection_lost(exc: BaseException) -> str:
    """The reason for a host whose connection broke: what ``exc`` says, unless it says no more.

    asyncssh's own ``ConnectionLost`` reads "Connection lost", which would repeat it.
    For an exception group (the streams of one command, failing together), each
    distinct detail of its errors.
    """
    details: list[str] = []
    for error in leaf_errors(exc):
        detail = str(error).strip()
        detail = detail.splitlines()[0] if detail else ""
        if detail and detail.lower() != "connection lost" and detail not in details:
            details.append(detail)
    return "connection lost" + (f": {'; '.join(details)}" if details else "")


def _close_quietly(conn: asyncssh.SSHClientConnection | None) -> None:
    if conn is not None:
        conn.close()


class Connector:
    """Everything one operation needs to connect to its hosts: options, host keys, client keys.

    Shared by run, push and pull: ``async with connector.session(host) as conn``.
    """

    def __init__(self, options: ConnectOptions, ssh_memo: SshMemo | None = None) -> None:
        """``ssh_memo``: OpenSSH options evaluated by earlier operations (the agent's)."""
        self.options = options
        self.policy = HostKeyPolicy(by_text=None if ssh_memo is None else ssh_memo.known_hosts)
        self.keys = ClientKeys()
        self.ssh = SshOptions(options.ssh_config, ssh_memo)
        self._routes: dict[tuple[str, str | None], Route] = {}

    @property
    def warnings(self) -> list[str]:
        """What the hosts' ssh options hold that herd does not follow, one line each."""
        return self.ssh.warnings

    def preload(self, hosts: list[Host]) -> None:
        """Read every ssh option, key and known_hosts file now: bad input stops us first."""
        for host in hosts:
            if not host.local:
                route = self.route(host)
                self.keys.for_host(host, route.identity_files)
                self.policy.known_hosts(route.known_hosts, route.host_keys)
                while route.jump:
                    route = self.route(_jump_host(route.jump, host), route.user)

    def route(self, host: Host, fallback_user: str | None = None) -> Route:
        """How ``host`` is reached: its inventory first, then herd's options, then OpenSSH's.

        ``fallback_user`` is for a jump host: the user of the host behind it, for a
        hop whose spec and ssh config name none.
        """
        key = (host.name, fallback_user)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = self._route(host, fallback_user)
        return found

    def _route(self, host: Host, fallback_user: str | None) -> Route:
        options = self.options
        user = host.user or (options.user if fallback_user is None else None)
        port = host.port if host.port is not None else options.port
        ssh = self.ssh.for_host(host, user, port)
        if user is None and ssh.user is None:
            user = fallback_user
        mode = options.host_keys
        if mode is None and ssh.strict_host_key_checking is not None:
            mode = HostKeyMode.from_openssh(ssh.strict_host_key_checking)
        return Route(
            user=user,
            port=port,
            identity_files=host.identity_files or options.identity_files,
            timeout=host.connect_timeout
            or options.connect_timeout
            or ssh.connect_timeout
            or options.default_connect_timeout,
            host_keys=mode or options.default_host_keys,
            known_hosts=self._known_hosts(host, ssh),
            jump=host.jump or ssh.proxy_jump,
            ssh=ssh,
        )

    def _known_hosts(self, host: Host, ssh: SshSettings) -> KnownHostsFiles:
        """--known-hosts, else the inventory's, else UserKnownHostsFile, else ~/.ssh's;
        then the system's files (GlobalKnownHostsFile), as OpenSSH reads them."""
        if self.options.known_hosts is not None:
            user_files: tuple[Path, ...] = (self.options.known_hosts,)
        elif host.known_hosts:
            user_files = (expanded(host.known_hosts),)
        else:
            user_files = ssh.user_known_hosts or (default_known_hosts(),)
        return KnownHostsFiles(
            read=user_files + ssh.global_known_hosts,
            write=user_files[0],
            hashed=ssh.hash_known_hosts,
        )

    async def connect(
        self, host: Host, slot: HostSlot | None = None
    ) -> asyncssh.SSHClientConnection:
        """Connect to ``host``; ``slot`` is its fork slot, given up while the host is silent."""
        return await connect(host, self, slot=slot)

    def session(self, host: Host, slot: HostSlot | None = None, *, probe: bool = True) -> _Session:
        """Connect on entry (HostFailure if that fails), close on exit.

        ``probe=False`` is for a caller that opens its channel within the session's
        ``open_bound`` and tries again on ``NotStarted``: a kept connection is then
        lent without a keepalive first (see ``herd.hosts.agent_pool``).
        """
        return _Session(self, host, slot)


class _Session:
    # seconds the first channel may take to open, None for no bound: a new connection
    # has just answered, so only a kept one gets a bound (and NotStarted past it)
    open_bound: float | None = None

    def __init__(self, connector: Connector, host: Host, slot: HostSlot | None) -> None:
        self._connector = connector
        self._host = host
        self._slot = slot
        self._conn: asyncssh.SSHClientConnection | None = None

    async def __aenter__(self) -> asyncssh.SSHClientConnection:
        self._conn = await self._connector.connect(self._host, self._slot)
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is None:
            return
        self._conn.close()
        try:
            async with asyncio.timeout(2.0):
                await self._conn.wait_closed()
        except TimeoutError:
            self._conn.abort()
