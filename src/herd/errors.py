"""Every error herd raises on purpose, under one root.

Errors from libraries (asyncssh, sqlite3, OSError, yaml) are converted into
these at the boundary where they enter herd. The command line maps an error to
its exit code through ``exit_code`` and prints ``str(error)`` on one line.

A problem on one host is not an exception: it is a status in that host's
result (see ``herd.core.model``). These classes are for what stops the
whole command.

    HerdError                    exit 1: the operation could not be completed
    ├── UsageError               exit 2: bad usage or bad input, nothing was run
    │   ├── InventoryError       an inventory file is wrong (names file and line)
    │   ├── PatternError         a target pattern is malformed or names nothing known
    │   ├── ConfigError          a settings file or option value is wrong
    │   └── SourceError          a local file to send is missing or unreadable
    ├── NoHostsMatched           exit 1: a valid pattern matched no host
    ├── AuditError               exit 2: the operation log cannot be opened or written
    ├── LabError                 exit 2: the lab fleet cannot be brought up or down
    ├── FtpError                 exit 2: the FTP server or a user cannot be set up
    │   └── FtpClientError       exit 1: an FTP client command failed at the server
    └── Interrupted              exit 128+N: stopped by signal N (SIGTERM, SIGHUP) before
                                 or after the hosts' work; during it, the batch says so
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "ConfigError",
    "FtpClientError",
    "FtpError",
    "HerdError",
    "Interrupted",
    "InventoryError",
    "LabError",
    "NoHostsMatched",
    "PatternError",
    "SourceError",
    "UsageError",
    "signal_exit_code",
]


class HerdError(Exception):
    """The root of every error herd raises on purpose."""

    exit_code: int = 1


class UsageError(HerdError):
    """Bad usage or bad input: nothing was run."""

    exit_code = 2


class InventoryError(UsageError):
    """An inventory file is malformed; the message names the file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line


class PatternError(UsageError):
    """A target pattern is malformed or names a group or host that does not exist."""


class ConfigError(UsageError):
    """A settings file or an option value is wrong."""


class SourceError(UsageError):
    """A local file to send is missing or cannot be read."""


class NoHostsMatched(HerdError):
    """A well-formed pattern matched no host: exit 1, not an empty success."""


class AuditError(HerdError):
    """The operation log cannot be opened or written; herd refuses to run unrecorded."""

    exit_code = 2


class LabError(HerdError):
    """The lab fleet cannot be brought up, inspected or brought down."""

    exit_code = 2


class FtpError(HerdError):
    """The FTP server or its users cannot be set up as asked."""

    exit_code = 2


class FtpClientError(FtpError):
    """An FTP client command was refused or failed at the server."""

    exit_code = 1


def signal_exit_code(signum: int) -> int:
    """The exit code of herd stopped by signal ``signum``: 128+N, as shells report it (130
    for Ctrl-C). The one place this rule is written."""
    return 128 + signum


class Interrupted(HerdError):
    """A signal asked herd to stop (SIGTERM, SIGHUP; Ctrl-C is Python's KeyboardInterrupt)."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(f"interrupted by {name}")
        self.signum = signum
        self.exit_code = signal_exit_code(signum)
