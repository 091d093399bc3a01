"""Gap records that last (``gaprecords.py``): the queue file and its fold."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.coverage import Gap, Why
from trio_transcripts.gapfill import Window
from trio_transcripts.gaprecords import QUEUE_FILE, BackfillQueue, fold

SOCKET_LOST = Why.DROP
GapRecord = Gap


def test_a_gap_is_on_disk_as_soon_as_it_is_recorded(tmp_path: Path) -> None:
    queue = BackfillQueue(tmp_path)
    queue.record([GapRecord("c1", 1_000, 2_000, SOCKET_LOST, ("m1",))])
    (line,) = (tmp_path / QUEUE_FILE).read_text().splitlines()
    record = json.loads(line)
    assert record["type"] == "gap" and record["conversationId"] == "c1"
    assert (record["startMs"], record["endMs"], record["communications"]) == (1_000, 2_000, ["m1"])
    assert record["start"] == "1970-01-01T00:00:01.000Z", "readable as well"


def test_a_restart_reads_what_is_open_and_keeps_only_that(tmp_path: Path) -> None:
    queue = BackfillQueue(tmp_path)
    queue.record([GapRecord("c1", 1_000, 2_000, SOCKET_LOST, ("m1",))])
    queue.record([GapRecord("c2", 5_000, 6_000, SOCKET_LOST)])
    queue.record([GapRecord("c1", 3_000, 4_000, SOCKET_LOST, ("m2",))])
    queue.settle("c2", "done", {"written": 3})
    with open(tmp_path / QUEUE_FILE, "a") as f:
        f.write('{"type": "gap", "conversationId": "c3", "sta')  # a crash mid-append
    again = BackfillQueue(tmp_path)
    jobs = again.load()
    assert list(jobs) == ["c1"]
    job = jobs["c1"]
    assert job.windows == [Window(1_000, 2_000), Window(3_000, 4_000)]
    assert job.communications == ["m1", "m2"]
    assert job.since_ms > 1_700_000_000_000, "the give-up clock: when it was recorded"
    assert len((tmp_path / QUEUE_FILE).read_text().splitlines()) == 2, "compacted"
    assert list(BackfillQueue(tmp_path).load()) == ["c1"], "and still the same"


def test_a_gap_after_a_settled_job_opens_a_new_one() -> None:
    records: list[dict[str, object]] = [
        {"type": "gap", "conversationId": "c", "startMs": 1, "endMs": 2},
        {"type": "dead", "conversationId": "c", "reason": "gone"},
        {"type": "gap", "conversationId": "c", "startMs": 7, "endMs": 9},
    ]
    jobs = fold(records)
    assert jobs["c"].windows == [Window(7, 9)]


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["gap", "done", "dead"])),
        max_size=30,
    )
)
def test_the_fold_keeps_exactly_the_conversations_with_a_gap_after_their_last_settling(
    events: list[tuple[str, str]],
) -> None:
    records: list[dict[str, object]] = [
        {"type": kind, "conversationId": c, "startMs": i, "endMs": i + 1}
        for i, (c, kind) in enumerate(events)
    ]
    jobs = fold(records)
    for conversation in "abc":
        kinds = [kind for c, kind in events if c == conversation]
        settled_at = max((i for i, k in enumerate(kinds) if k != "gap"), default=-1)
        open_gaps = [k for k in kinds[settled_at + 1 :] if k == "gap"]
        assert (conversation in jobs) == bool(open_gaps)
        if open_gaps:
            assert len(jobs[conversation].windows) == len(open_gaps)


def test_a_whole_call_gap_is_given_up_on_from_when_it_was_recorded(tmp_path: Path) -> None:
    queue = BackfillQueue(tmp_path)
    queue.record([GapRecord("c", 0, 9_000_000_000_000, Why.NEVER_HEARD)])
    assert queue.jobs["c"].since_ms > 1_700_000_000_000
    assert BackfillQueue(tmp_path).load()["c"].since_ms == queue.jobs["c"].since_ms
