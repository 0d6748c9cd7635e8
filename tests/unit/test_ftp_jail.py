"""The jailed filesystem: every client path stays inside the home, whatever it says."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herd.ftp.jail import Jail, PathRefused


def _hostile_tree(base: Path) -> tuple[Path, Path]:
    """A home full of symlinks pointing out, and an outside tree holding a secret."""
    outside = base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    home = base / "home"
    (home / "a" / "b").mkdir(parents=True)
    (home / "a" / "file.txt").write_text("inside")
    (home / "link_out").symlink_to(outside)
    (home / "abs_out").symlink_to(outside.resolve())
    (home / "root").symlink_to(
        base
    )  # the directory above the home (not "/": a bug must not reach /etc)
    (home / "loop1").symlink_to("loop2")
    (home / "loop2").symlink_to("loop1")
    (home / "dangling").symlink_to("nowhere/at/all")
    (home / "a" / "up").symlink_to("../../outside/secret.txt")
    (home / "a" / "b" / "upup").symlink_to("../../../outside/dir")
    (home / "inside_link").symlink_to("a")
    return home, outside


def _snapshot(tree: Path) -> list[tuple[str, int, int]]:
    found = []
    for directory, dirs, files in os.walk(tree):
        for name in dirs + files:
            info = os.lstat(os.path.join(directory, name))
            found.append((os.path.join(directory, name), info.st_size, info.st_mtime_ns))
    return sorted(found)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Jail, Path, Path]:
    home, outside = _hostile_tree(tmp_path)
    return Jail(home), home, outside


def test_absolute_and_dotdot_paths_stay_under_the_home(tree: tuple[Jail, Path, Path]) -> None:
    jail, _home, _outside = tree
    assert jail.normalize("/a", "../../../..") == "/"
    assert jail.normalize("/a", "/etc/passwd") == "/etc/passwd"
    assert jail.real("/etc/passwd").startswith(jail.root + os.sep)
    assert jail.normalize("/", "a/./b/../file.txt") == "/a/file.txt"


@pytest.mark.parametrize(
    "path",
    ["/link_out/secret.txt", "/abs_out/secret.txt", "/root/outside/secret.txt", "/a/up",
     "/a/b/upup", "/link_out", "/inside_link/up"],
)  # fmt: skip
def test_symlinks_pointing_outside_are_refused_with_550(
    tree: tuple[Jail, Path, Path], path: str
) -> None:
    jail, _home, _outside = tree
    with pytest.raises(PathRefused) as refused:
        jail.open_read(path) if "secret" in path or path.endswith("up") else jail.entries(path, 10)
    assert not refused.value.bad_name  # the session answers 550


def test_symlinks_inside_the_home_are_followed(tree: tuple[Jail, Path, Path]) -> None:
    jail, _home, _outside = tree
    fd = jail.open_read("/inside_link/file.txt")
    try:
        assert os.read(fd, 100) == b"inside"
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "name",
    ["bad\x00name", "bad\nname", "bad\rname", "tab\there", "del\x7f", "x" * 256,
     "undecodable\udcff", "/".join(["d"] * 2100)],
)  # fmt: skip
def test_unsafe_names_are_refused_with_553(tree: tuple[Jail, Path, Path], name: str) -> None:
    jail, _home, _outside = tree
    with pytest.raises(PathRefused) as refused:
        jail.normalize("/", name)
    assert refused.value.bad_name  # the session answers 553


def test_listings_leave_out_entries_that_resolve_outside(tree: tuple[Jail, Path, Path]) -> None:
    jail, _home, _outside = tree
    names = [e.name for e in jail.entries("/", 100)]
    assert names == ["a", "inside_link"]


def test_deleting_a_symlink_removes_the_link_not_its_target(
    tree: tuple[Jail, Path, Path],
) -> None:
    jail, home, outside = tree
    jail.remove("/a/up")
    assert not (home / "a" / "up").exists()
    assert (outside / "secret.txt").read_text() == "secret"


# -- property: whatever path and operation a client sends, nothing outside is touched --------

_PARTS = st.sampled_from(
    ["..", ".", "", "a", "b", "file.txt", "link_out", "abs_out", "root", "loop1", "dangling",
     "up", "upup", "inside_link", "secret.txt", "dir", "etc", "passwd", "new", "é", "x" * 255,
     "\x00", "\n", "\udc80", "//", "~"]
)  # fmt: skip
_PATHS = st.builds(
    lambda lead, parts: lead + "/".join(parts),
    st.sampled_from(["", "/"]),
    st.lists(_PARTS, max_size=8),
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Jail, Path, list[Any]]]:
    base = tmp_path_factory.mktemp("jail")
    home, outside = _hostile_tree(base)
    jail = Jail(home)
    yield jail, outside, _snapshot(outside)


def _write(jail: Jail, target: str, _second: str) -> None:
    fd = jail.open_write(target)
    os.write(fd, b"x")
    os.close(fd)


def _temp(jail: Jail, target: str, _second: str) -> None:
    fd, temp, final = jail.create_temp(target)
    os.write(fd, b"y")
    os.close(fd)
    jail.replace(temp, final)


_ACTIONS: dict[str, Any] = {
    "read": lambda jail, target, _: os.close(jail.open_read(target)),
    "write": _write,
    "list": lambda jail, target, _: jail.entries(target, 50),
    "mkdir": lambda jail, target, _: jail.mkdir(target),
    "rmdir": lambda jail, target, _: jail.rmdir(target),
    "remove": lambda jail, target, _: jail.remove(target),
    "rename": lambda jail, target, second: jail.rename(target, second),
    "temp": _temp,
    "unique": lambda jail, target, _: os.close(jail.create_unique(target)[0]),
    "mtime": lambda jail, target, _: jail.set_mtime(target, 0),
}


_OPERATIONS = st.sampled_from(sorted(_ACTIONS))


def _attempt(jail: Jail, operation: str, cwd: str, path: str, other: str) -> None:
    """Run one client operation through the jail; refusals are fine, escapes are not."""
    try:
        target = jail.normalize(cwd, path)
        _ACTIONS[operation](jail, target, jail.normalize(cwd, other))
    except PathRefused:
        pass  # a refusal is an answer; only an escape is a failure


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operation=_OPERATIONS, cwd=st.sampled_from(["/", "/a", "/a/b"]), path=_PATHS, other=_PATHS)
def test_no_client_path_touches_anything_outside_the_home(
    hostile: tuple[Jail, Path, list[Any]], operation: str, cwd: str, path: str, other: str
) -> None:
    jail, outside, before = hostile
    _attempt(jail, operation, cwd, path, other)
    assert _snapshot(outside) == before
    try:
        resolved = jail.real(jail.normalize(cwd, path))
    except PathRefused:
        return
    assert resolved == jail.root or resolved.startswith(jail.root + os.sep)
