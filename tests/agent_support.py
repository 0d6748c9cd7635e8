"""Stopping a test's agent: by the pid in its lock, once that pid is checked to be our agent."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from herd.operation.agent_protocol import AgentFiles, agent_pid, is_agent_process


def stop_agent(files: AgentFiles, bound: float = 10.0) -> None:
    """Stop the agent these files name, by the pid in its lock, once it is checked to be ours."""
    pid = agent_pid(files)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + bound
    while is_agent_process(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if is_agent_process(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
