"""The ``herd ftp user list`` table: one row per user, usage against quota."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["UserRow", "render_users"]


@dataclass(frozen=True, slots=True)
class UserRow:
    """One user as the table shows it (sizes already in human units)."""

    name: str
    home: str
    used: str
    quota: str
    percent: float | None  # used/quota, None when unlimited
    perms: str
    locked: bool


def render_users(rows: Sequence[UserRow], console: Console | None = None) -> None:
    """Print the users table; on a non-terminal, wide enough not to wrap paths."""
    out = console or Console()
    if not out.is_terminal:
        out = Console(file=out.file, width=max(out.width, 200), no_color=True)
    if not rows:
        out.print("no FTP users yet: add one with `herd ftp user add NAME`")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("user", "home", "used", "quota", "use%", "permissions", "state"):
        table.add_column(column, no_wrap=column != "home", overflow="fold")
    for row in rows:
        percent = "-" if row.percent is None else f"{row.percent:.0f}%"
        if row.percent is not None and row.percent >= 90:
            percent = f"[red]{percent}[/red]"
        state = "[red]locked[/red]" if row.locked else "active"
        table.add_row(
            escape(row.name), escape(row.home), row.used, row.quota, percent, row.perms, state
        )
    out.print(table)
