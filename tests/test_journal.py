"""The journal (``journal.py``) and the completeness side that writes it (``completeness.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from trio_transcripts.completeness import Completeness
from trio_transcripts.coverage import Ended, Followed, Heard, Listening, Unfollowed, Why
from trio_transcripts.gaprecords import BackfillQueue, now_ms
from trio_transcripts.journal import JOURNAL_FILE, Journal


def completeness(state: Path) -> Completeness:
    return Completeness(BackfillQueue(state), Journal(state))


def lines(state: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (state / JOURNAL_FILE).read_text().splitlines()]


def test_a_first_start_is_on_disk_before_anything_is_read(tmp_path: Path) -> None:
    side = completeness(tmp_path)
    away = side.start(["q"], ["c1"], 3_600_000)
    assert away.since_ms is None and away.carried == ()
    records = lines(tmp_path)
    kinds = [r["type"] for r in records]
    assert kinds == ["alive", "queue", "follow"] and records[2]["conversationId"] == "c1"


def test_a_restart_carries_the_followed_over_with_a_gap_open_since_last_alive(
    tmp_path: Path,
) -> None:
    first = completeness(tmp_path)
    first.start([], ["c1"], 3_600_000)
    t = now_ms()
    first.report(Listening(("c1",), t - 20_000))  # before its session: no head gap
    first.report(Heard("c1", "m1", t - 5, t + 1))
    first.report(Followed("c2", t + 2))
    first.report(Followed("c3", t + 3))
    first.report(Unfollowed("c3", Ended.SESSION_ENDED, t + 4))
    first.flush(3_600_000)
    alive = lines(tmp_path)[-1]["atMs"]
    with open(tmp_path / JOURNAL_FILE, "a") as f:
        f.write('{"type": "follow", "conversa')  # a SIGKILL mid-append
    second = completeness(tmp_path)
    away = second.start([], ["c1"], 3_600_000)
    assert away.since_ms == alive and set(away.carried) == {"c1", "c2"}
    c1 = second.coverage.followed["c1"]
    assert (c1.open_since, c1.open_why, c1.heard_before) == (alive, Why.WORKER_AWAY, True)
    assert c1.communications == ["m1"] and "c3" in second.coverage.settled
    # Heard again: the worker-away gap closes at the new subscription.
    second.report(Listening(("c1", "c2"), alive + 5_000))
    second.report(Heard("c1", "m1", 5, alive + 5_100))
    (job,) = second.queue.jobs.values()
    assert job.windows[0].start_ms == alive and job.windows[0].end_ms == alive + 5_000
    assert second.recorded == {Why.WORKER_AWAY: 1}


def test_a_change_costs_a_line_whatever_is_followed(tmp_path: Path) -> None:
    side = completeness(tmp_path)
    side.start([], [f"c{i}" for i in range(2_000)], 3_600_000)
    before = len(lines(tmp_path))
    side.report(Followed("new", 1))
    side.flush(3_600_000)
    assert len(lines(tmp_path)) == before + 2, "the follow and the alive record"


def test_a_journal_grown_past_its_state_is_compacted(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.rewrite([{"type": "alive", "atMs": 1}])
    for i in range(6_000):
        journal.add([{"type": "follow", "conversationId": "c", "atMs": i}])
        journal.add([{"type": "unfollow", "conversationId": "c", "atMs": i}])
    journal.flush(2)
    assert journal.wants_compaction()
    side = Completeness(BackfillQueue(tmp_path), journal)
    side.flush(3_600_000)
    assert len(lines(tmp_path)) == 1 and not journal.wants_compaction()
