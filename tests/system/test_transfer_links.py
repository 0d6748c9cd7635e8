"""Symbolic links on a host never carry a push outside where the operator asked.

The fleet's hosts share this machine's filesystem, so a link on a "host" can
point at a directory the test also reads: exactly a link planted in a tree
that root pushes into.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Fleet
from .test_transfer_faults import herd, json_results, leftovers

pytestmark = pytest.mark.system


def make_tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "app.conf").write_text("workers = 4\n")
    (tree / "top.conf").write_text("top\n")
    return tree


@pytest.mark.parametrize("where", ["tree", "tree/sub"])
def test_push_replaces_a_link_on_the_host_instead_of_writing_through_it(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    tree = make_tree(tmp_path / "local")
    dest = tmp_path / "remote"
    (dest / "tree").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if where == "tree":
        (dest / "tree").rmdir()
    (dest / where).symlink_to(elsewhere)  # where the source has a directory
    precious = tmp_path / "precious"
    precious.write_text("keep\n")
    (elsewhere / "top.conf").symlink_to(precious)  # and, through it, where it has a file

    code = herd(lab_fleet, "push", "web03", str(tree), f"{dest}/", "--json")
    row = json_results(capsys.readouterr().out)["web03"]

    assert [p.name for p in elsewhere.iterdir()] == ["top.conf"]  # untouched
    assert precious.read_text() == "keep\n"
    assert not (dest / where).is_symlink() and (dest / where).is_dir()
    assert (dest / "tree" / "sub" / "app.conf").read_text() == "workers = 4\n"
    assert (dest / "tree" / "top.conf").read_text() == "top\n"
    assert (code, row["status"]) == (0, "ok"), row
    assert not leftovers(dest)


def test_push_replaces_a_link_where_it_lands_a_file(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "local")
    dest = tmp_path / "remote"
    (dest / "tree").mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.write_text("top\n")  # the same content: must not count as already there
    (dest / "tree" / "top.conf").symlink_to(precious)
    assert herd(lab_fleet, "push", "web03", str(tree), f"{dest}/", "--json") == 0
    row = json_results(capsys.readouterr().out)["web03"]
    top = next(f for f in row["files"] if str(f["path"]).endswith("top.conf"))  # type: ignore[attr-defined]
    assert top["skipped"] is False
    assert not (dest / "tree" / "top.conf").is_symlink()
    assert precious.read_text() == "top\n"


def test_push_follows_dest_itself_when_the_operator_made_it_a_link(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "local")
    release = tmp_path / "releases" / "42"
    release.mkdir(parents=True)
    current = tmp_path / "current"
    current.symlink_to(release)
    assert herd(lab_fleet, "push", "web04", f"{tree}/", str(current), "--json") == 0
    assert herd(lab_fleet, "push", "web04", str(tree), str(current), "--json") == 0
    capsys.readouterr()
    assert current.is_symlink()
    assert (release / "top.conf").read_text() == "top\n"  # tree/ : its contents in DEST
    assert (release / "sub" / "app.conf").read_text() == "workers = 4\n"
    assert (release / "tree" / "top.conf").read_text() == "top\n"  # tree: as DEST/tree
