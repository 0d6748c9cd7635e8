"""herd push and herd pull against the real OpenSSH fleet: the everyday paths.

The fleet's hosts all run on this machine, so their "remote" files share one
filesystem; ``{host}`` in a remote path gives each host its own directory.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog
from herd.core.paths import HerdPaths
from herd.hosts.push import STALE_TEMP_SECONDS
from herd.hosts.sftp_ops import temp_name

from .conftest import Fleet, both_engines

pytestmark = pytest.mark.system


def herd(fleet: Fleet, *args: str) -> int:
    return main(["-i", str(fleet.inventory), *args])


def json_results(out: str) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {str(row["host"]): row for row in rows}


def make_site(root: Path) -> Path:
    site = root / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<h1>herd</h1>\n")
    (site / "css" / "main.css").write_text("body { color: black }\n")
    (site / "css" / "main.css").chmod(0o640)
    os.utime(site / "index.html", (1_600_000_000, 1_600_000_000))
    (site / "current").symlink_to("index.html")
    return site


def last_operation(home: Path) -> int:
    with AuditLog(HerdPaths(home).audit_db) as log:
        op_id = log.last_operation_id(("push", "pull"))
    assert op_id is not None
    return op_id


def temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".herd-" in p.name]


def test_push_sends_a_tree_and_a_file_to_every_host_and_a_rerun_skips_everything(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
) -> None:
    site = make_site(tmp_path / "local")
    (tmp_path / "local" / "motd").write_text("welcome\n")
    remote = tmp_path / "remote"
    dest = f"{remote}/{{host}}/srv/"
    args = ["push", "all", str(site), str(tmp_path / "local" / "motd"), dest, "--mkdir", "--json"]

    assert herd(lab_fleet, *args) == 0
    first = json_results(capsys.readouterr().out)
    assert set(first) == set(lab_fleet.names())
    for name, row in first.items():
        assert row["status"] == "ok", row
        assert row["skipped"] == 0
        paths = {f["path"] for f in row["files"]}  # type: ignore[attr-defined]
        srv = remote / name / "srv"
        assert paths == {
            f"{srv}/site/index.html",
            f"{srv}/site/css/main.css",
            f"{srv}/site/current",
            f"{srv}/motd",
        }
        assert (srv / "site" / "index.html").read_text() == "<h1>herd</h1>\n"
        assert (srv / "site" / "css" / "main.css").stat().st_mode & 0o777 == 0o640
        assert (srv / "site" / "index.html").stat().st_mtime == 1_600_000_000
        assert os.readlink(srv / "site" / "current") == "index.html"
    assert not temp_leftovers(remote)

    assert herd(lab_fleet, *args) == 0
    again = json_results(capsys.readouterr().out)
    for row in again.values():
        assert row["status"] == "ok"
        assert row["bytes"] == 0
        assert row["skipped"] == 4

    with AuditLog(HerdPaths(isolated_env).audit_db) as log:
        op_id = last_operation(isolated_env)
        record = log.operation(op_id)
        assert record is not None and record.kind == "push" and record.status == "ok"
        recorded = {r.host: r for r in log.host_results(op_id)}
    assert set(recorded) == set(lab_fleet.names())
    web01 = recorded["web01"]
    assert all(f.skipped for f in web01.files)
    index = next(f for f in web01.files if f.path.endswith("index.html"))
    assert index.size == 14
    assert len(index.sha256) == 64


@both_engines
def test_push_of_a_single_file_to_a_file_path_sets_the_mode_asked_for(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.conf").write_text("port = 80\n")
    (tmp_path / "remote").mkdir()
    target = tmp_path / "remote" / "app.conf.new"
    code = herd(lab_fleet, "push", "web01", str(tmp_path / "app.conf"), str(target),
                "--mode", "0600", "--no-progress")  # fmt: skip
    assert code == 0
    assert target.read_text() == "port = 80\n"
    assert target.stat().st_mode & 0o777 == 0o600
    captured = capsys.readouterr()
    assert "web01 | 1 file sent (10 B)" in captured.out
    assert "1 file sent (10 B), 0 skipped (already in place)" in captured.err
    assert "recorded as operation" in captured.err


@both_engines
def test_push_replaces_a_changed_file_and_skips_the_unchanged_one(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "etc"
    local.mkdir()
    (local / "a.conf").write_text("a = 1\n")
    (local / "b.conf").write_text("b = 1\n")
    remote = tmp_path / "remote"
    assert herd(lab_fleet, "push", "db01", str(local), f"{remote}/", "--mkdir", "--json") == 0
    capsys.readouterr()
    (local / "b.conf").write_text("b = 2, longer\n")
    assert herd(lab_fleet, "push", "db01", str(local), f"{remote}/", "--json") == 0
    (row,) = json_results(capsys.readouterr().out).values()
    by_name = {Path(str(f["path"])).name: f for f in row["files"]}  # type: ignore[attr-defined]
    assert by_name["a.conf"]["skipped"] is True
    assert by_name["b.conf"]["skipped"] is False
    assert (remote / "etc" / "b.conf").read_text() == "b = 2, longer\n"


@both_engines
def test_push_removes_what_a_push_that_died_left_behind_but_not_a_push_in_progress(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "etc"
    local.mkdir()
    (local / "app.conf").write_text("workers = 4\n")
    remote = tmp_path / "remote" / "etc"
    remote.mkdir(parents=True)
    day_ago = time.time() - STALE_TEMP_SECONDS - 60
    leftover = remote / Path(temp_name(str(remote / "app.conf"), now=day_ago)).name
    in_progress = remote / Path(temp_name(str(remote / "app.conf"))).name
    unrelated = remote / Path(temp_name(str(remote / "other.conf"), now=day_ago)).name
    for path in (leftover, in_progress, unrelated):
        path.write_text("partial")
    assert herd(lab_fleet, "push", "web03", str(local), f"{remote.parent}/", "--json") == 0
    capsys.readouterr()
    assert (remote / "app.conf").read_text() == "workers = 4\n"
    assert not leftover.exists()
    assert in_progress.exists()  # another push may still be writing it
    assert unrelated.exists()  # not a file this push was asked to send


@both_engines
def test_pull_fetches_files_dirs_and_globs_into_a_directory_per_host(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
) -> None:
    remote = tmp_path / "remote"
    for name in lab_fleet.names():
        logs = remote / name / "log"
        (logs / "app").mkdir(parents=True)
        (logs / "syslog.log").write_text(f"{name} booted\n")
        (logs / "auth.log").write_text(f"{name} login\n")
        (logs / "app" / "app.out").write_text("started\n" * 100)
        (logs / "skip.txt").write_text("not a log\n")
    fetched = tmp_path / "fetched"
    sources = [f"{remote}/{{host}}/log/*.log", f"{remote}/{{host}}/log/app"]

    assert herd(lab_fleet, "pull", "web", *sources, str(fetched), "--json") == 0
    rows = json_results(capsys.readouterr().out)
    assert set(rows) == set(lab_fleet.names("web"))
    for name, row in rows.items():
        assert row["status"] == "ok", row
        mirror = fetched / name / str(remote / name / "log").lstrip("/")
        assert (mirror / "syslog.log").read_text() == f"{name} booted\n"
        assert (mirror / "auth.log").read_text() == f"{name} login\n"
        assert (mirror / "app" / "app.out").read_text() == "started\n" * 100
        assert not (mirror / "skip.txt").exists()
        assert len(row["files"]) == 3  # type: ignore[arg-type]
    assert not temp_leftovers(fetched)

    assert herd(lab_fleet, "pull", "web", *sources, str(fetched), "--json") == 0
    for row in json_results(capsys.readouterr().out).values():
        assert row["skipped"] == 3 and row["bytes"] == 0

    with AuditLog(HerdPaths(isolated_env).audit_db) as log:
        op_id = last_operation(isolated_env)
        record = log.operation(op_id)
        assert record is not None and record.kind == "pull"
        assert {r.host for r in log.host_results(op_id)} == set(lab_fleet.names("web"))


@both_engines
def test_pull_of_several_large_files_at_once_shares_the_bytes_in_flight(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files pulled side by side each take part of one budget; none may wait holding its part."""
    remote = tmp_path / "remote"
    name = lab_fleet.names("web")[0]
    (remote / name).mkdir(parents=True)
    blobs = {f"part{i}.bin": os.urandom(1_500_000 + i) for i in range(6)}
    for file, data in blobs.items():
        (remote / name / file).write_bytes(data)
    fetched = tmp_path / "fetched"
    source = f"{remote}/{{host}}/*.bin"

    code = herd(lab_fleet, "pull", name, source, str(fetched), "--json", "--stall-timeout", "10")
    row = json_results(capsys.readouterr().out)[name]
    assert (code, row["status"]) == (0, "ok"), row
    mirror = fetched / name / str(remote / name).lstrip("/")
    assert {p.name: p.read_bytes() for p in mirror.iterdir()} == blobs


@both_engines
def test_pull_of_a_file_missing_on_one_host_fails_only_that_host(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = tmp_path / "remote"
    for name in lab_fleet.names("db"):
        (remote / name).mkdir(parents=True)
        (remote / name / "dump.sql").write_text(f"-- {name}\n")
    (remote / "db02" / "dump.sql").unlink()
    fetched = tmp_path / "fetched"
    code = herd(lab_fleet, "pull", "db", f"{remote}/{{host}}/dump.sql", str(fetched), "--json")
    assert code == 1
    rows = json_results(capsys.readouterr().out)
    assert rows["db01"]["status"] == "ok"
    assert rows["db02"]["status"] == "error"
    assert "dump.sql: no such file" in str(rows["db02"]["error"])
    assert (fetched / "db01" / str(remote / "db01" / "dump.sql").lstrip("/")).exists()
    assert not (fetched / "db02").exists() or not list((fetched / "db02").rglob("*.sql"))


@both_engines
def test_gather_output_folds_hosts_with_the_same_files(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "motd").write_text("hi\n")
    remote = tmp_path / "remote"
    remote.mkdir()
    assert herd(lab_fleet, "push", "web01,web02", str(tmp_path / "motd"), f"{remote}/", "-b") == 0
    out = capsys.readouterr().out
    # both hosts share one path, so one of them may find the other's copy already there
    assert "web0[1-2] (2)" in out or ("web01 (1)" in out and "web02 (1)" in out)
    assert f"{remote}/motd" in out


@both_engines
def test_a_host_without_sha256sum_is_verified_by_reading_back_and_out_dir_gets_each_host(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from herd.hosts import sftp_ops

    # what a host with neither sha256sum nor shasum answers (see HASH_SCRIPT)
    monkeypatch.setattr(sftp_ops, "HASH_SCRIPT", "exit 127")
    (tmp_path / "app.conf").write_text("x = 1\n")
    remote = tmp_path / "remote"
    out = tmp_path / "out"
    args = ["push", "cache", str(tmp_path / "app.conf"), f"{remote}/{{host}}/", "--mkdir",
            "-o", str(out), "--json"]  # fmt: skip
    assert herd(lab_fleet, *args) == 0
    assert herd(lab_fleet, *args) == 0
    rows = json_results(capsys.readouterr().out)  # the re-run's lines come last and win
    for name in lab_fleet.names("cache"):
        assert (remote / name / "app.conf").read_text() == "x = 1\n"
        assert rows[name]["skipped"] == 1  # the re-run compared hashes read back over SFTP
        assert (out / f"{name}.exit").read_text() == "ok\n"
        saved = json.loads((out / f"{name}.json").read_text())
        assert saved["files"][0]["path"] == f"{remote}/{name}/app.conf"


def landed(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def push_twice(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str) -> None:
    """Push twice: both runs succeed, and the second sends nothing."""
    for run in (1, 2):
        assert herd(fleet, "push", *args, "--json") == 0
        (row,) = json_results(capsys.readouterr().out).values()
        assert row["status"] == "ok", row
        if run == 2:
            assert row["bytes"] == 0, row
            assert row["skipped"] == len(row["files"]), row  # type: ignore[arg-type]


def test_push_of_a_directory_lands_where_rsync_puts_it_on_every_run(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "src" / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "a.conf").write_text("a\n")
    (tree / "sub" / "b.conf").write_text("b\n")
    remote = tmp_path / "remote"

    # src/tree lands as DEST/tree, whether DEST existed before or not (here: --mkdir)
    push_twice(lab_fleet, capsys, "web01", str(tree), f"{remote}/ts2", "--mkdir")
    assert landed(remote / "ts2") == [
        "tree", "tree/a.conf", "tree/empty", "tree/sub", "tree/sub/b.conf",
    ]  # fmt: skip

    # src/tree/ puts its contents in DEST
    push_twice(lab_fleet, capsys, "web01", f"{tree}/", f"{remote}/contents", "--mkdir")
    assert landed(remote / "contents") == ["a.conf", "empty", "sub", "sub/b.conf"]


def test_push_of_a_single_file_lands_in_a_directory_or_at_the_path_on_every_run(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    motd = tmp_path / "motd"
    motd.write_text("welcome\n")
    remote = tmp_path / "remote"
    (remote / "etc").mkdir(parents=True)

    push_twice(lab_fleet, capsys, "web02", str(motd), f"{remote}/etc")  # an existing directory
    push_twice(lab_fleet, capsys, "web02", str(motd), f"{remote}/new/", "--mkdir")  # ends in /
    push_twice(lab_fleet, capsys, "web02", str(motd), f"{remote}/motd.conf")  # else: at DEST
    assert landed(remote) == ["etc", "etc/motd", "motd.conf", "new", "new/motd"]


def test_pull_keeps_empty_directories(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = tmp_path / "remote" / "spool"
    (remote / "empty").mkdir(parents=True)
    (remote / "full" / "also-empty").mkdir(parents=True)
    (remote / "full" / "job").write_text("1\n")
    (remote / "empty").chmod(0o750)
    pulled = tmp_path / "pulled"
    assert herd(lab_fleet, "pull", "web03", str(remote), str(pulled), "--json") == 0
    capsys.readouterr()
    mirror = pulled / "web03" / str(remote).lstrip("/")
    assert landed(mirror) == ["empty", "full", "full/also-empty", "full/job"]
    assert (mirror / "empty").stat().st_mode & 0o777 == 0o750


@both_engines
def test_a_glob_pull_takes_backslashes_in_names_as_ordinary_characters(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "remote" / "log"
    (logs / "old").mkdir(parents=True)
    for name in ("app.log", "we\\ird.log", "C:\\temp.txt", ".hidden.log", "old/rotated.log"):
        (logs / name).write_text(f"{name}\n")
    fetched = tmp_path / "fetched"
    mirror = fetched / "db01" / str(logs).lstrip("/")
    for pattern, expected in [
        ("*.log", {"app.log", "we\\ird.log"}),  # as sh: a leading dot only by a dot
        ("we\\ird.*", {"we\\ird.log"}),  # a backslash in the pattern is one too
        ("C:\\*", {"C:\\temp.txt"}),
        ("*/rotated.log", {"old/rotated.log"}),
        (".*", {".hidden.log"}),
    ]:
        code = herd(lab_fleet, "pull", "db01", f"{logs}/{pattern}", str(fetched), "--json")
        row = json_results(capsys.readouterr().out)["db01"]
        assert (code, row["status"]) == (0, "ok"), (pattern, row)
        paths = {str(Path(str(f["path"])).relative_to(logs)) for f in row["files"]}  # type: ignore[attr-defined]
        assert paths == expected, pattern
        for name in expected:
            assert (mirror / name).read_text() == f"{name}\n"
    code = herd(lab_fleet, "pull", "db01", f"{logs}/*.conf", str(fetched), "--json")
    row = json_results(capsys.readouterr().out)["db01"]
    assert (code, row["error"]) == (1, f"{logs}/*.conf: no match")
    assert not temp_leftovers(fetched)
