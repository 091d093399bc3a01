"""Repeated log lines (``logthrottle.py``): the first in full, the rest counted, none lost."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.logthrottle import LogThrottle, Repeated, Repeats, Summary


def test_a_flood_gives_one_full_line_then_one_summary_an_interval() -> None:
    throttle = LogThrottle(interval_s=10)
    assert throttle.note("k", 0.0, "one") == (True, None)
    assert throttle.note("k", 1.0, "two") == (False, None)
    assert throttle.note("k", 9.9, "three") == (False, None)
    [summary] = throttle.due(10.0)
    assert (summary.count, summary.first, summary.seconds) == (2, "two", 10.0)
    # Still going: the next window counts on without a full line.
    assert throttle.note("k", 11.0, "four") == (False, None)
    assert throttle.due(15.0) == []
    # Its summary comes with the next occurrence once the window is over, if no one asked.
    full, summary = throttle.note("k", 20.5, "five")
    assert not full and summary is not None and (summary.count, summary.first) == (1, "four")
    assert [s.count for s in throttle.drain(21.0)] == [1]


def test_a_quiet_window_closes_and_the_next_line_is_logged_in_full() -> None:
    throttle = LogThrottle(interval_s=10)
    assert throttle.note("k", 0.0, "one") == (True, None)
    assert throttle.due(10.0) == []
    assert throttle.note("k", 10.5, "two") == (True, None)
    assert throttle.note("other", 10.5, "three") == (True, None), "kinds apart"


@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.floats(0, 5, allow_nan=False)),
        max_size=200,
    ),
    st.booleans(),
)
def test_every_occurrence_is_logged_or_counted_exactly_once(
    steps: list[tuple[str, float]], sweep: bool
) -> None:
    throttle = LogThrottle(interval_s=10)
    now = 0.0
    logged: dict[str, int] = {}
    counted: dict[str, int] = {}
    lines_at: dict[str, list[float]] = {}

    def count(summaries: Sequence[Summary | None]) -> None:
        for s in summaries:
            if s is not None:
                counted[s.key] = counted.get(s.key, 0) + s.count
                lines_at.setdefault(s.key, []).append(now)

    for key, gap in steps:
        now += gap
        if sweep:
            count(throttle.due(now))
        full, summary = throttle.note(key, now, f"{key}@{now}")
        count([summary])
        if full:
            logged[key] = logged.get(key, 0) + 1
            lines_at.setdefault(key, []).append(now)
    for key in "abc":
        occurrences = sum(1 for k, _ in steps if k == key)
        in_windows = occurrences - logged.get(key, 0) - counted.get(key, 0)
        assert in_windows >= 0
    count(throttle.drain(now))
    for key in "abc":
        occurrences = sum(1 for k, _ in steps if k == key)
        assert logged.get(key, 0) + counted.get(key, 0) == occurrences
    for times in lines_at.values():  # one line an interval at most, until the drain's
        assert all(b - a >= 10 for a, b in itertools.pairwise(times[:-1]))


def test_repeats_logs_the_first_and_a_summary_at_flush(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    repeats = Repeats(clock=lambda: now[0])
    kind = Repeated("bad", "set aside {count:,} more in the last {seconds:.0f} s; first: {first}")
    logger = logging.getLogger("trio_transcripts.test")
    with caplog.at_level(logging.WARNING, logger="trio_transcripts.test"):
        for i in range(12_346):
            repeats.log(logger, logging.WARNING, kind, f"frame {i} set aside")
        now[0] = 10.0
        repeats.flush_due()
        repeats.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "frame 0 set aside",
        "set aside 12,345 more in the last 10 s; first: frame 1 set aside",
    ]
