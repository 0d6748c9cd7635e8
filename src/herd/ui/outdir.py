"""``-o DIR``: each host's whole output in DIR/HOST.out, DIR/HOST.err and DIR/HOST.exit.

pssh's layout. The files get every byte as it arrives (not only what is kept
in memory), so a large output lands on disk complete. HOST.exit holds the
exit status, and nothing when there is none (the host was not reached, the
command timed out or was killed); the reason then ends HOST.err, on a line of
its own (``herd: unreachable: connection refused``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import BinaryIO

from herd.core.events import OperationFinished
from herd.core.model import HostResult
from herd.errors import ConfigError
from herd.ui.render import Renderer

__all__ = ["OutDir"]


class OutDir(Renderer):
    """Streams each host's output into its files under one directory."""

    wants_output = True

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{directory}: cannot create the output directory: {exc}") from exc
        self.directory = directory
        self._open: dict[tuple[str, str], BinaryIO] = {}
        self._mid_line: set[str] = set()  # hosts whose stderr so far ends without a newline
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

    def output(self, host: str, stream: str, data: bytes) -> None:
        handle = self._file(host, stream)
        if handle is not None:
            handle.write(data)
        if stream == "stderr" and data:
            if data.endswith(b"\n"):
                self._mid_line.discard(host)
            else:
                self._mid_line.add(host)

    def result(self, result: HostResult) -> None:
        if result.exit_status is None:
            reason = f"herd: {result.status.value}: {result.error or result.status.value}\n"
            if result.host in self._mid_line:
                reason = "\n" + reason
            self.output(result.host, "stderr", reason.encode())
        for stream in ("stdout", "stderr"):
            handle = self._file(result.host, stream)  # creates the empty file for silent hosts
            if handle is not None:
                handle.close()
            self._open.pop((result.host, stream), None)
        exit_line = "" if result.exit_status is None else f"{result.exit_status}\n"
        try:
            (self.directory / f"{result.host}.exit").write_text(exit_line)
        except OSError as exc:
            self.errors.append(f"{self.directory}/{result.host}.exit: {exc.strerror}")

    def finished(self, event: OperationFinished) -> None:
        for handle in self._open.values():
            with contextlib.suppress(OSError):
                handle.close()
        self._open.clear()
