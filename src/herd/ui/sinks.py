"""Which renderers draw an operation, chosen in one place from the output options.

Only the chosen renderers are imported: a scripted ``herd run --json`` never
loads rich. ``herd run`` streams lines (or gathers with ``-b``, or writes JSON);
push and pull say per host what moved; both end with the summary.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from herd.core.hostset import FoldReader
from herd.errors import ConfigError
from herd.ui.batches import BatchLines
from herd.ui.console import Printer
from herd.ui.render import Renderer

__all__ = ["OutputMode", "run_sinks", "transfer_sinks"]


@dataclass(frozen=True, slots=True)
class OutputMode:
    """How the operator asked to see it: --json, -b, -o DIR, -v, the progress bar."""

    as_json: bool = False
    gather: bool = False
    diff: bool = False  # gathered, the groups after the largest shown as diffs against it
    out_dir: Path | None = None
    verbose: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.gather and self.as_json:
            raise ConfigError("--gather and --json are two output formats: choose one")


def run_sinks(mode: OutputMode, reader: FoldReader) -> list[Renderer]:
    """``herd run``'s renderers: live lines, -b, --json or -o, a bar, the summary."""
    from herd.ui.summary import Summary

    err = Printer(stderr=True)
    chosen: list[Renderer] = []
    streaming = False
    if mode.out_dir is not None:
        from herd.ui.outdir import OutDir

        chosen.append(OutDir(mode.out_dir))
    if mode.as_json:
        from herd.ui.jsonlines import JsonLines

        chosen.append(JsonLines(sys.stdout))
    elif mode.gather:
        from herd.ui.gather import GatherRenderer

        chosen.append(GatherRenderer(Printer(), reader, diff=mode.diff))
    elif mode.out_dir is None:
        from herd.ui.live import LiveLines

        chosen.append(LiveLines(Printer(), err=err))
        streaming = True
    if not streaming and mode.progress:
        from herd.ui.progress import ProgressBar

        chosen.append(ProgressBar(err, "run"))
    chosen.append(BatchLines(err, reader))
    chosen.append(Summary(err, reader=reader, verbose=mode.verbose))
    return chosen


def transfer_sinks(mode: OutputMode, reader: FoldReader, kind: str) -> list[Renderer]:
    """push's and pull's renderers: a line per host, -b, --json, -o, the bytes bar, the summary."""
    from herd.ui.summary import Summary
    from herd.ui.transfer import (
        TransferGather,
        TransferJsonLines,
        TransferLines,
        TransferOutDir,
        TransferProgressBar,
        batch_totals,
    )

    verb = "sent" if kind == "push" else "fetched"
    out, err = Printer(), Printer(stderr=True)
    chosen: list[Renderer] = []
    if mode.as_json:
        chosen.append(TransferJsonLines(sys.stdout))
    elif mode.gather:
        chosen.append(TransferGather(out, verb, reader))
    else:
        chosen.append(TransferLines(out, verb))
    if mode.out_dir is not None:
        try:
            chosen.append(TransferOutDir(mode.out_dir))
        except OSError as exc:
            raise ConfigError(f"{mode.out_dir}: cannot create: {exc.strerror}") from exc
    if mode.progress:
        chosen.append(TransferProgressBar(err, kind))
    totals = lambda batch: batch_totals(batch, verb)  # noqa: E731 (one line, named for the reader)
    chosen.append(BatchLines(err, reader))
    chosen.append(Summary(err, reader=reader, verbose=mode.verbose, totals=totals))
    return chosen
