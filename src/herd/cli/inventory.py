"""``herd hosts`` and ``herd groups``: what the inventory holds and what a pattern selects.

Both print a table or tree for people and, with ``--json``, one JSON object
per line for machines. Passwords and other secrets are masked in every output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import click

from herd.cli.context import AppContext, pass_app
from herd.cli.fleet_options import extra_vars_option
from herd.cli.targets import load_app_inventory, select_hosts
from herd.core.hostset import FoldReader, fold
from herd.core.model import Host
from herd.inventory import Group, Inventory
from herd.inventory.patterns import fold_reader
from herd.inventory.variables import mask_secrets

__all__ = ["group_json", "groups", "host_json", "hosts"]


def host_json(host: Host) -> dict[str, object]:
    """One host with its connection fields and every resolved variable (secrets masked)."""
    return {
        "host": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "identity_files": list(host.identity_files),
        "jump": host.jump,
        "known_hosts": host.known_hosts,
        "connect_timeout": host.connect_timeout,
        "connection": host.connection,
        "local": host.local,
        "groups": list(host.groups),
        "vars": mask_secrets(host.vars),
    }


def group_json(inventory: Inventory, group: Group, reader: FoldReader) -> dict[str, object]:
    """One group: its place in the tree, its direct and total hosts, its own variables.

    ``folded`` is all its hosts folded by ``reader``: a pattern of ``inventory``.
    """
    members = inventory.members(group.name)
    return {
        "group": group.name,
        "parents": list(group.parents),
        "children": list(group.children),
        "depth": group.depth,
        "hosts": list(group.hosts),
        "host_count": len(members),
        "folded": fold(members, reader),
        "vars": mask_secrets(group.vars),
    }


def _dumps(record: Mapping[str, object]) -> str:
    # default=str: YAML may hold dates and other values JSON has no type for
    return json.dumps(record, ensure_ascii=False, default=str)


@click.command()
@click.argument("pattern")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host, every variable.")
@click.option("--count", is_flag=True, help="Print only how many hosts match.")
@click.option("-l", "--limit", metavar="PATTERN", help="Keep only hosts also matching PATTERN.")
@extra_vars_option
@pass_app
def hosts(
    app: AppContext,
    /,
    *,
    pattern: str,
    as_json: bool,
    count: bool,
    limit: str | None,
    extra_vars: tuple[str, ...],
) -> int:
    """List the hosts PATTERN matches: name, address, port, user and groups.

    PATTERN is Ansible's: 'all', names, globs (web*), regexes (~web\\d+), unions
    (a:b), intersections (a:&b), exclusions (a:!b), subscripts (web[0:2]), and
    @failed / @ID:failed from the operation log. Jinja templates in variables
    are rendered ({{ base }}.8); -e sets variables over every other.
    """
    selected = select_hosts(app, pattern, limit, extra_vars)
    if count:
        click.echo(str(len(selected)))
    elif as_json:
        for host in selected:
            click.echo(_dumps(host_json(host)))
    else:
        from herd.ui.inventory_view import print_host_table

        print_host_table(
            (h.name, h.address, "" if h.port is None else str(h.port), h.user or "",
             ",".join(h.groups))
            for h in selected
        )  # fmt: skip
    return 0


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per group.")
@pass_app
def groups(app: AppContext, as_json: bool) -> int:
    """Show the group tree from 'all' down, with host counts and folded host names."""
    inventory = load_app_inventory(app)
    reader = fold_reader(inventory)
    if as_json:
        for group in inventory.groups.values():
            click.echo(_dumps(group_json(inventory, group, reader)))
        return 0
    from herd.ui.inventory_view import print_group_tree

    print_group_tree(
        (level, group.name, len(inventory.members(group.name)),
         fold(group.hosts, reader) if group.hosts else "")
        for level, group in inventory.tree()
    )  # fmt: skip
    return 0
