"""herd's core: standard library only (no asyncssh, no rich)."""
