"""Workers without a fleet: fork slots across processes, and a worker that cannot start."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from herd.core.model import Host, HostResult, Status
from herd.hosts.connect import ConnectOptions
from herd.hosts.transfer import PullJob
from herd.hosts.transfer_plan import TransferOptions
from herd.hosts.workers import Workers
from herd.operation.driver import HostWork
from herd.operation.fanout import HostSlot, Slot, _Parking, fanout

from .test_hosts_connect import unanswered_port


def _pull_job(tmp_path: Path) -> PullJob:
    return PullJob(("/etc/hostname",), tmp_path / "fetched", TransferOptions())


def test_hosts_in_workers_step_out_of_their_forks_while_no_tcp_answers(tmp_path: Path) -> None:
    fillers: list[socket.socket] = []
    listener, port = unanswered_port(fillers)
    connect = ConnectOptions(connect_timeout=1.5, agent=False, ssh_config=())
    workers = Workers(_pull_job(tmp_path), connect, 2)
    hosts = [
        Host(f"off{i:02d}", "127.0.0.1", port=port, known_hosts=str(tmp_path / "kh"))
        for i in range(8)
    ]

    in_flight = [0, 0]  # hosts started and not finished: now, and the most at once

    async def main() -> list[HostResult]:
        async def per_host(host: Host, slot: HostSlot) -> HostResult:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            try:
                return await workers.per_host(host, HostWork(slot, lambda event: None, False))
            finally:
                in_flight[0] -= 1

        async with workers.running():
            return list(await fanout(hosts, per_host, 2, handle_sigint=False))

    try:
        results = asyncio.run(main())
    finally:
        for sock in [*fillers, listener]:
            sock.close()
    assert len(results) == 8
    assert {(r.status, r.error) for r in results} == {
        (Status.UNREACHABLE, "no TCP connection within 1.5 s")
    }
    # a host holding its fork while no TCP answers would keep the others out: never more
    # than 2 at once; stepping out, the others start while the first wait
    assert in_flight[1] > 2, in_flight


def test_a_worker_that_cannot_start_fails_its_hosts_with_the_reason(tmp_path: Path) -> None:
    workers = Workers(_pull_job(tmp_path), ConnectOptions(), 1)
    workers._argv = [workers._argv[0], "-c", "import sys; sys.exit(3)"]  # dies before its job

    async def main() -> list[HostResult]:
        async with workers.running():
            work = HostWork(Slot(asyncio.Semaphore(1), _Parking(1)), lambda event: None, False)
            return [await workers.per_host(Host("web01", "127.0.0.1"), work) for _ in range(2)]

    first, second = asyncio.run(main())
    assert first.status is Status.ERROR
    assert first.error.startswith("transfer worker ")
    assert first.error.endswith(" exited (3) during the transfer")
    assert second.error == first.error  # a dead worker answers at once, it takes no more hosts
