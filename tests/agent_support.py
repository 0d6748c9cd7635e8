"""Stopping a test's agent: by the pid in its lock, once that pid is checked to be our agent;
and seeing its warm command line serve."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time

from herd.operation.agent_protocol import AgentFiles, agent_pid, is_agent_process, warm_pid


def stop_agent(files: AgentFiles, bound: float = 10.0) -> None:
    """Stop the agent these files name, and its warm command line, by the pids in their
    locks, once each is checked to be ours."""
    for pid, role in ((agent_pid(files), b"serve"), (warm_pid(files), b"warm")):
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + bound
        while is_agent_process(pid, role) and time.monotonic() < deadline:
            time.sleep(0.02)
        if is_agent_process(pid, role):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def warm_serving(files: AgentFiles) -> bool:
    """Whether the agent's warm command line accepts connections (it declines this one)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(str(files.warm_socket))
    except OSError:
        return False
    finally:
        probe.close()
    return True
