"""The liveness rule: a conversation heard from, then silent past the keepalive and margin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.liveness import Liveness


def test_silent_only_past_the_keepalive_and_margin_and_reported_once() -> None:
    watch = Liveness(keepalive_ms=300_000, margin_ms=60_000)
    watch.heard("a", 0)
    watch.heard("b", 100_000)
    assert watch.silent(360_000) == []  # exactly at the limit: not yet
    assert watch.silent(360_001) == [("a", 360_001)]
    assert watch.silent(360_002) == []  # reported once, then no longer watched
    assert watch.silent(460_001) == [("b", 360_001)]
    assert len(watch) == 0


def test_any_message_keeps_a_conversation_alive_and_an_end_forgets_it() -> None:
    watch = Liveness(keepalive_ms=300_000, margin_ms=60_000)
    watch.heard("a", 0)
    watch.heard("b", 0)
    watch.heard("a", 300_000)  # its keepalive
    watch.ended("b")  # SESSION_ENDED
    assert watch.silent(500_000) == []
    assert watch.silent(660_001) == [("a", 360_001)]


def test_nothing_heard_is_nothing_silent() -> None:
    assert Liveness().silent(10**12) == []


@pytest.mark.parametrize(("keepalive", "margin"), [(0, 1), (1, -1)])
def test_limits_must_make_sense(keepalive: int, margin: int) -> None:
    with pytest.raises(ValueError, match="keepalive_ms"):
        Liveness(keepalive, margin)


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 10**6)), max_size=30))
def test_silent_is_exactly_those_last_heard_before_the_limit(
    events: list[tuple[str, int]],
) -> None:
    watch = Liveness(keepalive_ms=1_000, margin_ms=0)
    last: dict[str, int] = {}
    now = 0
    for conversation, step in events:
        now += step
        watch.heard(conversation, now)
        last[conversation] = now
    later = now + 500_000
    expected = sorted((c, later - at) for c, at in last.items() if later - at > 1_000)
    assert sorted(watch.silent(later)) == expected
