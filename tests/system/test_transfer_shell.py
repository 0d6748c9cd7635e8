"""Push to a Dropbear host without an SFTP server: the same rules over plain command channels.

The tree holds names a shell would take for options, code or patterns; the
push must land them as plain names, in the target only, and a second push
must skip everything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from pathlib import Path

import asyncssh
import pytest

from herd.core.model import Host, HostResult, Status
from herd.hosts.push import push_host
from herd.hosts.transfer_plan import NoProgress, PushPlan, TransferOptions, plan_push
from herd.hosts.transfer_stream import BlockSource

from .dropbear import DropbearFleet, Userland
from .test_run_faults import HERD, herd, rows

pytestmark = pytest.mark.system

MANY = 60  # files in tree/many
HOSTILE = ["-rf", "$(touch pwned)", "a space", "*", "new\nline", "it's", "`id`"]


def _tree(top: Path) -> dict[str, bytes]:
    """A tree with hostile names, a subdirectory and a link; {relative path: content}."""
    contents: dict[str, bytes] = {}
    (top / "sub").mkdir(parents=True)
    for index, name in enumerate(HOSTILE):
        data = f"{name!r} {index}\n".encode() + os.urandom(index * 1000)
        (top / name).write_bytes(data)
        contents[name] = data
    (top / "sub" / "-n").write_bytes(b"deep\n")
    contents["sub/-n"] = b"deep\n"
    for index in range(MANY):  # enough names that herd's scripts go on stdin to sh -s
        name = f"many/{'long name ' * 8}{index:03d}"
        (top / name).parent.mkdir(exist_ok=True)
        (top / name).write_bytes(b"%d\n" % index)
        contents[name] = b"%d\n" % index
    (top / "link").symlink_to("-rf")
    return contents


def _snapshot(top: Path) -> dict[str, str]:
    """Every entry under ``top``: a file's content, a link's target, a directory's mark."""
    found: dict[str, str] = {}
    for path in sorted(top.rglob("*")):
        key = str(path.relative_to(top))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = path.read_bytes().hex()
    return found


def test_a_tree_with_hostile_names_is_pushed_to_a_host_without_sftp_and_skipped_again(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    home, remote, work = tmp_path / "home", tmp_path / "remote", tmp_path / "work"
    source = tmp_path / "src" / "tree"
    _tree(source)
    (source / "sub").chmod(0o750)
    work.mkdir()
    for attempt in (1, 2):
        done = subprocess.run(
            [*HERD, "--home", str(home), "-i", str(odd_hosts.inventory), "push", "nosftp",
             str(source), f"{remote}/", "--mkdir", "--json"],
            cwd=work, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        row = rows(done.stdout)["nosftp"]
        files = row["files"]
        assert isinstance(files, list) and len(files) == len(HOSTILE) + 2 + MANY
        assert all(f["skipped"] is (attempt == 2) for f in files), files
    assert _snapshot(remote / "tree") == _snapshot(source)
    assert (remote / "tree" / "sub").stat().st_mode & 0o777 == 0o750
    assert os.stat(remote / "tree" / "a space").st_mtime == int(
        os.stat(source / "a space").st_mtime
    )
    # nothing landed outside the target, and no name ran as code
    assert sorted(p.name for p in remote.iterdir()) == ["tree"]
    assert not (work / "pwned").exists() and not (remote / "tree" / "pwned").exists()
    assert not any(".herd-" in p.name for p in remote.rglob("*"))


def test_a_push_over_commands_replaces_links_and_refuses_a_directory_at_a_final_name(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    home, remote, outside = tmp_path / "home", tmp_path / "remote", tmp_path / "outside"
    remote.mkdir()
    outside.mkdir()
    (outside / "keep").write_text("outside\n")
    (remote / "app.conf").symlink_to(outside / "keep")  # a link at the final name
    (remote / "sub").symlink_to(outside)  # a link where the source has a directory
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "app.conf").write_text("new\n")
    (source / "sub" / "keep").write_text("inside\n")
    done = herd(home, odd_hosts.inventory, "push", "nosftp", f"{source}/", f"{remote}/", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (outside / "keep").read_text() == "outside\n"  # never written through
    assert not (remote / "app.conf").is_symlink() and not (remote / "sub").is_symlink()
    assert (remote / "sub" / "keep").read_text() == "inside\n"
    (source / "dir.conf").write_text("x\n")
    (remote / "dir.conf").mkdir()  # a real directory at a final name: refused
    refused = herd(home, odd_hosts.inventory, "push", "nosftp", f"{source}/", f"{remote}/",
                   "--json")  # fmt: skip
    row = rows(refused.stdout)["nosftp"]
    assert refused.returncode == 1
    assert row["status"] == "error" and "dir.conf: is a directory" in str(row["error"]), row
    assert list((remote / "dir.conf").iterdir()) == []
    assert not any(".herd-" in p.name for p in remote.rglob("*"))


def test_a_copy_whose_sha256_differs_is_reported_and_never_lands(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    (tmp_path / "app.conf").write_text("what is sent\n")
    plan = plan_push([tmp_path / "app.conf"])
    (tree,) = plan.sources
    (local,) = tree.files
    wrong = dataclasses.replace(local, sha256="0" * 64)  # not the sha256 of what is sent
    plan = dataclasses.replace(plan, sources=(dataclasses.replace(tree, files=(wrong,)),))
    result = asyncio.run(asyncio.wait_for(_push(odd_hosts, plan, f"{remote}/"), 60))
    assert result.status is Status.ERROR
    assert result.error == f"{remote}/app.conf: sha256 of the copy does not match the source"
    assert list(remote.iterdir()) == []  # nothing under the final name, no temporary file


async def _push(fleet: DropbearFleet, plan: PushPlan, dest: str) -> HostResult:
    """push_host itself on the host without SFTP, over a connection of the test's own."""
    target = fleet.host("nosftp")
    async with asyncssh.connect(
        target.address, fleet.port, username=fleet.user, client_keys=[str(fleet.client_key)],
        known_hosts=str(fleet.known_hosts),
    ) as conn:  # fmt: skip
        return await push_host(
            conn, Host(name=target.name, address=target.address), plan=plan, dest=dest,
            options=TransferOptions(), source=BlockSource(TransferOptions().block_size),
            progress=NoProgress(),
        )  # fmt: skip


def test_a_tree_with_hostile_names_is_pulled_from_a_host_without_sftp_and_skipped_again(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    home, back, work = tmp_path / "home", tmp_path / "back", tmp_path / "work"
    tree = tmp_path / "remote" / "tree"
    _tree(tree)
    work.mkdir()
    for attempt in (1, 2):
        done = subprocess.run(
            [*HERD, "--home", str(home), "-i", str(odd_hosts.inventory), "pull", "nosftp",
             str(tree), str(back), "--json"],
            cwd=work, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        files = rows(done.stdout)["nosftp"]["files"]
        assert isinstance(files, list) and len(files) == len(HOSTILE) + 2 + MANY
        assert all(f["skipped"] is (attempt == 2) for f in files), files
    landed = back / "nosftp" / tree.relative_to("/")
    assert _snapshot(landed) == _snapshot(tree)
    assert os.stat(landed / "a space").st_mtime == int(os.stat(tree / "a space").st_mtime)
    assert [p.name for p in back.iterdir()] == ["nosftp"]  # nothing outside DEST/HOST
    assert not (work / "pwned").exists() and not (landed / "pwned").exists()
    assert not any(".herd-" in p.name for p in back.rglob("*"))
    # a glob matched over the host's listing: plain names only, no dot files
    (tree / ".hidden").write_text("no\n")
    globbed = herd(home, odd_hosts.inventory, "pull", "nosftp", f"{tree}/*",
                   str(tmp_path / "glob"), "--json")  # fmt: skip
    assert globbed.returncode == 0, globbed.stdout + globbed.stderr
    got = tmp_path / "glob" / "nosftp" / tree.relative_to("/")
    assert sorted(p.name for p in got.iterdir()) == sorted([*HOSTILE, "link", "many", "sub"])
    missing = herd(home, odd_hosts.inventory, "pull", "nosftp", f"{tree}/none",
                   str(tmp_path / "glob"), "--json")  # fmt: skip
    assert rows(missing.stdout)["nosftp"]["error"] == f"{tree}/none: no such file or directory"


def test_a_host_without_sftp_or_a_hash_tool_gets_its_copies_read_back(
    busybox_userland: Userland, tmp_path: Path
) -> None:
    fleet = DropbearFleet(tmp_path / "fleet", busybox_userland, [("bare", "odd", "bare")], 12)
    fleet.up()
    try:
        home, remote, back = tmp_path / "home", tmp_path / "remote", tmp_path / "back"
        source = tmp_path / "src" / "tree"
        _tree(source)
        missing = herd(home, fleet.inventory, "run", "bare", "--", "command -v sha256sum")
        assert missing.returncode == 1  # what the host would verify with is not there
        for attempt in (1, 2):
            for verb, args in [
                ("push", [str(source), f"{remote}/", "--mkdir"]),
                ("pull", [str(remote / "tree"), str(back)]),
            ]:
                done = herd(home, fleet.inventory, verb, "bare", *args, "--json")
                assert done.returncode == 0, done.stdout + done.stderr
                files = rows(done.stdout)["bare"]["files"]
                assert isinstance(files, list) and len(files) == len(HOSTILE) + 2 + MANY
                assert all(f["skipped"] is (attempt == 2) for f in files), (verb, files)
        assert _snapshot(remote / "tree") == _snapshot(source)
        assert _snapshot(back / "bare" / remote.relative_to("/") / "tree") == _snapshot(source)
    finally:
        fleet.down()
