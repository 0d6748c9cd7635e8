"""The FTP server's pieces that need no network: listing formats, address parsing, guards."""

from __future__ import annotations

import os
import threading

import pytest

from herd.ftp.commands_transfer import _to_crlf
from herd.ftp.datachannel import ActiveTarget, DataRefused, parse_eprt, parse_port, same_address
from herd.ftp.listing import facts_line, list_line, mdtm, parse_mdtm
from herd.ftp.quota import QuotaAccount, QuotaBook
from herd.ftp.serving import LoginGuard
from herd.ftp.session import _strip_telnet


class _Store:
    def __init__(self, used: int | None = None) -> None:
        self.used = used
        self.saved: list[int] = []

    def usage(self, name: str) -> int | None:
        return self.used

    def set_usage(self, name: str, used: int) -> None:
        self.saved.append(used)


def _stat(size: int, mtime: float, mode: int = 0o100644) -> os.stat_result:
    return os.stat_result((mode, 42, 7, 1, 0, 0, size, mtime, mtime, mtime))


def test_list_line_is_ls_l_with_english_months_in_utc() -> None:
    when = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    line = list_line("report.txt", _stat(1234, when), "alice", now=when + 60)
    assert line.split() == [
        "-rw-r--r--",
        "1",
        "alice",
        "alice",
        "1234",
        "Nov",
        "14",
        "22:13",
        "report.txt",
    ]
    old = list_line("old.txt", _stat(5, when), "alice", now=when + 400 * 86400)
    assert old.split()[5:8] == ["Nov", "14", "2023"]


def test_facts_line_follows_rfc_3659() -> None:
    info = _stat(10, 1_700_000_000.0)
    line = facts_line("a b.txt", info, frozenset({"read", "delete"}))
    facts, name = line.split(" ", 1)
    assert name == "a b.txt"
    assert facts.split(";")[:4] == ["type=file", "size=10", "modify=20231114221320", "perm=rd"]
    directory = facts_line("d", _stat(0, 0, 0o40755), frozenset({"list", "mkdir"}))
    assert directory.startswith("type=dir;") and "perm=elm;" in directory


def test_mdtm_round_trips() -> None:
    assert parse_mdtm(mdtm(1_700_000_000)) == 1_700_000_000
    with pytest.raises(ValueError):
        parse_mdtm("2023111422")


def test_port_and_eprt_arguments_parse() -> None:
    assert parse_port("127,0,0,1,4,1") == ("127.0.0.1", 1025)
    assert parse_eprt("|1|127.0.0.1|2121|") == ("127.0.0.1", 2121)
    assert parse_eprt("|2|::1|2121|") == ("::1", 2121)
    for bad in ("1,2,3", "256,0,0,1,1,1", "a,b,c,d,e,f"):
        with pytest.raises(DataRefused) as refused:
            parse_port(bad)
        assert refused.value.code == 501
    with pytest.raises(DataRefused) as refused:
        parse_eprt("|3|x|1|")
    assert refused.value.code == 522


def test_active_target_refuses_other_hosts_and_low_ports() -> None:
    with pytest.raises(DataRefused) as foreign:
        ActiveTarget("10.1.2.3", 5000, "127.0.0.1")
    assert foreign.value.code == 504
    with pytest.raises(DataRefused) as low:
        ActiveTarget("127.0.0.1", 80, "127.0.0.1")
    assert low.value.code == 504
    assert same_address("::ffff:127.0.0.1", "127.0.0.1")


def test_login_guard_locks_an_address_after_n_failures_in_the_window() -> None:
    now = [1000.0]
    guard = LoginGuard(failures=3, window=60.0, clock=lambda: now[0])
    guard.failed("10.0.0.1")
    now[0] += 61  # the first failure falls out of the window
    guard.failed("10.0.0.1")
    guard.failed("10.0.0.1")
    assert not guard.locked_out("10.0.0.1")
    guard.failed("10.0.0.1")
    assert guard.locked_out("10.0.0.1")
    assert not guard.locked_out("10.0.0.2")
    now[0] += 59
    assert guard.locked_out("10.0.0.1")
    now[0] += 2
    assert not guard.locked_out("10.0.0.1")


def test_quota_charges_concurrently_never_pass_the_limit() -> None:
    account = QuotaAccount("alice", 10_000, 0, _Store())
    granted: list[int] = []

    def grab() -> None:
        for _ in range(100):
            granted.append(account.charge(7))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == account.used <= 10_000
    assert account.charge(5) == 0 or account.used <= 10_000


def test_quota_book_measures_the_home_once_when_no_usage_is_known() -> None:
    store = _Store(used=None)
    book = QuotaBook(store)
    calls: list[int] = []

    def measure() -> int:
        calls.append(1)
        return 500

    account = book.account("alice", 1000, measure)
    assert account.used == 500 and store.saved == [500]
    assert book.account("alice", 2000, measure) is account
    assert account.limit == 2000 and len(calls) == 1
    account.credit(200)
    account.persist()
    assert store.saved[-1] == 300


def test_telnet_interrupt_bytes_before_abor_are_dropped() -> None:
    assert _strip_telnet(b"\xff\xf4\xff\xf2ABOR") == b"ABOR"
    assert _strip_telnet(b"NOOP") == b"NOOP"


def test_ascii_conversion_turns_bare_lf_into_crlf_across_chunks() -> None:
    assert _to_crlf(b"a\nb\r\nc", b"") == b"a\r\nb\r\nc"
    assert _to_crlf(b"\nrest\n", b"\r") == b"\nrest\r\n"  # CRLF split between two reads
    assert _to_crlf(b"\nrest", b"x") == b"\r\nrest"
