"""Putting a background process of herd's (the agent, the builtin lab) out of the way."""

from __future__ import annotations

import os

__all__ = ["detach"]


def detach(log_file: str) -> None:
    """Leave the caller's session and terminal: stdin from /dev/null, stdout and stderr
    appended to ``log_file`` (created 0600), so Ctrl-C at the caller's terminal and a
    closed terminal never reach the process, and its stray output is kept."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
