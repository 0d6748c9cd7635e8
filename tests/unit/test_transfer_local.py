"""The local half of push and pull: walking sources, the shared block reader, hash parsing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path, PurePosixPath

import pytest
from asyncssh import ConnectionLost, SFTPLimits

from herd.core.events import (
    BytesExpected,
    BytesMoved,
    HostFinished,
    OperationFinished,
    OperationStarted,
)
from herd.core.model import FileRecord, HostResult, Status
from herd.errors import SourceError
from herd.hosts.local_tree import LocalTree, RefusedName, remote_parts
from herd.hosts.push import remote_dest
from herd.hosts.sftp_ops import (
    ByteBudget,
    describe,
    is_temp_name,
    parse_sha256_lines,
    request_sizes,
    stale_temp_of,
    temp_name,
)
from herd.hosts.transfer_plan import (
    MAX_REQUESTS,
    MIN_REQUESTS,
    PROCESS_IN_FLIGHT,
    plan_push,
    requests_per_host,
)
from herd.hosts.transfer_stream import BlockSource, SourceChanged
from herd.hosts.workers import (
    HOSTS_PER_WORKER,
    RUN_HOSTS_PER_WORKER,
    push_payload,
    worker_count,
)
from herd.ui.transfer import describe_files, transfer_json


def make_tree(root: Path) -> Path:
    tree = root / "site"
    (tree / "css").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>hi</h1>\n")
    (tree / "css" / "main.css").write_text("body {}\n")
    (tree / "css" / "main.css").chmod(0o640)
    (tree / "current").symlink_to("index.html")
    return tree


def test_plan_walks_a_tree_with_hashes_modes_and_links_kept_as_links(tmp_path: Path) -> None:
    plan = plan_push([make_tree(tmp_path)])
    (tree,) = plan.sources
    assert tree.name == "site" and tree.is_dir
    assert [str(d.relative) for d in tree.dirs] == [".", "css"]
    files = {str(f.relative): f for f in tree.files}
    assert set(files) == {"index.html", "css/main.css"}
    assert files["css/main.css"].mode == 0o640
    assert files["index.html"].sha256 == hashlib.sha256(b"<h1>hi</h1>\n").hexdigest()
    assert [(str(k.relative), k.target) for k in tree.links] == [("current", "index.html")]
    assert plan.total_bytes == len("<h1>hi</h1>\n") + len("body {}\n")


def test_plan_with_follow_links_sends_the_file_a_link_points_to(tmp_path: Path) -> None:
    (tree,) = plan_push([make_tree(tmp_path)], follow_symlinks=True).sources
    assert not tree.links
    assert {str(f.relative) for f in tree.files} == {"index.html", "css/main.css", "current"}


def test_a_lone_file_lands_under_its_own_name(tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("hello\n")
    (tree,) = plan_push([tmp_path / "motd"]).sources
    assert tree.name == "motd" and not tree.is_dir
    assert tree.files[0].relative == PurePosixPath(".")


def test_a_missing_source_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.conf: no such file"):
        plan_push([tmp_path / "nope.conf"])


def test_an_unreadable_source_is_bad_input_even_for_root() -> None:
    # /proc/self/mem is a regular file that fails with EIO at offset 0, whoever reads it
    with pytest.raises(SourceError, match="mem: cannot read"):
        plan_push([Path("/proc/self/mem")])


def test_a_trailing_slash_or_a_dot_sends_a_directory_s_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_tree(tmp_path)
    for given in (f"{site}/", f"{site}/."):
        (tree,) = plan_push([given]).sources
        assert tree.contents and tree.is_dir
    (named,) = plan_push([str(site)]).sources
    assert not named.contents and named.name == "site"
    monkeypatch.chdir(site)
    (here,) = plan_push(["."]).sources
    assert here.contents
    with pytest.raises(SourceError, match=r"index\.html/: not a directory"):
        plan_push([f"{site}/index.html/"])


def test_contents_of_two_sources_that_would_collide_are_refused(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub / "conf").mkdir(parents=True)
        (tmp_path / sub / "conf" / f"{sub}.conf").write_text(sub)
    merged = plan_push([f"{tmp_path / 'a'}/", f"{tmp_path / 'b'}/"])  # directories merge
    assert [t.contents for t in merged.sources] == [True, True]
    (tmp_path / "b" / "conf" / "a.conf").write_text("b's")
    with pytest.raises(SourceError, match=r"same name 'conf/a\.conf'"):
        plan_push([f"{tmp_path / 'a'}/", f"{tmp_path / 'b'}/"])


def test_two_sources_with_the_same_name_are_refused(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "app.conf").write_text(sub)
    with pytest.raises(SourceError, match=r"same name 'app\.conf'"):
        plan_push([tmp_path / "a" / "app.conf", tmp_path / "b" / "app.conf"])


def test_a_link_loop_under_follow_links_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "loop").symlink_to("..")
    with pytest.raises(SourceError, match="link loop"):
        plan_push([tmp_path / "d"], follow_symlinks=True)


def test_each_block_is_read_from_disk_once_for_many_hosts(tmp_path: Path) -> None:
    data = os.urandom(10 * 4096 + 17)
    (tmp_path / "big").write_bytes(data)
    (plan_file,) = plan_push([tmp_path / "big"]).sources[0].files
    source = BlockSource(4096, budget=1 << 20)

    async def host() -> bytes:
        blocks = [await source.block(plan_file, i) for i in range(source.blocks(plan_file))]
        return b"".join(blocks)

    async def hosts() -> list[bytes]:
        return await asyncio.gather(*(host() for _ in range(20)))

    assert all(copy == data for copy in asyncio.run(hosts()))
    assert source.stats.reads == 11
    assert source.stats.bytes_read == len(data)


def test_the_block_cache_never_holds_more_than_its_budget(tmp_path: Path) -> None:
    data = os.urandom(64 * 1024)
    (tmp_path / "big").write_bytes(data)
    (plan_file,) = plan_push([tmp_path / "big"]).sources[0].files
    source = BlockSource(1024, budget=8 * 1024)

    async def read_all() -> bytes:
        return b"".join([await source.block(plan_file, i) for i in range(64)])

    async def two_hosts_far_apart() -> tuple[bytes, bytes]:
        first = await read_all()
        return first, await read_all()  # the second host is 64 blocks behind: re-reads

    first, second = asyncio.run(two_hosts_far_apart())
    assert first == second == data
    assert source.stats.peak_cached <= 8 * 1024
    assert source.stats.reads == 128


def test_a_source_that_shrank_since_planning_is_reported(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"x" * 5000)
    (plan_file,) = plan_push([tmp_path / "log"]).sources[0].files
    (tmp_path / "log").write_bytes(b"x" * 10)
    source = BlockSource(4096)
    with pytest.raises(SourceChanged, match="changed size"):
        asyncio.run(source.block(plan_file, 1))


def test_sha256sum_output_is_parsed_including_escaped_names() -> None:
    plain = "a" * 64
    odd = "b" * 64
    output = f"{plain}  /srv/app.conf\n\\{odd}  /srv/new\\nline\\\\x\n".encode()
    assert parse_sha256_lines(output) == {"/srv/app.conf": plain, "/srv/new\nline\\x": odd}


def test_openssl_dgst_output_is_parsed_too() -> None:
    digest = "c" * 64
    assert parse_sha256_lines(f"{digest} */etc/app.conf\n".encode()) == {"/etc/app.conf": digest}


def test_temporary_names_sit_beside_the_final_name_and_are_recognisable() -> None:
    temp = temp_name("/etc/app/app.conf")
    head, name = temp.rsplit("/", 1)
    assert head == "/etc/app"
    assert name.startswith(".app.conf.herd-") and is_temp_name(name)
    assert temp != temp_name("/etc/app/app.conf")
    assert not is_temp_name("app.conf")


def test_a_temporary_name_tells_which_file_it_was_for_once_it_is_old_enough() -> None:
    old = temp_name("/srv/www/index.html", now=1_000_000).rsplit("/", 1)[1]
    assert stale_temp_of(old, older_than=1_000_001) == "index.html"
    assert stale_temp_of(old, older_than=1_000_000) is None  # still young enough to be in use
    dotted = temp_name("/srv/.env.herd-x", now=5).rsplit("/", 1)[1]
    assert stale_temp_of(dotted, older_than=10) == ".env.herd-x"
    for other in ("index.html", ".index.html.swp", ".index.html.herd-zz-1.tmp", ".x.herd-.tmp"):
        assert stale_temp_of(other, older_than=2**40) is None


def test_remote_destinations_resolve_against_the_login_directory() -> None:
    assert remote_dest("/root", "conf/") == ("/root/conf", True)
    assert remote_dest("/root", "~/x") == ("/root/x", False)
    assert remote_dest("/root", "/etc//app/../app") == ("/etc/app", False)


def test_pulled_files_land_under_the_host_directory_by_plain_names_only() -> None:
    assert remote_parts("/var/log/syslog") == ("var", "log", "syslog")
    assert remote_parts("/") == ()
    for hostile in ("/../etc/x", "/var/./log", "var/log", "/var//log", "/var/lo\0g", "../x"):
        with pytest.raises(RefusedName):
            remote_parts(hostile)


def test_a_pull_replaces_a_stale_local_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "pulled"
    (dest / "web01" / "srv").mkdir(parents=True)
    (dest / "web01" / "srv" / "link").symlink_to(outside)
    tree = LocalTree(dest, "web01")
    try:
        fd, temp = tree.new_temp(("srv", "link", "authorized_keys"))
        os.write(fd, b"ssh-ed25519 AAAA\n")
        os.close(fd)
        tree.land(("srv", "link", "authorized_keys"), temp)
    finally:
        tree.close()
    assert list(outside.iterdir()) == []
    landed = dest / "web01" / "srv" / "link"
    assert landed.is_dir() and not landed.is_symlink()
    assert (landed / "authorized_keys").read_bytes() == b"ssh-ed25519 AAAA\n"


def test_a_pulled_file_or_link_replaces_a_local_link_under_its_name(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    dest = tmp_path / "pulled"
    (dest / "web01").mkdir(parents=True)
    (dest / "web01" / "motd").symlink_to(target)
    (dest / "web01" / "current").symlink_to(target)
    tree = LocalTree(dest, "web01")
    try:
        assert tree.open_if_size(("motd",), len("keep me\n")) is None  # a link is not a copy
        fd, temp = tree.new_temp(("motd",))
        os.write(fd, b"welcome\n")
        os.close(fd)
        tree.land(("motd",), temp)
        assert tree.place_link(("current",), "releases/42") is True
        assert tree.place_link(("current",), "releases/42") is False  # already that link
    finally:
        tree.close()
    assert target.read_text() == "keep me\n"
    assert (dest / "web01" / "motd").read_text() == "welcome\n"
    assert not (dest / "web01" / "motd").is_symlink()
    assert os.readlink(dest / "web01" / "current") == "releases/42"


def test_a_host_directory_that_is_a_link_is_refused_but_dest_dir_may_be_one(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    dest = tmp_path / "pulled"
    dest.symlink_to(real)  # the operator's choice: followed
    LocalTree(dest, "web01").make_dir(("etc",))
    assert (real / "web01" / "etc").is_dir()
    (real / "web02").symlink_to(tmp_path)  # not made by herd: never followed
    tree = LocalTree(dest, "web02")
    with pytest.raises(NotADirectoryError, match="web02: not a directory"):
        tree.make_dir(("etc",))
    assert not (tmp_path / "etc").exists()


def test_transfer_json_adds_files_bytes_and_skipped() -> None:
    result = HostResult(
        host="web01",
        address="10.0.0.1",
        status=Status.OK,
        files=(FileRecord("/a", 10, "0" * 64), FileRecord("/b", 5, "1" * 64, skipped=True)),
    )
    data = transfer_json(result)
    assert data["bytes"] == 10 and data["skipped"] == 1
    assert data["files"] == [
        {"path": "/a", "size": 10, "sha256": "0" * 64, "skipped": False},
        {"path": "/b", "size": 5, "sha256": "1" * 64, "skipped": True},
    ]
    assert {"host", "address", "status", "exit_status", "error"} <= set(data)
    assert describe_files(result, "sent") == "1 file sent (10 B), 1 skipped"


def test_the_progress_bar_counts_bytes_and_hosts_and_drops_what_a_failed_host_never_sent() -> None:
    import io

    from herd.ui.console import Printer
    from herd.ui.transfer import TransferProgressBar

    bar = TransferProgressBar(Printer(io.StringIO(), terminal=True), "push")
    bar.handle(OperationStarted("push", ("web01", "web02")))
    try:
        for event in (
            BytesExpected("web01", 100),
            BytesExpected("web02", 100),
            BytesMoved("web01", 100),
            BytesMoved("web02", 30),
            HostFinished(HostResult("web01", "10.0.0.1", Status.OK)),
            HostFinished(HostResult("web02", "10.0.0.2", Status.ERROR, error="disk full")),
        ):
            bar.handle(event)
        assert bar._progress is not None
        (task,) = bar._progress.tasks
        assert (task.completed, task.total) == (130, 130)
        assert task.fields["hosts"] == "hosts 2/2 done, [red]1 failed[/]"
    finally:
        bar.handle(OperationFinished(exit_code=1, elapsed=1.0))
    assert bar._progress is None


def test_the_progress_bar_draws_nothing_off_a_terminal() -> None:
    import io

    from herd.ui.console import Printer
    from herd.ui.transfer import TransferProgressBar

    stream = io.StringIO()
    bar = TransferProgressBar(Printer(stream, terminal=False), "pull")
    for event in (
        OperationStarted("pull", ()),
        BytesExpected("web01", 10),
        BytesMoved("web01", 10),
        OperationFinished(exit_code=0, elapsed=0.1),
    ):
        bar.handle(event)
    assert stream.getvalue() == ""


def test_sftp_requests_are_as_large_as_the_server_announces_up_to_the_block() -> None:
    block = 255 * 1024
    assert request_sizes(SFTPLimits(0, 261120, 261120, 0), block) == (261120, 261120)  # OpenSSH
    assert request_sizes(SFTPLimits(0, 65536, 32768, 0), block) == (65536, 32768)
    assert request_sizes(SFTPLimits(0, 16384, 16384, 0), block) == (131072, 131072)  # untold
    assert request_sizes(SFTPLimits(0, 0, 0, 0), block) == (131072, 131072)
    assert request_sizes(SFTPLimits(0, 261120, 261120, 0), 4096) == (4096, 4096)


def test_workers_by_default_only_where_they_pay() -> None:
    cores = len(os.sched_getaffinity(0))
    big = 1 << 40
    assert worker_count(None, 3, big) == 0  # a few hosts: herd's own process
    config = push_payload(10_000, 3, 80)  # three config files to 80 hosts: not worth starting
    assert worker_count(None, 80, config) == 0
    tree = push_payload(4_500_000, 1000, 50)  # a thousand small files: many round trips
    assert worker_count(None, 50, tree) == worker_count(None, 50, big)
    expected = min(cores, 500 // HOSTS_PER_WORKER)
    assert worker_count(None, 500, big) == (expected if expected >= 2 else 0)
    assert worker_count(None, 500, None) == (expected if expected >= 2 else 0)  # pull: unknown
    assert worker_count(3, 500, 1) == 3  # --workers: as asked
    assert worker_count(8, 2, big) == 2  # never more workers than hosts
    assert worker_count(0, 500, big) == 0


def test_hosts_share_a_process_s_requests_in_flight_within_bounds() -> None:
    block = 255 * 1024
    assert requests_per_host(1, block) == MAX_REQUESTS == 4
    assert requests_per_host(16, block) == 4
    assert requests_per_host(20, block) == 3
    assert requests_per_host(25, block) == MIN_REQUESTS  # a worker's share of 50 hosts
    assert requests_per_host(1000, block) == MIN_REQUESTS  # never fewer than two
    counts = [requests_per_host(n, block) for n in range(1, 200)]
    assert counts == sorted(counts, reverse=True)
    crowd = PROCESS_IN_FLIGHT // (MIN_REQUESTS * block)  # past this many, each has the minimum
    held = [n * requests_per_host(n, block) * block for n in range(1, crowd + 1)]
    assert max(held) <= PROCESS_IN_FLIGHT
    assert requests_per_host(150, 32 * 1024) == 3  # smaller blocks: more of them


def test_byte_budget_lets_small_requests_share_and_a_big_one_go_alone() -> None:
    async def main() -> None:
        budget = ByteBudget(100)
        for _ in range(10):  # ten small requests fit together
            await budget.take(10)
        big = asyncio.ensure_future(budget.take(60))
        small = asyncio.ensure_future(budget.take(5))  # first come, first served: after big
        await asyncio.sleep(0)
        assert not big.done() and not small.done()
        for _ in range(6):
            budget.give(10)  # 40 in use: 60 more fit
        await asyncio.sleep(0)
        assert big.done() and not small.done()  # 100 in use: 5 more do not
        budget.give(60)
        await asyncio.sleep(0)
        assert small.done()
        huge = asyncio.ensure_future(budget.take(1000))  # larger than the budget: waits for empty
        await asyncio.sleep(0)
        assert not huge.done()
        huge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await huge
        for _ in range(4):
            budget.give(10)
        budget.give(5)
        async with asyncio.timeout(1):
            await budget.take(1000)  # alone it goes; the cancelled wait left nothing behind

    asyncio.run(main())


def test_a_lost_connection_reads_so_once_with_any_detail_the_error_adds() -> None:
    assert describe(ConnectionLost("Connection lost")) == "connection lost"
    assert describe(ConnectionResetError("reset by peer")) == "connection lost: reset by peer"


def test_a_run_takes_workers_by_the_same_rule_with_more_hosts_each() -> None:
    cores = len(os.sched_getaffinity(0))
    per = RUN_HOSTS_PER_WORKER
    assert worker_count(None, 8, per_worker=per) == 0  # the lab's 8 hosts: one process
    assert worker_count(None, 2 * per - 1, per_worker=per) == 0  # not two workers' worth
    expected = min(cores, 10_000 // per)
    assert worker_count(None, 10_000, per_worker=per) == (expected if expected >= 2 else 0)
    assert worker_count(2, 8, per_worker=per) == 2  # --workers: as asked
    assert worker_count(0, 10_000, per_worker=per) == 0
