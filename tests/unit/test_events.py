"""Events are plain data: every one survives a JSON line and back, unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herd.core.events import (
    BatchStarted,
    BytesExpected,
    BytesMoved,
    Event,
    EventError,
    HostFinished,
    HostOutput,
    HostStarted,
    OperationFinished,
    OperationStarted,
    decode,
    encode,
)
from herd.core.model import FileRecord, HostResult, Output, Status

names = st.text(min_size=1, max_size=12)
texts = st.text(max_size=40)
counts = st.integers(min_value=0, max_value=2**53)

outputs = st.builds(
    Output,
    data=st.binary(max_size=64),
    total=counts,
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
)
files = st.builds(FileRecord, path=texts, size=counts, sha256=texts, skipped=st.booleans())
results = st.builds(
    HostResult,
    host=names,
    address=names,
    status=st.sampled_from(list(Status)),
    exit_status=st.none() | st.integers(-255, 255),
    stdout=outputs,
    stderr=outputs,
    duration=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    error=texts,
    files=st.lists(files, max_size=3).map(tuple),
    signal=st.none() | st.sampled_from(["KILL", "TERM"]),
    batch=st.integers(0, 50),
)
events: st.SearchStrategy[Event] = st.one_of(
    st.builds(OperationStarted, kind=names, hosts=st.lists(names, max_size=5).map(tuple),
              op_id=st.none() | counts, pattern=st.none() | texts, command=st.none() | texts),
    st.builds(HostStarted, host=names, batch=st.integers(0, 50)),
    st.builds(HostOutput, host=names, stream=st.sampled_from(["stdout", "stderr"]),
              data=st.binary(max_size=200)),
    st.builds(BytesExpected, host=names, nbytes=counts),
    st.builds(BytesMoved, host=names, nbytes=counts),
    st.builds(HostFinished, result=results),
    st.builds(BatchStarted, index=st.integers(1, 50), count=st.integers(1, 50),
              hosts=st.lists(names, max_size=5).map(tuple)),
    st.builds(OperationFinished, exit_code=st.integers(0, 255),
              elapsed=st.floats(min_value=0, max_value=1e6, allow_nan=False),
              interrupted=st.booleans(), stop_signal=st.integers(0, 64)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(events)
def test_every_event_comes_back_from_its_json_line_unchanged(event: Event) -> None:
    line = encode(event)
    assert "\n" not in line
    assert decode(line) == event


@pytest.mark.parametrize(
    "line", ["", "{}", '{"event": "no_such"}', "[1, 2]", '{"event": "bytes_moved"}']
)
def test_a_line_that_is_not_an_event_is_refused_plainly(line: str) -> None:
    with pytest.raises(EventError, match="not a herd event"):
        decode(line)
