"""``herd hosts`` as a table and ``herd groups`` as a tree, on the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from herd.ui.console import make_console

__all__ = ["print_group_tree", "print_host_table"]

HOST_COLUMNS = ("host", "address", "port", "user", "groups")


def print_host_table(rows: Iterable[Sequence[str]]) -> None:
    """One row per host, in ``HOST_COLUMNS`` order; every cell is shown as plain text."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in HOST_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    make_console().print(table)


def print_group_tree(groups: Iterable[tuple[int, str, int, str]]) -> None:
    """The group tree: (depth, name, host count, folded direct hosts) from the root down."""
    from rich.markup import escape
    from rich.tree import Tree

    branches: dict[int, Tree] = {}
    root: Tree | None = None
    for level, name, count, folded in groups:
        label = f"[bold]{escape(name)}[/bold] ({count})"
        if folded:
            label += f"  {escape(folded)}"
        if root is None:
            root = branches[0] = Tree(label)
        else:
            branches[level] = branches[level - 1].add(label)
    if root is not None:
        make_console().print(root)
