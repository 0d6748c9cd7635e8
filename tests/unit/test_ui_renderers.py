"""The batch renderers: gathered blocks, live lines, JSON lines, out-dir files, the summary."""

from __future__ import annotations

import io
import json
import re
import signal
from pathlib import Path

from herd.core.events import HostFinished, HostOutput, OperationFinished, OperationStarted
from herd.core.hostset import FoldReader
from herd.core.model import BatchResult, CappedOutput, HostResult, Output, Status
from herd.inventory import load_inventory
from herd.inventory.patterns import fold_reader
from herd.ui.console import Printer
from herd.ui.gather import gather, render_gathered
from herd.ui.jsonlines import JsonLines
from herd.ui.live import LiveLines
from herd.ui.outdir import OutDir
from herd.ui.progress import ProgressBar
from herd.ui.summary import render_summary


def out(text: str) -> Output:
    capped = CappedOutput(1024)
    capped.write(text.encode())
    return capped.result()


def result(host: str, status: Status = Status.OK, stdout: str = "", **kw: object) -> HostResult:
    exit_status = kw.pop("exit_status", 0 if status is Status.OK else None)
    return HostResult(
        host=host,
        address=f"10.0.0.{host[-1]}",
        status=status,
        exit_status=exit_status,  # type: ignore[arg-type]
        stdout=out(stdout),
        **kw,  # type: ignore[arg-type]
    )


def reader_of(names: list[str]) -> FoldReader:
    """How an inventory of just these hosts, ungrouped, reads a folded host set."""
    return fold_reader(load_inventory([",".join(names) + ","]))


def console() -> tuple[Printer, io.StringIO]:
    buffer = io.StringIO()
    return Printer(buffer), buffer


def test_gather_groups_hosts_with_identical_output_and_exit_status() -> None:
    results = [
        result("web01", stdout="Linux\n"),
        result("web02", stdout="Linux\n"),
        result("web10", stdout="Linux\n"),
        result("web03", Status.FAILED, stdout="Linux\n", exit_status=1),
        result("db01", stdout="BSD\n"),
    ]
    groups = gather(results)
    assert [(names, r.status) for names, r in groups] == [
        (["web01", "web02", "web10"], Status.OK),
        (["db01"], Status.OK),
        (["web03"], Status.FAILED),
    ]


def test_gather_keeps_hosts_apart_when_their_failure_reasons_differ() -> None:
    results = [
        result("a1", Status.UNREACHABLE, error="connection refused"),
        result("a2", Status.UNREACHABLE, error="no SSH banner within 3 s"),
        result("a3", Status.UNREACHABLE, error="connection refused"),
    ]
    assert [names for names, _ in gather(results)] == [["a1", "a3"], ["a2"]]


def test_gathered_block_is_headed_by_the_folded_host_set_and_count() -> None:
    con, buffer = console()
    names = [f"web{i:02d}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 10)]
    render_gathered(con, [result(n, stdout="same\n") for n in names], reader_of(names))
    text = buffer.getvalue()
    assert "web[01-08,10] (9)" in text
    assert text.count("same") == 1


def test_live_lines_name_the_host_on_every_line_and_never_split_a_line() -> None:
    con, buffer = console()
    live = LiveLines(con)
    live.handle(OperationStarted("run", ("web01", "db1")))
    live.handle(HostOutput("web01", "stdout", b"hel"))
    live.handle(HostOutput("db1", "stdout", b"one\ntw"))
    live.handle(HostOutput("web01", "stdout", b"lo\nwor"))
    live.handle(HostOutput("db1", "stderr", b"oops\n"))
    live.handle(HostFinished(result("web01")))
    live.handle(HostFinished(result("db1")))
    assert buffer.getvalue().splitlines() == [
        "db1   | one",
        "web01 | hello",
        "db1   ! oops",
        "web01 | wor",
        "db1   | tw",
    ]


def test_live_lines_report_a_host_that_never_ran_with_its_reason() -> None:
    con, buffer = console()
    live = LiveLines(con)
    live.handle(OperationStarted("run", ("web03",)))
    live.handle(HostFinished(result("web03", Status.UNREACHABLE, error="connection refused")))
    assert buffer.getvalue().strip() == "web03 ! unreachable: connection refused"


def test_json_lines_carry_the_design_keys_and_the_added_ones() -> None:
    stream = io.StringIO()
    renderer = JsonLines(stream)
    renderer.handle(HostFinished(result("web01", stdout="hi\n", duration=1.23456)))
    renderer.handle(
        HostFinished(result("web02", Status.TIMEOUT, error="command still running after 2 s"))
    )
    rows = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert set(rows[0]) == {
        "host", "address", "status", "exit_status", "stdout", "stderr", "duration", "error",
        "signal", "stdout_truncated", "stderr_truncated", "stdout_bytes", "stderr_bytes", "batch",
    }  # fmt: skip
    assert rows[0]["stdout_bytes"] == 3 and rows[0]["stdout_truncated"] is False
    assert rows[0]["stdout"] == "hi\n" and rows[0]["duration"] == 1.235
    assert rows[1]["status"] == "timeout" and rows[1]["exit_status"] is None


def test_out_dir_gets_every_byte_and_an_exit_file_per_host(tmp_path: Path) -> None:
    renderer = OutDir(tmp_path / "out")
    renderer.handle(HostOutput("web01", "stdout", b"a" * 100_000))
    renderer.handle(HostOutput("web01", "stderr", b"warn\n"))
    renderer.handle(HostFinished(result("web01")))
    renderer.handle(HostFinished(result("web02", Status.UNREACHABLE, error="connection refused")))
    renderer.handle(OperationFinished(exit_code=0, elapsed=0.0))
    directory = tmp_path / "out"
    assert (directory / "web01.out").stat().st_size == 100_000
    assert (directory / "web01.err").read_text() == "warn\n"
    assert (directory / "web01.exit").read_text() == "0\n"
    assert (directory / "web02.out").read_bytes() == b""
    assert (directory / "web02.exit").read_text() == ""  # no exit status: no number
    assert (directory / "web02.err").read_text() == "herd: unreachable: connection refused\n"


def test_summary_counts_each_status_and_folds_the_hosts_with_a_reason_each() -> None:
    con, buffer = console()
    batch = BatchResult()
    batch.extend(result(f"web{i:02d}") for i in range(1, 7))
    batch.add(result("web07", Status.UNREACHABLE, error="connection refused"))
    batch.add(result("web08", Status.UNREACHABLE, error="no SSH banner within 3 s"))
    batch.add(result("db01", Status.HOSTKEY_MISMATCH, error="host key for db01 changed: SHA256:x"))
    reader = reader_of([r.host for r in batch.results])
    render_summary(con, batch, reader=reader, targeted=9, elapsed=1.5)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "9 hosts: 6 ok, 2 unreachable, 1 hostkey_mismatch in 1.5 s"
    assert "  unreachable (2): web[07-08]" in lines
    assert "    web07  connection refused" in lines
    assert "    web08  no SSH banner within 3 s" in lines
    assert "    db01  host key for db01 changed: SHA256:x" in lines
    assert not any(line.startswith("  ok") for line in lines)


def test_summary_lists_ten_reasons_per_status_unless_verbose() -> None:
    batch = BatchResult()
    batch.extend(result(f"h{i:02d}", Status.TIMEOUT, error="too slow") for i in range(15))
    reader = reader_of([r.host for r in batch.results])
    con, buffer = console()
    render_summary(con, batch, reader=reader, targeted=15, elapsed=0.1)
    assert buffer.getvalue().count("too slow") == 10
    assert "... and 5 more (-v for all)" in buffer.getvalue()
    con, buffer = console()
    render_summary(con, batch, reader=reader, targeted=15, elapsed=0.1, verbose=True)
    assert buffer.getvalue().count("too slow") == 15


def test_summary_of_an_interrupted_batch_counts_the_hosts_not_finished() -> None:
    con, buffer = console()
    batch = BatchResult(interrupted=True)
    batch.add(result("web01"))
    render_summary(con, batch, reader=reader_of(["web01"]), targeted=4, elapsed=0.2)
    assert buffer.getvalue().splitlines()[0] == (
        "4 hosts: 1 ok, 3 not finished in 0.2 s (interrupted)"
    )


def test_summary_of_a_batch_stopped_before_any_host_finished_reads_plainly() -> None:
    con, buffer = console()
    batch = BatchResult()
    batch.interrupt(signal.SIGTERM)
    render_summary(con, batch, reader=reader_of([]), targeted=10, elapsed=1.6)
    assert buffer.getvalue().splitlines()[0] == (
        "10 hosts: 10 not finished in 1.6 s (interrupted by SIGTERM)"
    )
    assert batch.exit_code == 143


def test_progress_bar_draws_nothing_when_stderr_is_not_a_terminal() -> None:
    con, buffer = console()
    bar = ProgressBar(con)
    bar.handle(OperationStarted("run", ("a",)))
    bar.handle(HostFinished(result("a")))
    bar.handle(OperationFinished(exit_code=0, elapsed=0.0))
    assert buffer.getvalue() == ""


def test_on_a_terminal_lines_are_drawn_in_colour_and_the_text_stays_the_same() -> None:
    buffer = io.StringIO()
    live = LiveLines(Printer(buffer, terminal=True))
    live.handle(OperationStarted("run", ("web01",)))
    live.handle(HostOutput("web01", "stderr", b"boom\n"))
    drawn = buffer.getvalue()
    assert "\x1b[" in drawn
    assert re.sub(r"\x1b\[[0-9;]*m", "", drawn) == "web01 ! boom\n"


def test_a_rich_console_is_accepted_where_a_printer_is() -> None:
    from rich.console import Console

    buffer = io.StringIO()
    batch = BatchResult()
    batch.add(result("web01"))
    printer = Console(file=buffer, color_system=None)
    render_summary(printer, batch, reader=reader_of(["web01"]), targeted=1, elapsed=0.0)
    assert buffer.getvalue().startswith("1 host: 1 ok in 0.0 s")
