"""Cut what asyncssh spends on each SSH packet: one send(2) each, and an unused log line.

asyncssh hands every SSH packet to its transport on its own, and precedes
each data packet with an ignore packet: a 128 KiB SFTP write becomes eight
writes of at most 32 KiB (OpenSSH's largest packet). On a fast link those
system calls, and the small TCP segments they make, cost about as much
controller CPU as the encryption. ``batch_writes`` puts a thin transport in
front of the real one that gathers the packets written during one turn of
the event loop and writes them with a single ``writelines``: the bytes and
their order are the same, only the system calls are fewer.

It relies on the connection keeping its transport in ``_transport`` (asyncssh
2.x; uvloop's transports are not ``asyncio.Transport`` subclasses, hence the
duck typing); where that is not so, the connection is left as it is.

asyncssh also formats a debug line for every packet sent or received before
its logger drops it; ``skip_packet_logs`` stops that when the ``asyncssh``
logger cannot emit debug lines anyway (about 7% of a push's CPU). It precedes
every packet with an empty ignore packet, a defence for CBC ciphers only;
``skip_ignore_packets`` drops them for the other ciphers (OpenSSH never sends
them). And it matches every ``SendEnv`` pattern (Debian's ssh_config has ``LANG
LC_*``) against the whole environment for every session it opens (a tenth of the
agent's CPU for a command on a kept connection); ``keep_send_env`` takes the
patterns over and ``session_env`` matches them once per connection and
environment: the agent's sessions take the values from the environment of the
command they serve, not from the agent's own.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import weakref
from collections.abc import Collection, Sequence
from typing import Any

from asyncssh.channel import SSHChannel
from asyncssh.constants import MSG_IGNORE
from asyncssh.logging import SSHLogger
from asyncssh.misc import encode_env
from asyncssh.packet import String

# a connection's SendEnv patterns and SetEnv values
_Wanted = tuple[tuple[bytes, ...], tuple[tuple[bytes, bytes], ...]]

__all__ = [
    "BatchedWrites",
    "batch_writes",
    "keep_send_env",
    "session_env",
    "skip_ignore_packets",
    "skip_packet_logs",
]


class BatchedWrites:
    """A transport that gathers the writes of one event-loop turn into one.

    Everything but writing is the real transport's own (``__getattr__``);
    closing writes what is still gathered first, aborting drops it.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def writelines(self, lines: list[bytes]) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self._transport.is_closing():
            self._transport.writelines(pending)

    def get_write_buffer_size(self) -> int:
        buffered: int = self._transport.get_write_buffer_size()
        return buffered + sum(map(len, self._pending))

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def batch_writes(conn: object) -> None:
    """Make ``conn`` (an asyncssh connection) write its packets a loop turn at a time."""
    transport = getattr(conn, "_transport", None)
    if isinstance(transport, BatchedWrites) or not callable(getattr(transport, "writelines", None)):
        return
    conn._transport = BatchedWrites(transport)  # type: ignore[attr-defined]


def _no_log(*_args: object, **_kwargs: object) -> None:
    pass


def skip_packet_logs(conn: object) -> None:
    """Stop ``conn`` formatting packet log lines that no handler would see (its channels
    log through their own methods: see ``_quiet_asyncssh_logs``)."""
    _quiet_asyncssh_logs()
    if _ASYNCSSH_LOG.isEnabledFor(logging.DEBUG):
        return  # --debug, or a caller who wants asyncssh's packet traces
    for name in ("log_sent_packet", "log_received_packet"):
        if callable(getattr(conn, name, None)):
            setattr(conn, name, _no_log)


_ASYNCSSH_LOG = logging.getLogger("asyncssh")


def _quiet_asyncssh_logs() -> None:
    """Make asyncssh format its log lines only when its logger shows them.

    Its channels log every packet through their own methods (a session's channel
    is made inside asyncssh, out of reach of a per-connection change), and its
    logger turns every argument into text before the level is looked at: together
    a tenth of the agent's CPU for a command, for lines nobody sees.
    """
    if getattr(SSHLogger, "_herd_quiet", False):
        return
    loud_sent, loud_received = SSHChannel.log_sent_packet, SSHChannel.log_received_packet
    loud_log = SSHLogger.log

    def log_sent_packet(self: SSHChannel[Any], *args: Any, **kwargs: Any) -> None:
        if _ASYNCSSH_LOG.isEnabledFor(logging.DEBUG):
            loud_sent(self, *args, **kwargs)

    def log_received_packet(self: SSHChannel[Any], *args: Any, **kwargs: Any) -> None:
        if _ASYNCSSH_LOG.isEnabledFor(logging.DEBUG):
            loud_received(self, *args, **kwargs)

    def log(self: SSHLogger, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            loud_log(self, level, msg, *args, **kwargs)

    SSHChannel.log_sent_packet = log_sent_packet  # type: ignore[method-assign,assignment]
    SSHChannel.log_received_packet = log_received_packet  # type: ignore[method-assign,assignment]
    SSHLogger.log = log  # type: ignore[method-assign]
    SSHLogger._herd_quiet = True  # type: ignore[attr-defined]


_EMPTY_IGNORE = (String(b""),)  # the payload of asyncssh's ignore packets


def skip_ignore_packets(conn: object) -> None:
    """Stop ``conn`` sending an empty ignore packet before each packet, unless its cipher is CBC.

    asyncssh does it whatever the cipher: a defence only CBC needs (its next IV is the
    last block sent, which an eavesdropper has seen). With CTR, GCM or ChaCha20 it
    doubles the packets and their encryption for nothing; OpenSSH sends none. The
    cipher is the one the connection's key exchange chose: later exchanges choose
    again from the same two lists, so they choose the same.
    """
    send = getattr(conn, "send_packet", None)
    info = getattr(conn, "get_extra_info", None)
    if not callable(send) or not callable(info) or "cbc" in str(info("send_cipher", "cbc")):
        return

    def send_packet(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype != MSG_IGNORE or args != _EMPTY_IGNORE:
            send(pkttype, *args, handler=handler)

    conn.send_packet = send_packet  # type: ignore[attr-defined]


# per connection: its SendEnv patterns and SetEnv values, taken from asyncssh's options
_SEND_ENV: weakref.WeakKeyDictionary[Any, _Wanted] = weakref.WeakKeyDictionary()


class _Matched:
    """The environment last matched (held, so never confused with a later one at the same
    address), encoded once, and what it sends for each kind of connection: a command's
    hosts mostly share their SendEnv and SetEnv, so their sessions share one match."""

    def __init__(self) -> None:
        self.environment: object = None
        self.values: Sequence[tuple[bytes, bytes]] = ()
        self.sent: dict[_Wanted, dict[bytes, bytes]] = {}

    def of(self, wanted: _Wanted, environment: Sequence[tuple[str, str]]) -> dict[bytes, bytes]:
        if self.environment is not environment:  # one tuple for a command's hosts
            self.values = [(os.fsencode(k), os.fsencode(v)) for k, v in environment]
            self.sent = {}
            self.environment = environment
        found = self.sent.get(wanted)
        if found is None:
            found = self.sent[wanted] = _sent(*wanted, self.values)
        return found


_MATCHED = _Matched()


def keep_send_env(conn: object) -> None:
    """Match ``conn``'s ``SendEnv`` patterns against this process's environment now, once,
    instead of asyncssh doing it for every session; ``session_env`` matches them against
    another environment (a command the agent serves)."""
    options = getattr(conn, "_options", None)
    patterns = getattr(options, "send_env", None)
    if not patterns:
        return
    wanted = tuple(p.encode() if isinstance(p, str) else p for p in patterns)
    set_env = tuple(encode_env(getattr(options, "env", None) or ()))
    _SEND_ENV[conn] = (wanted, set_env)
    options.env = _sent(wanted, set_env, os.environb.items())  # type: ignore[union-attr]
    options.send_env = None  # type: ignore[union-attr]


def session_env(
    conn: object, environment: Sequence[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """``create_process`` arguments for a session whose ``SendEnv`` values come from
    ``environment`` (None: this process's, as matched when ``conn`` was made)."""
    wanted = _SEND_ENV.get(conn)
    if environment is None or wanted is None:
        return {}
    return {"env": _MATCHED.of(wanted, environment)}


def _sent(
    patterns: tuple[bytes, ...],
    set_env: tuple[tuple[bytes, bytes], ...],
    values: Collection[tuple[bytes, bytes]],
) -> dict[bytes, bytes]:
    """What a session sends: the variables ``patterns`` match, then ``SetEnv``'s, which win."""
    sent = {k: v for pattern in patterns for k, v in values if fnmatch.fnmatchcase(k, pattern)}
    sent.update(set_env)
    return sent
