"""Racing several Python processes against each other, released at the same moment."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def race(script: str, workdir: Path, *, count: int = 4, timeout: float = 60.0) -> list[str]:
    """Run ``script`` in ``count`` processes started together; return the stderr of any failed.

    Each process waits for a start file before running the script, so their imports
    (the slow part) are done when they are let go.
    """
    go = workdir / "go"
    source = f"import pathlib, time\nwhile not pathlib.Path({str(go)!r}).exists():\n"
    source += "    time.sleep(0.001)\n" + textwrap.dedent(script)
    runners = [
        subprocess.Popen([sys.executable, "-c", source], stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        go.touch()
        errors = [runner.communicate(timeout=timeout)[1] for runner in runners]
    finally:  # a failed or stuck runner must not outlive the test
        for runner in runners:
            runner.kill()
            runner.wait()
    return [err for runner, err in zip(runners, errors, strict=True) if runner.returncode != 0]
