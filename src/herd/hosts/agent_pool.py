"""The agent's kept SSH connections: lent to one request after another, closed when idle.

A connection is kept under a key made of everything that decided how its host
was reached and trusted: the inventory name and address, user, port, identity
files, jump hosts, ssh options, known_hosts files, host-key policy and the
ssh-agent socket. A request whose key differs in any of these gets its own
connection, so one opened under ``--host-keys off`` is never lent to a strict
run. Before a kept connection is lent it must answer a keepalive within a short
bound, or, for a command (``herd.hosts.remote``), open the command's channel
within it: a dead or silent one is dropped before anything ran there, and the
host connected again through the normal ``connect``, with the full host-key
check. Passwords used to log in are forgotten as soon as the login is done. The
pool keeps no more connections than the open-files limit allows: to open a new
one past it, the longest idle goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import asyncssh

from herd.core.model import Host
from herd.core.open_files import RESERVE, SSH_HOST, open_now, raise_soft_limit
from herd.hosts.connect import ConnectOptions, Connector, NotStarted
from herd.hosts.ssh_config import SshMemo, SshSettings
from herd.operation.fanout import HostSlot

__all__ = ["Kept", "Pool", "PooledConnector"]

log = logging.getLogger("herd.agent")

_PROBE_BOUND = 2.0  # seconds a kept connection has to answer (a keepalive, or the channel open)
_SHARED_BY = 4  # requests one connection serves at once (sshd's MaxSessions is 10 channels)


@dataclass(slots=True, eq=False)
class Kept:
    """One kept connection and how it has been used."""

    conn: asyncssh.SSHClientConnection
    host: Host
    user: str | None
    port: int | None
    key: _Key
    opened: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    uses: int = 0
    in_use: int = 0

    def status(self, now: float) -> dict[str, Any]:
        return {
            "host": self.host.name,
            "address": self.host.address,
            "user": self.user,
            "port": self.port,
            "age": round(now - self.opened, 3),
            "idle": 0.0 if self.in_use else round(now - self.last_used, 3),
            "uses": self.uses,
            "in_use": self.in_use,
        }


# everything that decided how a connection's host was reached and trusted (all of it
# hashable: frozen dataclasses, tuples, strings), compared whole
_Key = tuple[object, ...]


def _key(host: Host, connector: Connector) -> _Key:
    route = connector.route(host)
    options = connector.options
    return (
        host.name,
        host.address,
        host.connection,
        route.user,
        route.port,
        route.identity_files,
        route.jump,
        route.known_hosts,
        route.host_keys.value,
        _trusted_part(route.ssh),
        options.agent,
        options.agent_path,
    )


@functools.lru_cache(maxsize=4096)
def _trusted_part(ssh: SshSettings) -> SshSettings:
    """``ssh`` but its ConnectTimeout, which decides nothing about the connection once
    made; hosts and commands mostly share a few settings, so each is copied once."""
    return replace(ssh, connect_timeout=None)


def forget_password(conn: asyncssh.SSHClientConnection) -> None:
    """Drop the password asyncssh keeps on a logged-in connection (and its jump hosts')."""
    link: asyncssh.SSHClientConnection | None = conn
    while link is not None:
        link._password = None  # asyncssh offers no public way to forget it
        options = link._options
        options.kwargs.pop("password", None)
        options.password = None
        tunnel = link._tunnel
        link = tunnel if isinstance(tunnel, asyncssh.SSHClientConnection) else None


async def _alive(kept: Kept) -> bool:
    """Whether a kept connection answers a keepalive round trip within a short bound."""
    conn = kept.conn
    if conn.is_closed():
        return False
    try:
        async with asyncio.timeout(_PROBE_BOUND):
            await conn._make_global_request(b"keepalive@openssh.com")
    except (TimeoutError, OSError, asyncssh.Error):
        return False
    return not conn.is_closed()


class Pool:
    """The agent's connections, by key; each closes after ``persist`` seconds unused."""

    def __init__(self, persist: float, capacity: int | None = None) -> None:
        self.persist = persist
        # how many connections fit under the open-files limit (a host costs a socket, and
        # the ssh-agent's while it logs in)
        room = raise_soft_limit() - open_now() - RESERVE
        self.capacity = capacity if capacity is not None else max(1, room // SSH_HOST)
        self._kept: dict[_Key, list[Kept]] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}
        self.ssh_memo = SshMemo()  # each host's OpenSSH options, evaluated once, not per run

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._kept.values())

    async def borrow(
        self, host: Host, connector: Connector, slot: HostSlot | None, *, probe: bool = True
    ) -> Kept:
        """A live connection to ``host`` as ``connector`` would open it; HostFailure if none.

        With ``probe=False`` a kept connection is lent without its keepalive round trip:
        the caller's own channel open is the probe, bounded, and ``NotStarted`` (nothing
        ran) sends it back for a new connection.
        """
        key = _key(host, connector)
        async with self._locks.setdefault(key, asyncio.Lock()):
            for kept in list(self._kept.get(key, ())):
                if kept.in_use >= _SHARED_BY:
                    continue
                if not kept.conn.is_closed() and (not probe or await _alive(kept)):
                    return self._lend(kept)
                log.info("%s: kept connection is dead; connecting again", host.name)
                self._drop(kept)
            await self._make_room()
            conn = await connector.connect(host, slot)
            forget_password(conn)
            route = connector.route(host)
            kept = Kept(conn, host, route.user, route.port, key)
            self._kept.setdefault(key, []).append(kept)
            log.info("%s: connected (%s@%s)", host.name, route.user or "-", host.address)
            return self._lend(kept)

    async def _make_room(self) -> None:
        """Close the longest idle connections until one more fits under the open-files limit.

        When every kept connection is in use, none is closed: the fan-out that uses
        them was itself sized to the limit.
        """
        while len(self) >= self.capacity:
            idle = [k for kept in self._kept.values() for k in kept if not k.in_use]
            if not idle:
                return
            oldest = min(idle, key=lambda kept: kept.last_used)
            log.info("%s: closed (open files limit)", oldest.host.name)
            self._drop(oldest)
            with contextlib.suppress(TimeoutError, OSError, asyncssh.Error):
                async with asyncio.timeout(2.0):
                    await oldest.conn.wait_closed()  # its socket is free once this returns

    def _lend(self, kept: Kept) -> Kept:
        kept.uses += 1
        kept.in_use += 1
        return kept

    def give_back(self, kept: Kept, *, dead: bool = False) -> None:
        """``kept`` is free again; ``dead``: its channel never opened, so it is closed."""
        kept.in_use -= 1
        kept.last_used = time.monotonic()
        if dead:
            log.info("%s: kept connection did not answer; connecting again", kept.host.name)
            kept.conn.abort()
            self._drop(kept)

    def _drop(self, kept: Kept) -> None:
        key = kept.key
        kept.conn.close()
        remaining = [k for k in self._kept.get(key, ()) if k is not kept]
        if remaining:
            self._kept[key] = remaining
        else:
            self._kept.pop(key, None)
            self._locks.pop(key, None)

    def sweep(self) -> None:
        """Close the connections unused for ``persist`` seconds, and those already closed."""
        now = time.monotonic()
        for kept_list in list(self._kept.values()):
            for kept in kept_list:
                idle = not kept.in_use and now - kept.last_used >= self.persist
                if idle or kept.conn.is_closed():
                    log.info("%s: closed (%s)", kept.host.name, "idle" if idle else "lost")
                    self._drop(kept)

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [kept.status(now) for kept_list in self._kept.values() for kept in kept_list]

    async def close_all(self) -> None:
        conns = [kept.conn for kept_list in self._kept.values() for kept in kept_list]
        self._kept.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await conn.wait_closed()


class PooledConnector(Connector):
    """A connector whose sessions borrow the pool's connections instead of opening their own."""

    def __init__(self, options: ConnectOptions, pool: Pool) -> None:
        super().__init__(options, pool.ssh_memo)
        self.pool = pool

    def session(  # type: ignore[override]
        self, host: Host, slot: HostSlot | None = None, *, probe: bool = True
    ) -> _Borrowed:
        return _Borrowed(self, host, slot, probe)


class _Borrowed:
    def __init__(
        self, connector: PooledConnector, host: Host, slot: HostSlot | None, probe: bool
    ) -> None:
        self._connector = connector
        self._host = host
        self._slot = slot
        self._probe = probe
        self._kept: Kept | None = None
        self.open_bound: float | None = None

    async def __aenter__(self) -> asyncssh.SSHClientConnection:
        pool = self._connector.pool
        self._kept = await pool.borrow(self._host, self._connector, self._slot, probe=self._probe)
        if not self._probe and self._kept.uses > 1:  # kept from before: its open is the probe
            self.open_bound = _PROBE_BOUND
        return self._kept.conn

    async def __aexit__(self, _type: object, error: object, _trace: object) -> None:
        if self._kept is not None:
            self._connector.pool.give_back(self._kept, dead=isinstance(error, NotStarted))
