"""The gap rules (``coverage.py``): heads, open gaps, socket gaps, silence; the journal fold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.coverage import (
    UNHEARD_AFTER_MS,
    Coverage,
    Ended,
    Followed,
    Heard,
    Listening,
    SocketGap,
    Unfollowed,
    Why,
    fold,
)
from trio_transcripts.gapfill import CLOCK_SLACK_MS

S = 1_700_000_000_000  # a session's start, epoch ms


def heard_after(listening_at: int, session_start: int) -> Coverage:
    coverage = Coverage()
    coverage.see(Followed("c", listening_at - 5))
    coverage.see(Listening(("c",), listening_at))
    return coverage


def test_listening_before_the_session_began_is_no_head_gap() -> None:
    coverage = heard_after(S - CLOCK_SLACK_MS - 1, S)
    changes = coverage.see(Heard("c", "m", S, S + 2_000))
    assert changes.gaps == []
    assert {"type": "heard", "conversationId": "c"} in changes.records


def test_listening_after_the_session_began_is_a_head_gap_to_the_subscription() -> None:
    coverage = heard_after(S + 30_000, S)
    (gap,) = coverage.see(Heard("c", "m", S, S + 31_000)).gaps
    assert (gap.start_ms, gap.end_ms, gap.why) == (S - CLOCK_SLACK_MS, S + 30_000, Why.HEAD)
    assert gap.communications == ("m",)
    assert coverage.see(Heard("c", "m", S, S + 32_000)).gaps == [], "only the first message"


def test_an_open_gap_closes_when_first_heard_and_reaches_back_past_the_head() -> None:
    coverage = Coverage()
    coverage.carry("c", S, S - 60_000, Why.WORKER_AWAY)
    coverage.see(Listening(("c",), S + 1_000))
    (gap,) = coverage.see(Heard("c", None, S - 30_000, S + 1_500)).gaps
    assert (gap.start_ms, gap.end_ms, gap.why) == (S - 60_000, S + 1_000, Why.WORKER_AWAY)


def test_heard_before_a_restart_has_no_head_again() -> None:
    coverage = Coverage()
    coverage.carry("c", S, S, Why.WORKER_AWAY, heard_before=True)
    coverage.see(Listening(("c",), S + 1_000))
    (gap,) = coverage.see(Heard("c", None, S - 600_000, S + 1_500)).gaps
    assert (gap.start_ms, gap.why) == (S, Why.WORKER_AWAY)


def test_a_socket_gap_is_a_drop_or_an_outage() -> None:
    coverage = heard_after(S, S)
    (drop,) = coverage.see(SocketGap(("c", "other"), 1, 2, refused=False)).gaps
    (outage,) = coverage.see(SocketGap(("c",), 3, 4, refused=True)).gaps
    assert (drop.why, outage.why) == (Why.DROP, Why.OUTAGE), "and only followed ones"


def test_silence_after_being_heard_is_a_gap_from_the_last_message() -> None:
    coverage = heard_after(S, S)
    coverage.see(Heard("c", "m", S, S + 10))
    (gap,) = coverage.see(Unfollowed("c", Ended.SILENT, S + 400_000, 360_000)).gaps
    assert (gap.start_ms, gap.end_ms, gap.why) == (
        S + 40_000,
        S + 400_000 + UNHEARD_AFTER_MS,
        Why.SILENCE,
    )
    assert coverage.settled == {"c": S + 400_000} and "c" not in coverage.followed


def test_never_heard_and_let_go_is_the_whole_call_or_its_open_gap() -> None:
    coverage = heard_after(S, S)
    (whole,) = coverage.see(Unfollowed("c", Ended.SILENT, S + 400_000, 400_000)).gaps
    assert (whole.start_ms, whole.why) == (0, Why.NEVER_HEARD)
    coverage.carry("d", S, S - 5, Why.QUEUE_ABSENCE)
    (found,) = coverage.see(Unfollowed("d", Ended.FOUND_ENDED, S + 1)).gaps
    assert (found.start_ms, found.why) == (0, Why.QUEUE_ABSENCE), "never heard: all of it"


def test_an_ended_session_or_a_removal_is_no_gap() -> None:
    coverage = heard_after(S, S)
    coverage.see(Heard("c", "m", S, S + 10))
    assert coverage.see(Unfollowed("c", Ended.SESSION_ENDED, S + 20)).gaps == []
    assert coverage.see(Heard("c", "m", S, S + 30)).gaps == [], "a late frame: nothing"


def test_the_snapshot_folds_back_to_the_same_state() -> None:
    coverage = Coverage()
    coverage.carry("a", S, S - 7, Why.QUEUE_ABSENCE, communications=["m1"])
    coverage.carry("b", S, None, None)
    coverage.see(Listening(("b",), S))
    coverage.see(Heard("b", "m2", S, S))
    coverage.carry("c", S, None, None)
    coverage.see(Unfollowed("c", Ended.SESSION_ENDED, S + 9))
    coverage.carry("d", S, S - 9, Why.WORKER_AWAY, heard_before=True)
    resumed = fold(coverage.snapshot(["q"], S + 10))
    assert resumed.followed["d"].open_since == S - 9 and resumed.followed["d"].heard
    assert resumed.alive_ms == S + 10 and resumed.queues == ["q"]
    assert set(resumed.followed) == {"a", "b", "d"} and resumed.settled == {"c": S + 9}
    assert resumed.followed["a"].open_since == S - 7
    assert resumed.followed["a"].why is Why.QUEUE_ABSENCE
    assert resumed.followed["a"].communications == ["m1"]
    assert resumed.followed["b"].heard and resumed.followed["b"].open_since is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["follow", "heard", "unfollow", "alive"]),
        ),
        max_size=40,
    )
)
def test_the_fold_follows_exactly_what_was_followed_last_and_not_unfollowed(
    events: list[tuple[str, str]],
) -> None:
    records: list[dict[str, object]] = [
        {"type": kind, "conversationId": c, "atMs": i} for i, (c, kind) in enumerate(events)
    ]
    resumed = fold(records)
    for conversation in "abc":
        kinds = [k for c, k in events if c == conversation and k in ("follow", "unfollow")]
        assert (conversation in resumed.followed) == (bool(kinds) and kinds[-1] == "follow")
        assert (conversation in resumed.settled) == (bool(kinds) and kinds[-1] == "unfollow")
    alive = [i for i, (_, k) in enumerate(events) if k == "alive"]
    assert resumed.alive_ms == (max(alive) if alive else None)


def test_a_carried_call_never_heard_in_any_run_is_backfilled_whole() -> None:
    coverage = Coverage()
    coverage.carry("c", S, S + 5_000, Why.WORKER_AWAY)  # the last run never heard it
    (gap,) = coverage.see(Unfollowed("c", Ended.FOUND_ENDED, S + 9_000)).gaps
    assert (gap.start_ms, gap.why) == (0, Why.WORKER_AWAY), "its head too"


def test_heard_closes_the_journal_s_open_gap() -> None:
    records: list[dict[str, object]] = [
        {"type": "follow", "conversationId": "c", "atMs": 1, "openSinceMs": 1, "why": "head"},
        {"type": "heard", "conversationId": "c"},
    ]
    carried = fold(records).followed["c"]
    assert carried.heard and carried.open_since is None
