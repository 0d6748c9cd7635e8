"""Rollout arithmetic: batches cover every host once, in order; the threshold; the pick."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herd.errors import UsageError
from herd.operation.rollout import Threshold, batch_sizes, pick, split_batches

sizes = st.lists(
    st.one_of(st.integers(1, 50).map(str), st.integers(1, 100).map(lambda n: f"{n}%")),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(sizes, st.integers(0, 500))
def test_batches_cover_every_host_exactly_once_in_order(spec: list[str], total: int) -> None:
    hosts = list(range(total))
    batch_list = batch_sizes(",".join(spec), total)
    assert sum(batch_list) == total and all(size >= 1 for size in batch_list)
    cut = split_batches(hosts, batch_list)
    assert [h for batch in cut for h in batch] == hosts


@settings(max_examples=200, deadline=None)
@given(sizes, st.integers(1, 500))
def test_each_batch_is_its_size_and_the_last_size_repeats(spec: list[str], total: int) -> None:
    batch_list = batch_sizes(",".join(spec), total)
    wanted = [max(1, total * int(s[:-1]) // 100) if s.endswith("%") else int(s) for s in spec]
    for index, size in enumerate(batch_list[:-1]):  # all but the last are full
        assert size == wanted[min(index, len(wanted) - 1)]


def test_ansibles_serial_example_reads_the_same() -> None:
    assert batch_sizes("1,10%,50%", 30) == [1, 3, 15, 11]


@pytest.mark.parametrize("spec", ["", "0", "x", "101%", "1,,2", "-1"])
def test_a_bad_batch_spec_is_bad_usage(spec: str) -> None:
    with pytest.raises(UsageError):
        batch_sizes(spec, 10)


def test_the_threshold_is_crossed_only_by_more_failures_than_allowed() -> None:
    assert not Threshold.parse("2", 30).crossed(2)
    assert Threshold.parse("2", 30).crossed(3)
    assert not Threshold.parse("10%", 30).crossed(3)  # 10% of 30 is 3: three are allowed
    assert Threshold.parse("10%", 30).crossed(4)
    assert Threshold.parse("0", 5).crossed(1)


def test_pick_chooses_distinct_hosts_and_keeps_their_order() -> None:
    hosts = [f"h{i:02d}" for i in range(30)]
    chosen = pick(hosts, 5, random.Random(7))
    assert len(set(chosen)) == 5 and chosen == sorted(chosen)
    assert pick(hosts[:3], 10) == hosts[:3]
