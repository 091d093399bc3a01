"""The gap-fill rules (``gapfill.py``): which phrases fill a gap, and the overlap edges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.gapfill import (
    CLOCK_SLACK_MS,
    DELIVERY_LAG_MS,
    StoredUtterance,
    Window,
    backfill_id,
    covers,
    overlaps,
    plan,
)
from trio_transcripts.lineproto import encode
from trio_transcripts.wire.transcript import Phrase, PostCallTranscript


def phrase(start: int, duration: int = 1_000, speaker: str = "agent", index: int = 0) -> Phrase:
    return Phrase(index, speaker, f"said at {start}", 0.9, start, duration)


def live(start: int, end: int, speaker: str = "agent", final: bool = True) -> StoredUtterance:
    return StoredUtterance(f"u{start}", speaker, start, end, final, "live")


def transcript(*phrases: Phrase) -> PostCallTranscript:
    return PostCallTranscript("conv", "comm", phrases)


# --- overlap edges --------------------------------------------------------------------


def test_touching_is_not_overlapping() -> None:
    assert not overlaps(0, 1_000, 1_000, 2_000)
    assert not overlaps(1_000, 2_000, 0, 1_000)


def test_one_shared_millisecond_overlaps() -> None:
    assert overlaps(0, 1_001, 1_000, 2_000)
    assert overlaps(1_999, 3_000, 1_000, 2_000)


def test_an_empty_interval_is_the_instant_it_starts_at() -> None:
    assert overlaps(1_000, 1_000, 1_000, 1_000)
    assert overlaps(1_000, 1_000, 1_000, 5_000)
    assert overlaps(1_001, 1_001, 1_000, 1_002), "inside the other"
    assert not overlaps(1_000, 1_000, 999, 1_000), "at the other's end, which is not in it"


def test_only_a_live_final_of_the_same_speaker_covers() -> None:
    p = phrase(1_000)
    assert covers(live(500, 1_500), p)
    assert not covers(live(500, 1_500, speaker="customer"), p)
    assert not covers(live(500, 1_500, final=False), p), "a partial's text is incomplete"
    backfilled = StoredUtterance("x", "agent", 1_000, 2_000, True, "backfill")
    assert not covers(backfilled, p)


intervals = st.tuples(st.integers(0, 10_000), st.integers(0, 5_000)).map(
    lambda t: (t[0], t[0] + t[1])
)


@given(intervals, intervals)
def test_overlap_is_symmetric_and_means_a_shared_millisecond(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    def instants(interval: tuple[int, int]) -> set[int]:
        start, end = interval
        return set(range(start, end)) if end > start else {start}  # an empty one: its start

    assert overlaps(*a, *b) == overlaps(*b, *a)
    assert overlaps(*a, *b) == bool(instants(a) & instants(b))


# --- windows --------------------------------------------------------------------------


def test_a_window_holds_phrases_whose_final_may_have_gone_out_in_it() -> None:
    window = Window(100_000, 110_000)
    assert window.holds(phrase(100_000 - DELIVERY_LAG_MS - 1_000, 1_000))  # ended at the edge
    assert not window.holds(phrase(100_000 - DELIVERY_LAG_MS - 1_001, 1_000))
    assert window.holds(phrase(110_000 + CLOCK_SLACK_MS - 500, 500))
    assert not window.holds(phrase(110_000 + CLOCK_SLACK_MS - 499, 500))


# --- plans ----------------------------------------------------------------------------


def test_a_plan_writes_what_a_gap_swallowed_and_nothing_stored() -> None:
    t = transcript(
        phrase(0, index=0),
        phrase(2_000, index=1),
        phrase(4_000, speaker="customer", index=2),
        phrase(900_000, index=3),
    )
    stored = [live(0, 1_000), live(4_000, 4_500, speaker="customer")]
    result = plan(t, [Window(0, 10_000)], stored)
    assert [u.start_ms for u in result.utterances] == [2_000]
    assert (result.covered_live, result.outside_gaps, result.already_backfilled) == (2, 1, 0)
    (u,) = result.utterances
    assert u.origin == "backfill" and u.final and u.fragments == 0
    assert u.utterance_id == backfill_id("comm", 2_000, 1)
    assert u.extras == (("communicationId", "comm"),)
    assert "origin=backfill" in encode(u)


def test_a_repeated_backfill_writes_nothing() -> None:
    t = transcript(phrase(0, index=0), phrase(2_000, index=1))
    first = plan(t, None, [])
    stored = [
        StoredUtterance(u.utterance_id, u.speaker, u.start_ms, u.end_ms, True, "backfill")
        for u in first.utterances
    ]
    again = plan(t, None, stored)
    assert len(first.utterances) == 2
    assert again.utterances == () and again.already_backfilled == 2


def test_without_windows_every_phrase_not_stored_is_written() -> None:
    t = transcript(phrase(0, index=0), phrase(10**9, index=1))
    assert len(plan(t, None, []).utterances) == 2


def test_a_partial_does_not_keep_the_complete_phrase_out() -> None:
    result = plan(transcript(phrase(0)), None, [live(0, 800, final=False)])
    assert len(result.utterances) == 1


@given(
    st.lists(
        st.tuples(st.integers(0, 100_000), st.integers(0, 5_000), st.sampled_from(["a", "c"])),
        max_size=20,
    ),
    st.lists(
        st.tuples(st.integers(0, 100_000), st.integers(0, 5_000), st.sampled_from(["a", "c"])),
        max_size=20,
    ),
)
def test_every_phrase_is_written_or_accounted_for_once(
    phrases: list[tuple[int, int, str]], lives: list[tuple[int, int, str]]
) -> None:
    t = transcript(*(phrase(s, d, who, i) for i, (s, d, who) in enumerate(phrases)))
    stored = [live(s, s + d, who) for s, d, who in lives]
    result = plan(t, None, stored)
    assert len(result.utterances) + result.covered_live + result.already_backfilled == len(phrases)
    for u in result.utterances:
        assert not any(
            s.speaker == u.speaker and overlaps(s.start_ms, s.end_ms, u.start_ms, u.end_ms)
            for s in stored
        )
    assert len({u.utterance_id for u in result.utterances}) == len(result.utterances)
