"""The jail through the protocol: random paths sent by a client never reach outside the home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ftp_server_support import RawControl, RunningServer, running_server

_PARTS = st.sampled_from(
    ["..", ".", "", "a", "out", "abs", "up", "loop", "secret.txt", "new", "é", "x" * 256,
     "\x01", "\x7f", "%2e%2e", "\\..\\", "~root"]
)  # fmt: skip
_PATHS = st.builds(
    lambda lead, parts: lead + "/".join(parts),
    st.sampled_from(["", "/", "//"]),
    st.lists(_PARTS, min_size=1, max_size=6),
)
_COMMANDS = st.sampled_from(
    ["CWD", "MKD", "RMD", "DELE", "SIZE", "MDTM", "HASH", "MLST", "STAT", "RNFR", "XMD5"]
)


_SECRET = "the-outside-data"  # what the file outside holds: never in any answer


def _names_in(home: Path) -> set[str]:
    """Every name in the home tree now (links not followed): earlier examples made some."""
    return {name for _, dirs, files in os.walk(home) for name in dirs + files}


def _snapshot(tree: Path) -> list[tuple[str, int, int]]:
    found = []
    for directory, dirs, files in os.walk(tree):
        for name in dirs + files:
            info = os.lstat(os.path.join(directory, name))
            found.append((os.path.join(directory, name), info.st_size, info.st_mtime_ns))
    return sorted(found)


@pytest.fixture(scope="module")
def hostile_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, RawControl, Path, list[tuple[str, int, int]]]]:
    root = tmp_path_factory.mktemp("jail-server")
    outside = root / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text(_SECRET)
    with running_server(root) as running:
        home = running.home
        (home / "a").mkdir()
        (home / "out").symlink_to(outside)
        (home / "abs").symlink_to(outside.resolve() / "dir")
        (home / "a" / "up").symlink_to("../../outside/secret.txt")
        (home / "loop").symlink_to("loop")
        raw = RawControl(running.host, running.port)
        raw.login()
        yield running, raw, outside, _snapshot(outside)
        raw.close()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(command=_COMMANDS, path=_PATHS, target=_PATHS)
def test_no_path_sent_over_ftp_touches_anything_outside_the_home(
    hostile_server: tuple[RunningServer, RawControl, Path, list[tuple[str, int, int]]],
    command: str,
    path: str,
    target: str,
) -> None:
    running, raw, outside, before = hostile_server
    code, text = raw.cmd(f"{command} {path}".encode("utf-8", "surrogateescape"))
    if command == "RNFR" and code == 350:
        code, text = raw.cmd(f"RNTO {target}".encode())
    assert code in (200, 211, 213, 250, 257, 350, 501, 550, 553), text
    assert _SECRET not in text  # never the outside file's data
    # nor its name, unless it was sent, or an earlier example made one by that name inside
    # (MKD a/secret.txt, then a STAT lists it: the examples share the session and its home)
    assert (
        "secret" not in text
        or "secret.txt" in path + target
        or "secret.txt" in _names_in(running.home)
    )
    assert _snapshot(outside) == before
    if code in (550, 553):
        assert raw.cmd("NOOP")[0] == 200  # refused, and the session goes on
