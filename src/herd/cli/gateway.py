"""``herd gateway``: carry hosts for a herd on another machine, which runs it over SSH.

Not for people: herd starts it on a host named by ``herd_gateway`` and speaks
to it on its stdin and stdout (see ``herd.hosts.gateways``).
"""

from __future__ import annotations

import sys

import click

__all__ = ["gateway"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def gateway() -> None:
    """Carry hosts for the herd that started this over SSH (JSON lines on stdin and stdout)."""
    from herd.hosts.worker import main

    sys.exit(main("gateway"))
