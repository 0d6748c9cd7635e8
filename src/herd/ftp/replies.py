"""The FTP session's shared vocabulary: a reply that ends a command, an aborted transfer,
a line of the command table.

Every error that answers a client is an ``FtpReply`` (code, text), turned into
the reply in one place, the session's dispatch. Lower layers raise plain errors
without reply codes (the jail's ``PathRefused``); dispatch maps them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Aborted", "Command", "FtpReply"]


class FtpReply(Exception):
    """Stop the command and answer ``code text`` (an error reply, usually)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class Aborted(Exception):
    """The transfer was aborted by ABOR or by a server shutdown."""


@dataclass(frozen=True, slots=True)
class Command:
    """A line of the command table: whether it needs a login, its argument, its help."""

    auth: bool
    arg: str  # "none", "required" or "optional"
    help: str
