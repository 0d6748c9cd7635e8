"""Import asyncssh cheaply, when first needed, and choose the event loop (uvloop where it
installs).

``import asyncssh`` probes for the optional liboqs and nettle libraries with
``ctypes.util.find_library``, which forks ``ldconfig`` and ``gcc`` on Linux and
costs about a tenth of a second of every run. ``probe_cheaply`` puts a finder
before Python's own: during the one import of asyncssh, wherever it comes from,
the probe looks for the library files in the usual directories instead (same
answer for an installed library, no child processes). Nothing is imported
before a module needs asyncssh: a run handed to the agent never loads it.
"""

from __future__ import annotations

import asyncio
import glob
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["load_asyncssh", "new_event_loop", "probe_cheaply", "run_loop"]

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


class _CheapProbeLoader(importlib.abc.Loader):
    """asyncssh's own loader, run with the library probe that does not fork."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        import ctypes.util

        original = ctypes.util.find_library
        ctypes.util.find_library = _find_library_without_forking
        try:
            self._loader.exec_module(module)
        finally:
            ctypes.util.find_library = original
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader


class _CheapProbeFinder(importlib.abc.MetaPathFinder):
    """Finds asyncssh as Python would, with ``_CheapProbeLoader`` around its loader; once."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "asyncssh":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _CheapProbeFinder)]
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _CheapProbeLoader(spec.loader)
        return spec


def probe_cheaply() -> None:
    """Make the first ``import asyncssh`` of this process probe without forking (Linux)."""
    if not sys.platform.startswith("linux") or "asyncssh" in sys.modules:
        return
    if not any(isinstance(f, _CheapProbeFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheapProbeFinder())


def load_asyncssh() -> ModuleType:
    """``import asyncssh`` with the library probe made cheap; later calls are free."""
    probe_cheaply()
    import asyncssh

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
    """Run ``main()`` on a fresh event loop (uvloop when available) and close it.

    The loop's main task ends with no result of its own: asyncio's runner looks at
    its Ctrl-C handler on the way out, a partial holding the task, and the signal
    module writes that out in full (``repr``) when it is no signal constant, which
    with 200 hosts' results was milliseconds for nothing.
    """
    returned: list[T] = []

    async def main_task() -> None:
        returned.append(await main())

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main_task())
    return returned[0]
