"""CodeStamps: a background process tells when the code it imported changed on disk."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from herd.core.daemon import CodeStamps


def _module(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(text)
    return path


def test_a_changed_or_removed_module_file_is_seen_and_a_new_import_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    first = _module(tmp_path, "herd_stamped_first", "VALUE = 1\n")
    importlib.import_module("herd_stamped_first")
    try:
        stamps = CodeStamps()
        assert not stamps.changed()
        _module(tmp_path, "herd_stamped_later", "VALUE = 2\n")
        importlib.import_module("herd_stamped_later")
        assert not stamps.changed()  # imported since: stamped now, as it is
        first.write_text("VALUE = 10\n")  # an upgrade
        assert stamps.changed()
        first.write_text("VALUE = 1\n")
        assert stamps.changed()  # same size, another modification time
        fresh = CodeStamps()
        first.unlink()
        assert fresh.changed()
    finally:
        for name in ("herd_stamped_first", "herd_stamped_later"):
            sys.modules.pop(name, None)
