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
logger cannot emit debug lines anyway (about 7% of a push's CPU). And it matches
every ``SendEnv`` pattern (Debian's ssh_config has ``LANG LC_*``) against the whole
environment for every session it opens; ``send_env_once`` does that once per
connection (a tenth of the agent's CPU for a command on a kept connection).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asyncssh.misc import encode_env, lookup_env

__all__ = ["BatchedWrites", "batch_writes", "send_env_once", "skip_packet_logs"]


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
    """Stop ``conn`` formatting packet log lines that no handler would see."""
    if logging.getLogger("asyncssh").isEnabledFor(logging.DEBUG):
        return  # --debug, or a caller who wants asyncssh's packet traces
    for name in ("log_sent_packet", "log_received_packet"):
        if callable(getattr(conn, name, None)):
            setattr(conn, name, _no_log)


def send_env_once(conn: object) -> None:
    """Have ``conn`` send the variables its ``SendEnv`` patterns match now, with ``SetEnv``'s,
    instead of matching the patterns again for each session: the same variables go."""
    options = getattr(conn, "_options", None)
    patterns = getattr(options, "send_env", None)
    if not patterns:
        return
    env = dict(lookup_env(patterns))
    env.update(encode_env(getattr(options, "env", None) or ()))  # SetEnv wins, as in asyncssh
    options.env = env  # type: ignore[union-attr]
    options.send_env = None  # type: ignore[union-attr]
