"""Which hosts of an operation are reached through gateways (``herd_gateway``), and through which.

``herd run``, ``herd push`` and ``herd pull`` hand them to ``herd.hosts.gateways``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from herd.cli.context import AppContext
from herd.core.model import Host
from herd.errors import HerdError

if TYPE_CHECKING:
    from herd.hosts.connect import Connector
    from herd.hosts.workers import Job
    from herd.operation.driver import PerHost, Resources

__all__ = ["chains_for", "first_hops", "through_gateways", "together", "via_detail"]


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


def first_hops(chains: dict[str, tuple[Host, ...]]) -> list[Host]:
    """The gateways herd itself connects to, each once."""
    return list({chain[0].name: chain[0] for chain in chains.values()}.values())


def through_gateways(
    job: Job,
    connector: Connector,
    per_host: PerHost,
    resources: Resources | None,
    *,
    hosts: list[Host],
    chains: dict[str, tuple[Host, ...]],
) -> tuple[PerHost, Resources | None]:
    """The operation's per-host work with the gateways carrying the hosts behind them
    (``per_host`` still carries the others), and all it needs running."""
    from herd.hosts.gateways import Gateways

    gateways = Gateways(job, connector, per_host, hosts=hosts, chains=chains)
    return gateways.per_host, together(resources, gateways.running)


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
