"""``--json``: one JSON object per host on stdout as it finishes, nothing else there.

The keys are DESIGN.md's: host, address, status, exit_status, stdout, stderr,
duration, error. stdout and stderr are the kept (capped) text.
"""

from __future__ import annotations

import json
from typing import TextIO

from herd.core.model import HostResult
from herd.ui.render import Renderer

__all__ = ["JsonLines"]


class JsonLines(Renderer):
    """Writes a JSON line per host result to ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def result(self, result: HostResult) -> None:
        self._stream.write(json.dumps(result.json_fields(), ensure_ascii=False) + "\n")
        self._stream.flush()
