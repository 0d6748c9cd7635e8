"""The gateway's side of a push cache: files checked against the plan, and removal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from herd.errors import SourceError
from herd.hosts.gateway_cache import CACHE_PREFIX, check_cache, remove_cache
from herd.hosts.transfer import PushJob
from herd.hosts.transfer_plan import TransferOptions, plan_push

pytestmark = pytest.mark.timeout(10)


def _cached(tmp_path: Path) -> tuple[Path, PushJob]:
    """A push of one file, its plan pointing into a cache that holds it under its sha256."""
    source = tmp_path / "app.conf"
    source.write_text("port = 80\n")
    plan = plan_push([source])
    cache = tmp_path / f"{CACHE_PREFIX}abc"
    cache.mkdir()
    file = plan.sources[0].files[0]
    (cache / file.sha256).write_bytes(source.read_bytes())
    tree = replace(plan.sources[0], files=(replace(file, path=cache / file.sha256),))
    return cache, PushJob(replace(plan, sources=(tree,)), "/srv/", TransferOptions())


def test_a_cache_whose_files_match_their_sha256_passes(tmp_path: Path) -> None:
    cache, job = _cached(tmp_path)
    check_cache(job, str(cache))


def test_a_file_that_arrived_changed_is_refused(tmp_path: Path) -> None:
    cache, job = _cached(tmp_path)
    next(cache.iterdir()).write_text("port = 81\n")
    with pytest.raises(SourceError, match="arrived with sha256"):
        check_cache(job, str(cache))


def test_a_file_outside_the_cache_or_a_directory_not_named_as_one_is_refused(
    tmp_path: Path,
) -> None:
    _, job = _cached(tmp_path)
    with pytest.raises(SourceError, match="not a herd gateway cache"):
        check_cache(job, str(tmp_path))
    other = tmp_path / f"{CACHE_PREFIX}other"
    other.mkdir()
    with pytest.raises(SourceError, match="outside the cache"):
        check_cache(job, str(other))


def test_only_a_directory_named_as_a_cache_is_removed(tmp_path: Path) -> None:
    cache, _ = _cached(tmp_path)
    remove_cache(str(tmp_path))
    assert cache.exists()
    remove_cache(str(cache))
    assert not cache.exists()
