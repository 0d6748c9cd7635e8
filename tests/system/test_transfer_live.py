"""Pulling files that change while they are read: live logs, /proc, files rewritten meanwhile."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Fleet
from .test_transfer_faults import herd, json_results, leftovers, on_first_bytes

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
