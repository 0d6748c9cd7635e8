"""Start a remote command so that it can be stopped, and stop it: its process group.

A timeout or Ctrl-C must stop everything the command started, not only its
shell, and no SSH server does that for us: OpenSSH's sshd ignores the SSH
"signal" request, Dropbear signals only the shell. So herd signals the
command's process group through a second channel, and the command must lead
one. OpenSSH's sshd makes every session shell a session (and group) leader;
Dropbear does not: its shells share the connection's group. The start line
therefore checks, with builtins only, whether the shell leads its group
(``kill -0 -$$`` finds a group whose ID is our PID only if we lead it); if not,
it replaces itself with ``setsid "$SHELL" -c ...``, which from a non-leader
makes a new session without forking: same PID, same stdin, and the exit status
or killing signal is the shell's own. Where the host has no ``setsid``, the
command runs as it is and herd knows it can stop only the shell.

The shell reports its PID on a marked first stderr line (``herd-pid:PID``, or
``herd-pid:PID shell`` when it does not lead a group), read and removed before
the output is collected. The stop command answers on stdout what it signalled:
the group, only the shell, or nothing (all gone).
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from enum import StrEnum

import asyncssh

__all__ = [
    "MARK",
    "Mark",
    "Stop",
    "doubt",
    "parse_mark",
    "start_line",
    "stop_command",
    "stop_remote",
]

MARK = b"herd-pid:"
_SHELL_ONLY = b"shell"  # after the PID: the shell leads no group of its own
_STOP_MARK = "herd-stop:"
_STOP_TIMEOUT = 3.0  # seconds to signal a command through a second channel
_KILL_GRACE = 2  # seconds a timed-out command has to exit on TERM before KILL


def start_line(script: str) -> str:
    """The command line a host runs: ``script`` as the leader of its own process group.

    On OpenSSH (the shell already leads one) this costs two builtins and no fork.
    ``kill -TERM -PID`` rather than ``kill -TERM -- -PID``: BusyBox's and dash's
    ``kill`` take no ``--`` there, and a negative PID after the signal is read
    as a PID by every shell.
    """
    marked = f"echo {MARK.decode()}$$ >&2; {script}"
    return (
        f"if kill -0 -$$ 2>/dev/null; then echo {MARK.decode()}$$ >&2; "
        'elif [ -x "$SHELL" ] && command -v setsid >/dev/null 2>&1; then '
        f'exec setsid "$SHELL" -c {shlex.quote(marked)}; '
        f"else echo {MARK.decode()}$$ {_SHELL_ONLY.decode()} >&2; fi; {script}"
    )


@dataclass(frozen=True, slots=True)
class Mark:
    """What the command's first stderr line said: its shell's PID, and whether it leads a group."""

    pid: int
    group: bool


def parse_mark(line: bytes) -> tuple[Mark | None, bytes]:
    """The mark in ``line``, and what a login shell printed before it (kept as output).

    A line without a well-formed mark is all output.
    """
    before, found, after = line.partition(MARK)
    words = after.split()
    if not found or not words or not words[0].isdigit():
        return None, line
    return Mark(int(words[0]), group=words[1:] != [_SHELL_ONLY]), before


class Stop(StrEnum):
    """What stopping a command did on its host."""

    GROUP = "group"  # its process group was signalled: everything it started
    SHELL = "shell"  # only its shell: what the shell started may run on
    GONE = "gone"  # nothing was left to signal
    UNKNOWN = "unknown"  # herd could not ask the host (no PID yet, channel refused, no answer)


def stop_command(mark: Mark, signal: str) -> str:
    """Shell code that signals the command and says on stdout which of ``Stop`` it did.

    After a TERM (timeout), a detached watcher sends KILL to the same target a
    few seconds later, so a command that ignores TERM is stopped all the same;
    a HUP (Ctrl-C) is left to the command, as a closed terminal would be.
    """

    def branch(target: str, outcome: Stop) -> str:
        text = f"kill -{signal} {target} 2>/dev/null; then echo {_STOP_MARK}{outcome};"
        if signal == "TERM":  # "&" ends the branch as ";" would
            text += f" (sleep {_KILL_GRACE:g}; kill -KILL {target}) </dev/null >/dev/null 2>&1 &"
        return text

    shell = branch(str(mark.pid), Stop.SHELL)
    tries = f"if {branch(f'-{mark.pid}', Stop.GROUP)} elif {shell}" if mark.group else f"if {shell}"
    return f"{tries} else echo {_STOP_MARK}{Stop.GONE}; fi"


async def stop_remote(conn: asyncssh.SSHClientConnection, mark: Mark | None, signal: str) -> Stop:
    """Signal the command through a second channel; what it reached, as the host says."""
    if mark is None:
        return Stop.UNKNOWN
    try:
        async with asyncio.timeout(_STOP_TIMEOUT):
            done = await conn.run(stop_command(mark, signal), check=False)
    except (OSError, asyncssh.Error, TimeoutError):
        return Stop.UNKNOWN
    answer = done.stdout if isinstance(done.stdout, str) else ""
    for outcome in Stop:
        if f"{_STOP_MARK}{outcome}" in answer:
            return outcome
    return Stop.UNKNOWN


def doubt(stop: Stop, mark: Mark | None) -> str | None:
    """Why the command may still be running after ``stop``; None when it surely is not."""
    if mark is None:
        return "herd never learnt its PID on the host"
    if stop is Stop.UNKNOWN:
        return "the host did not answer herd's stop"
    if not mark.group or stop is Stop.SHELL:
        return "the host has no setsid, so herd could signal only its shell"
    return None
