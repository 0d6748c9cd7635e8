"""Switching a SQLite file that several herd processes may open at once to WAL mode."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["use_wal"]


def use_wal(db: sqlite3.Connection, patience: float = 30.0) -> None:
    """Switch ``db`` to WAL, waiting out other processes switching it at the same moment.

    The switch needs the file to itself and SQLite reports "locked" at once instead of
    calling the busy handler, so a new file opened by several herds is retried here.
    Once the file is in WAL mode (it stays so) this asks for no lock at all.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
        else:
            return
