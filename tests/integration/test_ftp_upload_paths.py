"""The two ways an upload reaches its file: spliced by the kernel (plain binary) or
through buffers (TLS, ASCII, a system without splice). Same bytes, hash, quota, timeout."""

from __future__ import annotations

import contextlib
import ftplib
import hashlib
import io
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from herd.ftp.events import TransferEvent
from herd.ftp.spliced import Pipe
from herd.ftp.upload import FileDigest
from tests.ftp_server_support import RawControl, RunningServer, running_server

MB = 1024 * 1024

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["spliced", "buffered"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs both ways; the spliced one checks that splice really carried it."""
    calls: list[int] = []
    fill_from: Callable[[Pipe, socket.socket], int] = Pipe.fill_from

    def counted(pipe: Pipe, sock: socket.socket) -> int:
        calls.append(1)
        return fill_from(pipe, sock)

    monkeypatch.setattr(Pipe, "fill_from", counted)
    if request.param == "buffered":
        monkeypatch.delattr(os, "splice")  # as on a system without it
    yield request.param
    assert bool(calls) == (request.param == "spliced")


def _uploads(running: RunningServer) -> list[TransferEvent]:
    return [e for e in running.events.of(TransferEvent) if e.verb != "RETR"]  # type: ignore[misc]


def test_stor_rest_stor_and_appe_store_the_bytes_and_log_their_sha256(
    tmp_path: Path, way: str
) -> None:
    payload = os.urandom(5 * MB + 123)  # past the inline hash: the helper thread hashes
    with running_server(tmp_path) as running, running.client() as ftp:
        ftp.storbinary("STOR up.bin", io.BytesIO(payload[: 3 * MB]))
        ftp.storbinary("STOR up.bin", io.BytesIO(payload[2 * MB :]), rest=2 * MB)
        ftp.storbinary("APPE up.bin", io.BytesIO(b"tail"))
        assert (running.home / "up.bin").read_bytes() == payload + b"tail"
        assert [(e.verb, e.size, e.sha256, e.ok) for e in _uploads(running)] == [
            ("STOR", 3 * MB, hashlib.sha256(payload[: 3 * MB]).hexdigest(), True),
            ("STOR", len(payload) - 2 * MB, hashlib.sha256(payload[2 * MB :]).hexdigest(), True),
            ("APPE", 4, hashlib.sha256(b"tail").hexdigest(), True),
        ]
    assert sorted(p.name for p in running.home.iterdir()) == ["up.bin"]


def test_an_upload_past_the_quota_gets_552_and_leaves_nothing(tmp_path: Path, way: str) -> None:
    with running_server(tmp_path, quota=3 * MB) as running, running.client() as ftp:
        (running.home / "keep.bin").write_bytes(b"k" * MB)
        with pytest.raises(ftplib.error_perm, match=r"^552"):
            ftp.storbinary("STOR big.bin", io.BytesIO(os.urandom(6 * MB)))
        assert sorted(p.name for p in running.home.iterdir()) == ["keep.bin"]
        event = _uploads(running)[-1]
        assert not event.ok and event.error.startswith("Quota exceeded")


def test_a_stalled_upload_gets_421_and_leaves_no_file(tmp_path: Path, way: str) -> None:
    with running_server(tmp_path, data_idle_timeout=0.5) as running:
        raw = RawControl(running.host, running.port)
        try:
            raw.login()
            code, text = raw.cmd("EPSV")
            assert code == 229
            port = int(text.split("|||")[1].split("|")[0])
            data = socket.create_connection((running.host, port), timeout=5)
            assert raw.cmd("TYPE I")[0] == 200
            assert raw.cmd("STOR stalled.bin")[0] == 150
            data.sendall(os.urandom(2 * MB))
            started = time.monotonic()
            assert raw.reply()[0] == 421  # nothing more came for the idle timeout
            assert time.monotonic() - started < 30
            data.close()
        finally:
            raw.close()
        assert list(running.home.iterdir()) == []


def test_the_hash_reads_back_what_was_written_and_a_shrunk_file_is_an_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(4 * MB)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        digest = FileDigest(fd, 100, 256 * 1024)
        for end in range(100 + 300_000, len(data), 300_000):
            digest.written(end)
        digest.written(len(data))
        assert digest.hexdigest() == hashlib.sha256(data[100:]).hexdigest()
        inline, helper = [MB // 2, MB], range(MB // 2, 4 * MB + 1, MB // 2)
        for size, ends in ((MB // 4, inline), (MB, helper)):
            os.ftruncate(fd, size)
            digest = FileDigest(fd, 0, 256 * 1024)
            with contextlib.closing(digest):
                for end in ends:
                    digest.written(end)  # never waits for a helper that failed
                with pytest.raises(OSError, match="shrank"):
                    digest.hexdigest()
    finally:
        os.close(fd)
