"""Symbolic links never carry a push or a pull outside where the operator asked.

The fleet's hosts share this machine's filesystem, so a link on a "host" can
point at a directory the test also reads as local: exactly the attack of a
host that turns a pulled link into a directory, or a link planted in a tree
that root pushes into.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Fleet, both_engines
from .test_transfer_faults import herd, json_results, leftovers

pytestmark = pytest.mark.system


def test_pull_never_writes_through_a_link_an_earlier_pull_stored(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = tmp_path / "remote" / "srv" / "x"
    remote.mkdir(parents=True)
    outside = tmp_path / "some" / "local" / "dir"  # say, root's ~/.ssh
    outside.mkdir(parents=True)
    (remote / "link").symlink_to(outside)
    (remote / "deep").mkdir()
    (remote / "deep" / "inner").symlink_to(outside)
    pulled = tmp_path / "pulled"
    args = ["pull", "web01", str(remote), str(pulled), "--json"]
    assert herd(lab_fleet, *args) == 0
    mirror = pulled / "web01" / str(remote).lstrip("/")
    assert os.readlink(mirror / "link") == str(outside)  # stored as a link, as it was

    # the host turns each link into a real directory holding a file
    for name in ("link", "deep/inner"):
        (remote / name).unlink()
        (remote / name).mkdir()
        (remote / name / "authorized_keys").write_text(f"ssh-ed25519 AAAA {name}\n")
        (remote / name / "empty").mkdir()
    code = herd(lab_fleet, *args)
    row = json_results(capsys.readouterr().out)["web01"]

    assert list(outside.iterdir()) == []  # nothing written through the stale local links
    for name in ("link", "deep/inner"):
        landed = mirror / name
        assert landed.is_dir() and not landed.is_symlink()
        assert (landed / "authorized_keys").read_text() == f"ssh-ed25519 AAAA {name}\n"
        assert (landed / "empty").is_dir()
    assert (code, row["status"]) == (0, "ok"), row
    assert not leftovers(pulled)


def test_pull_replaces_a_local_link_where_the_host_now_has_a_file(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    precious = tmp_path / "precious.conf"
    precious.write_text("mine\n")
    (remote / "app.conf").symlink_to(precious)
    pulled = tmp_path / "pulled"
    args = ["pull", "web02", str(remote), str(pulled), "--json"]
    assert herd(lab_fleet, *args) == 0
    (remote / "app.conf").unlink()
    (remote / "app.conf").write_text("the host's\n")
    assert herd(lab_fleet, *args) == 0
    capsys.readouterr()
    local = pulled / "web02" / str(remote / "app.conf").lstrip("/")
    assert not local.is_symlink() and local.read_text() == "the host's\n"
    assert precious.read_text() == "mine\n"


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


@both_engines
def test_push_makes_links_the_right_way_round_and_leaves_no_probe_link(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "local" / "site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("<h1>hi</h1>\n")
    (site / "link.html").symlink_to("index.html")
    dest = tmp_path / "remote"
    dest.mkdir()
    # where a link made backwards used to land: the SFTP session's directory, the login's home
    dropbear = getattr(lab_fleet, "userland", None)
    home = Path(dropbear.home if dropbear is not None else os.path.expanduser("~"))
    before = {p for p in home.iterdir() if p.is_symlink()}
    for run in (1, 2):  # the second run finds both in place
        code = herd(lab_fleet, "push", "web01", str(site), f"{dest}/", "--json")
        row = json_results(capsys.readouterr().out)["web01"]
        assert (code, row["status"]) == (0, "ok"), row
        files = {Path(str(f["path"])).name: f["skipped"] for f in row["files"]}  # type: ignore[attr-defined]
        assert files == {"index.html": run == 2, "link.html": run == 2}
        assert os.readlink(dest / "site" / "link.html") == "index.html"
        assert (dest / "site" / "link.html").read_text() == "<h1>hi</h1>\n"
        assert not (dest / "site" / "index.html").is_symlink()
        # no probe link, no link made backwards, no temporary file
        assert [p for p in dest.rglob("*") if p.is_symlink()] == [dest / "site" / "link.html"]
        assert not leftovers(dest)
    assert {p for p in home.iterdir() if p.is_symlink()} == before
