"""The SSH engine: one asyncio event loop, bounded fan-out, a result per host.

Importing any part of it loads asyncssh through ``sshlib``'s cheap-import shim
first, so every module here can simply ``import asyncssh``.
"""

from herd.hosts.sshlib import load_asyncssh

load_asyncssh()
