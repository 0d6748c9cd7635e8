"""The FTP session's shared vocabulary: a reply that ends a command, an aborted transfer,
a line of the command table."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Aborted", "Command", "Reply"]


class Reply(Exception):
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
