"""The open-files arithmetic: how much fan-out fits under RLIMIT_NOFILE."""

from __future__ import annotations

import resource

import pytest

from herd.cli.fleet_options import forks_within_open_files
from herd.cli.run import run_open_files
from herd.core.open_files import RESERVE, SSH_HOST, Fit, fit, open_now, raise_soft_limit
from herd.operation.fanout import PARKING_PER_FORK


def test_everything_fits_under_a_high_limit() -> None:
    found = fit(2000, 6, limit=1_048_576, in_use=10)
    assert (found.count, found.lowered) == (2000, False)


def test_a_low_limit_lowers_the_count_to_what_its_descriptors_allow() -> None:
    # 48 descriptors, 6 in use, 32 kept back: 10 left, 6 per item -> 1
    assert fit(60, 6, limit=48, in_use=6, reserve=32) == Fit(1, True, 48)


def test_the_room_left_is_divided_by_what_each_item_costs() -> None:
    found = fit(500, 5, limit=1024, in_use=24, reserve=RESERVE)
    assert (found.count, found.lowered, found.limit) == ((1024 - 24 - RESERVE) // 5, True, 1024)


def test_at_least_one_always_fits() -> None:
    found = fit(60, 6, limit=20, in_use=30)
    assert (found.count, found.lowered) == (1, True)


def test_exactly_enough_room_is_not_lowered() -> None:
    assert not fit(10, 4, limit=100, in_use=28, reserve=32).lowered
    assert fit(11, 4, limit=100, in_use=28, reserve=32).lowered


@pytest.mark.parametrize(("wanted", "per_item"), [(0, 1), (1, 0)])
def test_nonsense_counts_are_refused(wanted: int, per_item: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fit(wanted, per_item, limit=100, in_use=0)


def test_a_run_host_costs_its_ssh_sockets_plus_its_stdin_and_output_files() -> None:
    assert run_open_files(False, False) == SSH_HOST
    assert run_open_files(True, False) == SSH_HOST + 1
    assert run_open_files(True, True) == SSH_HOST + 3


def test_forks_that_fit_are_kept_and_the_soft_limit_is_raised_to_the_hard_one() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_soft_limit() == hard or hard == resource.RLIM_INFINITY
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    per_fork = SSH_HOST + PARKING_PER_FORK
    room = (hard - open_now() - RESERVE) // per_fork
    assert room > 10, "this machine's hard limit is too low for the test"
    assert forks_within_open_files(5, 100, SSH_HOST) == 5
    # more forks than hosts: only the hosts count, and the forks stay as asked
    assert forks_within_open_files(10_000_000, 3, SSH_HOST) == 10_000_000
