"""``-o DIR``: each host's whole output in DIR/HOST.out, DIR/HOST.err and DIR/HOST.exit.

pssh's layout. The files get every byte as it arrives (not only what is kept
in memory), so a large output lands on disk complete. HOST.exit holds the
exit status, or the status and its reason when the command did not finish.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from herd.core.results import BatchResult, HostResult
from herd.errors import ConfigError
from herd.inventory.model import Host

__all__ = ["OutDir"]


class OutDir:
    """Streams each host's output into its files under one directory."""

    wants_output = True

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{directory}: cannot create the output directory: {exc}") from exc
        self.directory = directory
        self._open: dict[tuple[str, str], BinaryIO] = {}
        self.errors: list[str] = []

    def _file(self, host: str, stream: str) -> BinaryIO | None:
        handle = self._open.get((host, stream))
        if handle is None:
            suffix = "out" if stream == "stdout" else "err"
            try:
                handle = (self.directory / f"{host}.{suffix}").open("wb")
            except OSError as exc:
                self.errors.append(f"{self.directory}/{host}.{suffix}: {exc.strerror}")
                return None
            self._open[(host, stream)] = handle
        return handle

    def start(self, hosts: Sequence[Host]) -> None:
        pass

    def output(self, host: str, stream: str, data: bytes) -> None:
        handle = self._file(host, stream)
        if handle is not None:
            handle.write(data)

    def result(self, result: HostResult) -> None:
        for stream in ("stdout", "stderr"):
            handle = self._file(result.host, stream)  # creates the empty file for silent hosts
            if handle is not None:
                handle.close()
            self._open.pop((result.host, stream), None)
        exit_line = (
            str(result.exit_status)
            if result.exit_status is not None
            else f"{result.status.value}: {result.error}"
        )
        try:
            (self.directory / f"{result.host}.exit").write_text(exit_line + "\n")
        except OSError as exc:
            self.errors.append(f"{self.directory}/{result.host}.exit: {exc.strerror}")

    def finish(self, batch: BatchResult, elapsed: float) -> None:
        for handle in self._open.values():
            with contextlib.suppress(OSError):
                handle.close()
        self._open.clear()
