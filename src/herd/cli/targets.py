"""Choosing the hosts a command targets: one function every command uses.

``herd run``, ``push``, ``pull`` and ``hosts`` all turn ``PATTERN [--limit P]
[-e VARS]`` into hosts the same way: read the extra variables, load the
inventories named by ``-i`` (or the defaults) with them on top, evaluate the
pattern, and answer ``@failed`` / ``@ID:failed`` from the operation log, which
is opened only when a pattern asks for it. The inventory also decides how host
sets are folded in what the command prints (``fold_reader``): a folded set
pasted back as a pattern selects those hosts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from herd.cli.context import AppContext
from herd.core.hostset import FoldReader
from herd.core.model import Host
from herd.inventory import Inventory, load_inventory
from herd.inventory.extra_vars import parse_extra_vars
from herd.inventory.patterns import fold_reader

__all__ = ["load_app_inventory", "select_hosts", "select_targets", "uses_failed"]

_FAILED_TERM = re.compile(r"(^|[,:&!])\s*[&!]?@(\d+:)?(failed|ok)\s*($|[,:])")


def uses_failed(pattern: str | None) -> bool:
    """Whether ``pattern`` names ``@failed``, ``@ok`` or their ``@ID:`` forms (needs the log)."""
    return bool(pattern) and bool(_FAILED_TERM.search(pattern or ""))


def load_app_inventory(app: AppContext, extra_vars: Sequence[str] = ()) -> Inventory:
    """The inventory the global ``-i`` options name (else $HERD_INVENTORY, ./inventory.yml).

    ``extra_vars`` are the ``-e`` options as given: they beat every inventory variable.
    """
    return load_inventory(app.inventories, parse_extra_vars(extra_vars))


def select_hosts(
    app: AppContext, pattern: str, limit: str | None = None, extra_vars: Sequence[str] = ()
) -> list[Host]:
    """The hosts ``pattern`` (within ``limit``) matches, in inventory order, ``-e`` applied.

    Raises ``InventoryError``/``PatternError``/``UsageError`` (exit 2) or
    ``NoHostsMatched`` (exit 1).
    """
    return select_targets(app, pattern, limit, extra_vars)[0]


def select_targets(
    app: AppContext, pattern: str, limit: str | None = None, extra_vars: Sequence[str] = ()
) -> tuple[list[Host], FoldReader]:
    """``select_hosts``, and how their inventory reads a folded host set as a pattern."""
    inventory = load_app_inventory(app, extra_vars)
    reader = fold_reader(inventory)
    if not (uses_failed(pattern) or uses_failed(limit)):
        return inventory.select(pattern, limit=limit), reader
    from herd.core.audit import AuditLog

    with AuditLog(app.paths.audit_db, check_writable=False) as log:  # only read here
        return inventory.select(pattern, limit=limit, failed=log.recorded_hosts), reader
