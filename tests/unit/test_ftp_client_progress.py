"""The client's progress bar: drawn on a terminal, silent elsewhere, and the shell's wiring."""

from __future__ import annotations

import io

from rich.console import Console

from herd.ftp.client import FileProgress, NoFileProgress
from herd.ui.ftp_progress import TransferBar


def test_bar_shows_file_name_and_bytes_on_a_terminal() -> None:
    out = io.StringIO()
    bar: FileProgress = TransferBar(Console(file=out, force_terminal=True, width=100))
    bar.start("backup.tar", total=4 << 20, done=1 << 20)
    bar.advance(3 << 20)
    bar.finish()
    text = out.getvalue()
    assert "backup.tar" in text
    assert "4.0/4.0 MiB" in text


def test_bar_draws_nothing_when_not_a_terminal() -> None:
    out = io.StringIO()
    bar = TransferBar(Console(file=out, force_terminal=False))
    bar.start("backup.tar", total=100, done=0)
    bar.advance(100)
    bar.finish()
    assert out.getvalue() == ""


def test_no_progress_accepts_the_same_calls() -> None:
    quiet: FileProgress = NoFileProgress()
    quiet.start("x", None, 0)
    quiet.advance(10)
    quiet.finish()
