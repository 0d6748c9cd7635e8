"""How many files herd may hold open, and how much fan-out fits in that.

Each host in flight costs herd file descriptors: its socket, and what its work
opens (a ``--stdin`` file, ``-o DIR``'s output files, a transfer's local file).
Desktops start processes with a soft ``RLIMIT_NOFILE`` of 1,024 under a far
higher hard limit, so ``-f 2000`` would fail hosts with "Too many open files".
herd raises the soft limit to the hard one at start, as Go's runtime does; where
the hard limit itself is too low, the fan-out is lowered to fit (``fit``) and
the caller says so once, naming the limit.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PULL_FILES",
    "PUSH_FILES",
    "RESERVE",
    "SSH_HOST",
    "Fit",
    "fit",
    "open_now",
    "raise_soft_limit",
]

# Descriptors kept back for what every operation opens besides its hosts: the
# operation log (database, WAL, shared memory, journal), the event loop, worker
# pipes, known_hosts and ssh config files read while connecting, the ssh-agent.
RESERVE = 32
# What one host in flight holds open: its SSH socket, and the ssh-agent's socket
# while it authenticates; a push adds the local file a block is read from, a pull
# the destination's directories and the file being written.
SSH_HOST = 2
PUSH_FILES = 1
PULL_FILES = 3
_UNLIMITED = 1 << 30  # what an unlimited RLIMIT_NOFILE counts as


def raise_soft_limit() -> int:
    """Raise the soft limit on open files to the hard limit; the soft limit now in force.

    A soft limit the system refuses to raise (macOS caps it below an unlimited
    hard one) stays as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft not in (hard, resource.RLIM_INFINITY):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    return _UNLIMITED if soft == resource.RLIM_INFINITY else soft


def open_now() -> int:
    """How many file descriptors this process holds now (0 where that cannot be told)."""
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            return max(0, sum(1 for _ in Path(listing).iterdir()) - 1)  # less the listing's own
        except OSError:
            continue
    return 0


@dataclass(frozen=True, slots=True)
class Fit:
    """How many of something fit under the open-files limit, and whether that is fewer."""

    count: int  # what fits (at least 1), or the count asked when it all fits
    lowered: bool  # fewer than asked
    limit: int  # the soft limit on open files in force


def fit(wanted: int, per_item: int, *, limit: int, in_use: int, reserve: int = RESERVE) -> Fit:
    """How many of ``wanted`` items costing ``per_item`` descriptors each fit under ``limit``.

    ``in_use`` descriptors are open already and ``reserve`` are kept back for the
    rest of the process. At least one always fits: herd goes on, slowly, rather
    than refuse to start.
    """
    if wanted < 1 or per_item < 1:
        raise ValueError("fit: wanted and per_item must be at least 1")
    room = (limit - in_use - reserve) // per_item
    if room >= wanted:
        return Fit(wanted, False, limit)
    return Fit(max(1, room), True, limit)
