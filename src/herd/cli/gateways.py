"""Which hosts of an operation are reached through gateways (``herd_gateway``), and through which.

``herd run``, ``herd push`` and ``herd pull`` hand them to ``herd.hosts.gateways``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from herd.cli.context import AppContext
from herd.core.model import Host
from herd.errors import HerdError

__all__ = ["chains_for", "together", "via_detail"]

Resources = Callable[[], AbstractAsyncContextManager[object]]


def chains_for(
    app: AppContext, hosts: Sequence[Host], extra_vars: Sequence[str]
) -> dict[str, tuple[Host, ...]]:
    """Each host's gateways, the first hop first, by host name; {} when none has any."""
    from herd.cli.targets import load_app_inventory
    from herd.hosts.options import gateway_names

    wanted = gateway_names(hosts)
    if not wanted:
        return {}
    from herd.hosts.gateways import gateway_chain

    inventory = load_app_inventory(app, extra_vars)
    found: dict[str, Host] = {}
    while wanted:
        name = wanted.pop()
        try:
            matched = [h for h in inventory.select(name) if h.name == name]
        except HerdError:
            matched = []
        if matched:
            found[name] = matched[0]
            wanted |= gateway_names(matched) - found.keys()
    chains = {h.name: gateway_chain(h, found) for h in hosts}
    return {name: chain for name, chain in chains.items() if chain}


def via_detail(chains: dict[str, tuple[Host, ...]]) -> dict[str, list[str]]:
    """The log's record of which gateways carried which hosts: ``{"gw1 > gw2": [hosts]}``."""
    via: dict[str, list[str]] = {}
    for name, chain in chains.items():
        via.setdefault(" > ".join(g.name for g in chain), []).append(name)
    return via


def together(*resources: Resources | None) -> Resources | None:
    """Several things an operation needs running, as one."""
    present = [r for r in resources if r is not None]
    if not present:
        return None

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[object]:
        async with contextlib.AsyncExitStack() as stack:
            for resource in present:
                await stack.enter_async_context(resource())
            yield None

    return running
