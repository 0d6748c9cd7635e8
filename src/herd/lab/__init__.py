"""A local fleet of SSH hosts on loopback addresses, for trying herd, tests and benchmarks.

``Lab.up(DIR, N)`` starts N hosts (one real sshd each, or one asyncssh process
for all) and writes DIR/inventory.yml; ``Lab(DIR).down()`` stops exactly what
it started.
"""

from herd.core.third_party import quiet_asyncssh_import
from herd.lab.fleet import ENGINES, Lab, current_user, free_port, pick_engine
from herd.lab.plan import DEFAULT_PORT, MAX_HOSTS, address_of, default_groups, parse_groups
from herd.lab.processes import ProcessState
from herd.lab.state import LabHost, LabState

quiet_asyncssh_import()  # before lab up or the builtin engine imports asyncssh

__all__ = [
    "DEFAULT_PORT",
    "ENGINES",
    "MAX_HOSTS",
    "Lab",
    "LabHost",
    "LabState",
    "ProcessState",
    "address_of",
    "current_user",
    "default_groups",
    "free_port",
    "parse_groups",
    "pick_engine",
]
