"""The SSH engine: one asyncio event loop, bounded fan-out, a result per host.

Importing it imports no SSH library: ``sshlib.probe_cheaply`` only makes the
first ``import asyncssh`` of the process cheap, wherever it happens, so every
module here can simply ``import asyncssh``, and the plain data modules
(``options``, ``command``, ``become``) stay free of it for the command line.
"""

from herd.core.third_party import quiet_asyncssh_import
from herd.hosts.sshlib import probe_cheaply

quiet_asyncssh_import()
probe_cheaply()
