"""Import asyncssh once, cheaply, and choose the event loop (uvloop where it installs).

``import asyncssh`` probes for the optional liboqs and nettle libraries with
``ctypes.util.find_library``, which forks ``ldconfig`` and ``gcc`` on Linux and
costs about a tenth of a second of every run. During that one import the probe
looks for the library files in the usual directories instead: same answer for
an installed library, no child processes.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import glob
import os
import sys
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["load_asyncssh", "new_event_loop", "run_loop"]

T = TypeVar("T")

_LIBRARY_DIRS = (
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
    "/lib64",
    "/usr/lib64",
    f"/usr/lib/{os.uname().machine}-linux-gnu",
    f"/lib/{os.uname().machine}-linux-gnu",
)


def _find_library_without_forking(name: str) -> str | None:
    """Find ``lib<name>.so*`` in the standard directories (what ldconfig would find)."""
    stem = name.removeprefix("lib")
    extra = os.environ.get("LD_LIBRARY_PATH", "")
    for directory in (*filter(None, extra.split(":")), *_LIBRARY_DIRS):
        pattern = os.path.join(directory, f"lib{stem}.so*")  # noqa: PTH118 (plain strings: no pathlib cost)
        names = [os.path.basename(p) for p in glob.glob(pattern)]  # noqa: PTH119, PTH207
        # ldconfig answers with the soname (libnettle.so.8), which exists without -dev packages
        sonames = sorted(n for n in names if n.rpartition(".so.")[2].isdigit())
        if sonames or names:
            return (sonames or sorted(names))[0]
    return None


def load_asyncssh() -> ModuleType:
    """``import asyncssh`` with the library probe made cheap; later calls are free."""
    loaded = sys.modules.get("asyncssh")
    if loaded is not None:
        return loaded
    original = ctypes.util.find_library
    if sys.platform.startswith("linux"):
        ctypes.util.find_library = _find_library_without_forking
    try:
        import asyncssh
    finally:
        ctypes.util.find_library = original
    return asyncssh


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else the standard one."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a fresh event loop (uvloop when available) and close it."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main())
