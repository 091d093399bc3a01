"""Gap records that last: the backfill queue, in the state directory.

Each gap ``coverage.py`` finds (a head, a socket lost, a session that ended unseen, the time
the worker was not running, a queue's call found after the fact) is appended to
``backfill-queue.jsonl`` and fsynced before anything else is done with it. A
conversation's records are settled by a ``done`` or ``dead`` record; at start the file is read
(:func:`fold`, pure) and rewritten with what is still open. The writes are synchronous on
purpose: gaps are rare, and a record must be on disk before the source goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .coverage import Gap, Why
from .fillplan import Stage
from .gapfill import Window
from .journal import append_records, read_records, replace_records
from .pulse import Pulse
from .wire.instants import iso_of

log = logging.getLogger("trio_transcripts.backfill")

QUEUE_FILE = "backfill-queue.jsonl"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Job:
    """A conversation to backfill: its gaps, and when to try next (in memory only: after a
    restart the attempts start over; the give-up clock, from its first gap's start in epoch
    ms, does not)."""

    conversation_id: str
    # When its first open gap was recorded (epoch ms): the give-up clock. Not the gap's
    # start, which for a whole call is 0 and would give up at once.
    since_ms: int
    gaps: list[Gap] = field(default_factory=list)
    communications: list[str] = field(default_factory=list)
    attempts: int = 0
    next_at: float = -math.inf  # the Trio clock: when to try again
    stage: Stage = Stage.OPEN  # ``fillplan.py`` moves it

    @property
    def windows(self) -> list[Window]:
        return [Window(g.start_ms, g.end_ms) for g in self.gaps]

    def add(self, record: Gap) -> None:
        self.gaps.append(record)
        for communication in record.communications:
            if communication not in self.communications:
                self.communications.append(communication)


def fold(records: Sequence[dict[str, object]]) -> dict[str, Job]:
    """The open jobs of a queue file's records, oldest first: a ``gap`` opens or extends a
    conversation's job, a ``done`` or ``dead`` settles it. Unreadable records are skipped
    by the caller (with a log line), never here."""
    jobs: dict[str, Job] = {}
    for record in records:
        conversation = record.get("conversationId")
        if not isinstance(conversation, str):
            continue
        if record.get("type") in ("done", "dead"):
            jobs.pop(conversation, None)
            continue
        gap = _gap_of(record)
        if gap is not None:
            recorded = record.get("recordedMs")
            since = recorded if isinstance(recorded, int) else max(gap.start_ms, 0)
            jobs.setdefault(conversation, Job(conversation, since)).add(gap)
    return jobs


def _gap_of(record: dict[str, object]) -> Gap | None:
    start, end = record.get("startMs"), record.get("endMs")
    communications = record.get("communications", [])
    if (
        record.get("type") != "gap"
        or not isinstance(start, int)
        or not isinstance(end, int)
        or not isinstance(communications, list)
    ):
        return None
    try:
        why = Why(record.get("why"))
    except ValueError:  # written before the reasons had names
        why = Why.DROP
    return Gap(
        str(record["conversationId"]), start, end, why, tuple(str(c) for c in communications)
    )


def _gap_json(record: Gap, recorded_ms: int) -> dict[str, object]:
    return {
        "recordedMs": recorded_ms,
        "type": "gap",
        "conversationId": record.conversation_id,
        "communications": list(record.communications),
        "startMs": record.start_ms,
        "endMs": record.end_ms,
        "start": iso_of(record.start_ms),
        "end": iso_of(record.end_ms),
        "why": record.why.value,
    }


class BackfillQueue:
    """The durable queue of gaps to fill, in ``state_dir`` (see the module docstring)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / QUEUE_FILE
        self.jobs: dict[str, Job] = {}
        self.changed = Pulse()  # jobs were opened or extended

    def load(self) -> dict[str, Job]:
        """Read the file, keep what is open, and rewrite it with only that (atomically)."""
        jobs = fold(read_records(self.path))
        self.jobs.update(jobs)
        self._rewrite()
        return jobs

    def record(self, gaps: Sequence[Gap]) -> None:
        """Append ``gaps`` and fsync, then open or extend their jobs."""
        if not gaps:
            return
        now = now_ms()
        self._append([_gap_json(g, now) for g in gaps])
        for gap in gaps:
            job = self.jobs.setdefault(gap.conversation_id, Job(gap.conversation_id, now))
            job.add(gap)
        self.changed.fire()

    def settle(self, conversation_id: str, outcome: str, detail: dict[str, object]) -> None:
        """A job is over: ``done`` (written, or nothing to write) or ``dead`` (given up)."""
        self._append([{"type": outcome, "conversationId": conversation_id, **detail}])
        self.jobs.pop(conversation_id, None)

    def _append(self, records: list[dict[str, object]]) -> None:
        append_records(self.path, records)

    def _rewrite(self) -> None:
        records = [
            _gap_json(
                Gap(job.conversation_id, g.start_ms, g.end_ms, g.why, tuple(comms)), job.since_ms
            )
            for job in self.jobs.values()
            for comms in [job.communications]
            for g in job.gaps
        ]
        replace_records(self.path, records)
