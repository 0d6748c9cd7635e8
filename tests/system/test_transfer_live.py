"""Pulling files that change while they are read: live logs, /proc, files rewritten meanwhile."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from .conftest import Fleet
from .dropbear import DropbearFleet
from .test_transfer_faults import herd, json_results, leftovers, on_first_bytes, sha256

pytestmark = pytest.mark.system


@contextlib.contextmanager
def appended_to(log: Path, every: float = 0.02) -> Iterator[None]:
    """A writer appending a line to ``log`` every ``every`` seconds, as a busy daemon does."""
    stop = threading.Event()

    def write() -> None:
        count = 0
        while not stop.wait(every):
            with log.open("ab") as handle:
                handle.write(f"{count:08d} GET /index.html 200\n".encode())
            count += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join(timeout=5)


def test_pull_of_a_live_log_keeps_what_it_had_when_listed_every_time(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = tmp_path / "remote" / "log"
    remote.mkdir(parents=True)
    log = remote / "access.log"
    log.write_bytes(b"x" * (3 * 1024 * 1024) + b"\n")
    pulled = tmp_path / "pulled"
    local = pulled / "web01" / str(log).lstrip("/")
    with appended_to(log):
        for _ in range(2):  # the README's own `pull all '/var/log/*.log'`, twice in a row
            code = herd(lab_fleet, "pull", "web01", f"{remote}/*.log", str(pulled), "--json")
            row = json_results(capsys.readouterr().out)["web01"]
            assert (code, row["status"]) == (0, "ok"), row
            kept = local.read_bytes()
            assert len(kept) > 3 * 1024 * 1024
            assert log.read_bytes().startswith(kept)  # a snapshot of its first bytes
            (record,) = row["files"]  # type: ignore[misc]
            assert record["size"] == len(kept)
    assert not leftovers(pulled)


def test_pull_reads_a_file_listed_as_empty_to_its_end(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pulled = tmp_path / "pulled"
    code = herd(lab_fleet, "pull", "web02", "/proc/meminfo", str(pulled), "--json")
    row = json_results(capsys.readouterr().out)["web02"]
    assert (code, row["status"]) == (0, "ok"), row
    kept = (pulled / "web02" / "proc" / "meminfo").read_bytes()
    assert kept.startswith(b"MemTotal:") and kept.endswith(b"\n")
    (record,) = row["files"]  # type: ignore[misc]
    assert record["size"] == len(kept)


def test_a_file_rewritten_in_place_and_grown_while_pulled_still_fails(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    log = remote / "app.log"
    log.write_bytes(os.urandom(4 * 1024 * 1024))

    def rewrite_the_start_and_append() -> None:  # never shorter: it only looks like growth
        with log.open("r+b") as handle:
            handle.write(os.urandom(1024 * 1024))
            handle.seek(0, os.SEEK_END)
            handle.write(os.urandom(1024 * 1024))

    fired = on_first_bytes(monkeypatch, "web03", rewrite_the_start_and_append, 256 * 1024)
    pulled = tmp_path / "pulled"
    code = herd(lab_fleet, "pull", "web03", str(log), str(pulled), "--json")
    assert fired
    row = json_results(capsys.readouterr().out)["web03"]
    assert code == 1
    assert row["error"] == f"{log}: changed while being pulled (rewritten in place)"
    assert not (pulled / "web03" / str(log).lstrip("/")).exists()
    assert not leftovers(pulled)


def test_a_host_without_a_hash_tool_catches_a_rewrite_that_keeps_size_and_mtime(
    odd_hosts: DropbearFleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    data = remote / "data.bin"
    data.write_bytes(os.urandom(4 * 1024 * 1024))
    pulled = tmp_path / "pulled"
    local = pulled / "nohash" / str(data).lstrip("/")
    fleet = cast(Fleet, odd_hosts)
    for run in (1, 2):  # read back, then skipped: the copy in place is the host's
        code = herd(fleet, "pull", "nohash", str(data), str(pulled), "--json")
        row = json_results(capsys.readouterr().out)["nohash"]
        assert (code, row["status"]) == (0, "ok"), row
        (record,) = row["files"]  # type: ignore[misc]
        assert (record["sha256"], record["skipped"]) == (sha256(data), run == 2)
        assert local.read_bytes() == data.read_bytes()

    local.unlink()
    listed = data.stat()

    def rewrite_keeping_size_and_mtime() -> None:  # what only the bytes themselves show
        with data.open("r+b") as handle:
            handle.write(os.urandom(1024 * 1024))
        os.utime(data, ns=(listed.st_atime_ns, listed.st_mtime_ns))

    fired = on_first_bytes(monkeypatch, "nohash", rewrite_keeping_size_and_mtime, 256 * 1024)
    code = herd(fleet, "pull", "nohash", str(data), str(pulled), "--json")
    assert fired
    row = json_results(capsys.readouterr().out)["nohash"]
    assert (code, row["status"]) == (1, "error")
    assert row["error"] == f"{data}: changed while being pulled (rewritten in place)"
    assert not local.exists()
    assert not leftovers(pulled)
