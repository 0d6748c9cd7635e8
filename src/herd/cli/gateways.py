"""Which hosts of an operation are reached through gateways (``herd_gateway``), and through which.

``herd run`` hands them to ``herd.hosts.gateways``; push and pull do not go
through gateways yet and refuse such hosts rather than reach them another way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from herd.cli.context import AppContext
from herd.core.model import Host
from herd.errors import HerdError, UsageError

__all__ = ["chains_for", "refuse_gateways", "together", "via_detail"]

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


def refuse_gateways(hosts: Sequence[Host], kind: str) -> None:
    """A push or pull does not go through gateways: say so rather than go direct."""
    from herd.hosts.options import GATEWAY_VARIABLE

    behind = [h.name for h in hosts if h.vars.get(GATEWAY_VARIABLE)]
    if behind:
        more = f" and {len(behind) - 1} more" if len(behind) > 1 else ""
        raise UsageError(
            f"{behind[0]}{more}: reached through a gateway ({GATEWAY_VARIABLE}),"
            f" which herd {kind} does not do yet; only herd run goes through gateways"
        )


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
