"""``--json``: one JSON object per host on stdout as it finishes, nothing else there.

The keys are DESIGN.md's: host, address, status, exit_status, stdout, stderr,
duration, error. stdout and stderr are the kept (capped) text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from herd.core.model import BatchResult, Host, HostResult

__all__ = ["JsonLines"]


class JsonLines:
    """Writes a JSON line per host result to ``stream``."""

    wants_output = False

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def start(self, hosts: Sequence[Host]) -> None:
        pass

    def output(self, host: str, stream: str, data: bytes) -> None:
        pass

    def result(self, result: HostResult) -> None:
        self._stream.write(json.dumps(result.json_fields(), ensure_ascii=False) + "\n")
        self._stream.flush()

    def finish(self, batch: BatchResult, elapsed: float) -> None:
        pass
