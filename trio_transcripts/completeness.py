"""The completeness side: what the source reports, recorded before anything else happens.

The source hands every report (``coverage.py``'s :data:`~trio_transcripts.coverage.Seen`) to
:meth:`Completeness.report`; the rules there decide the gaps, which go to the backfill queue
(``gaprecords.py``, fsynced at once: gaps are rare) and the journal records, which are
buffered and fsynced with an ``alive`` record every ``flush_s`` (``journal.py``). At start,
:meth:`Completeness.start` folds the last run's journal, compacts it, and writes this run's
first ``alive`` before the source reads a frame, so a SIGKILL at any moment after leaves
what the next start needs: which conversations were followed, and since when nobody
listened.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from .coverage import Changes, Coverage, Gap, Resumed, Seen, Why, fold
from .diskfull import Disk, Unwritten, is_full
from .gaprecords import BackfillQueue, now_ms
from .journal import Journal
from .wire.instants import iso_of

log = logging.getLogger("trio_transcripts.backfill")


@dataclass(frozen=True)
class Absence:
    """The time since the last run was last known alive, and what it followed then."""

    since_ms: int | None  # None: a first start (no journal)
    until_ms: int
    carried: tuple[str, ...]  # followed then, not seen to end: followed again now


class Completeness:
    """Records reports (module docstring); its parts are passed in."""

    def __init__(
        self,
        queue: BackfillQueue,
        journal: Journal,
        *,
        flush_s: float = 1.0,
        disk: Disk | None = None,
    ) -> None:
        """``disk`` is told when a full disk refuses the journal or the gap queue (and when
        it takes them again), for readiness and the metrics (``diskfull.py``): both are
        written on this object's own cadence, every ``flush_s``, and wait in memory."""
        self.queue = queue
        self.journal = journal
        self.flush_s = flush_s
        self.disk = disk or Disk()
        self.coverage = Coverage()
        self.recorded: Counter[Why] = Counter()  # gaps queued, by why
        self._queues: tuple[str, ...] = ()
        self._flush_failing = False
        # Gaps whose record the disk refused (full): kept, and written with the next flush.
        self._unrecorded: list[Gap] = []
        self._record_failing_since: float | None = None  # monotonic
        self._refused_full = False  # the last refusal, of either file, was a full disk

    def start(
        self, queues: Sequence[str], conversations: Sequence[str], keep_settled_ms: int
    ) -> Absence:
        """Fold the last run's journal, carry its followed conversations over with a gap
        open since it was last alive, and put this run's state (with the configured
        ``queues`` and ``conversations``) on disk, compacted, before anything is read.
        Raises ``OSError`` when the state directory cannot be used."""
        self.queue.load()
        resumed: Resumed = fold(self.journal.read())
        now = now_ms()
        self._queues = tuple(dict.fromkeys([*resumed.queues, *queues]))
        coverage = self.coverage
        coverage.settled.update(resumed.settled)
        alive = resumed.alive_ms
        if alive is not None:
            coverage.forget_settled_before(alive - keep_settled_ms)
            for conversation_id, carried in resumed.followed.items():
                since = alive if carried.open_since is None else min(alive, carried.open_since)
                why = carried.why if carried.open_since is not None and carried.why else None
                coverage.carry(
                    conversation_id,
                    now,
                    since,
                    why or Why.WORKER_AWAY,
                    heard_before=carried.heard,
                    communications=carried.communications,
                )
        for conversation_id in conversations:
            coverage.carry(conversation_id, now, None, None)
        self.journal.rewrite(coverage.snapshot(self._queues, now))
        absence = Absence(alive, now, tuple(resumed.followed) if alive is not None else ())
        if alive is not None:
            log.warning(
                "the worker was not running from %s to %s (%.0f s): %d conversation(s) it "
                "followed are followed again, their gap open until each is heard",
                iso_of(alive),
                iso_of(now),
                (now - alive) / 1000,
                len(absence.carried),
            )
        return absence

    def carry(self, conversation_id: str, open_since: int, why: Why) -> None:
        """Follow a conversation found after the fact (a queue's call during an absence),
        its gap open since ``open_since``; the caller subscribes it next."""
        self._apply(self.coverage.carry(conversation_id, now_ms(), open_since, why))

    def queue_gaps(self, gaps: Iterable[Gap]) -> None:
        """Gaps found elsewhere (a queue's call that ended during an absence)."""
        self._apply(Changes(gaps=list(gaps)))

    def report(self, seen: Seen) -> None:
        """One report of the source's (``coverage.py``)."""
        self._apply(self.coverage.see(seen))

    def _apply(self, changes: Changes) -> None:
        if changes.records:
            self.journal.add(changes.records)
        if changes.gaps:
            self._unrecorded.extend(changes.gaps)
            self._record_gaps()

    def _record_gaps(self) -> None:
        gaps = self._unrecorded
        if not gaps:
            return
        try:
            self.queue.record(gaps)
        except OSError as exc:
            self._refused(self.queue.path, exc)
            if self._record_failing_since is None:  # said once until it works again
                self._record_failing_since = time.monotonic()
                log.error(
                    "cannot write the gap record of %d conversation(s) to %s (%s): kept in "
                    "memory and tried again every %.0f s",
                    len(gaps),
                    self.queue.path,
                    exc,
                    self.flush_s,
                )
            return
        self.disk.note_written(self.queue.path)
        if self._record_failing_since is not None:
            log.warning(
                "gap records written to %s again, after %.0f s",
                self.queue.path,
                time.monotonic() - self._record_failing_since,
            )
            self._record_failing_since = None
        self._unrecorded = []
        for gap in gaps:
            self.recorded[gap.why] += 1
            if gap.why not in (Why.DROP, Why.OUTAGE):  # those the source logged already
                log.info(
                    "gap (%s) for conversation %s from %s: queued for backfill",
                    gap.why.value,
                    gap.conversation_id,
                    iso_of(gap.start_ms),
                )

    async def run(self, keep_settled_ms: int) -> None:
        """Flush the journal every ``flush_s``, compacting it now and then; a last flush
        when cancelled (a clean stop's ``alive``)."""
        try:
            while True:
                await trio.sleep(self.flush_s)
                self.flush(keep_settled_ms)
        finally:
            self.flush(keep_settled_ms)
            if self._unrecorded:
                log.error(
                    "NOT KEPT: the gap records of %s could not be written (%s refused them); "
                    "run `backfill` for each of these conversations once the disk has room",
                    ", ".join(sorted({g.conversation_id for g in self._unrecorded})),
                    self.queue.path,
                )

    def _refused(self, path: Path, exc: OSError) -> None:
        self._refused_full = is_full(exc)
        if self._refused_full:
            meanwhile = f"its records wait in memory, tried again every {self.flush_s:g} s"
            self.disk.note_refused(path, exc, meanwhile)

    def unwritten(self) -> Unwritten:
        """What is still only in memory (at shutdown, after the last flush): gap records
        and journal records, and whether a full disk was why."""
        counts = {"gap record": len(self._unrecorded), "journal record": self.journal.pending}
        counts = {kind: n for kind, n in counts.items() if n}
        if not counts:
            return Unwritten()
        where = f"the state directory {self.queue.state_dir} (--state-dir)"
        return Unwritten(counts, disk_full=self._refused_full, where=(where,))

    def flush(self, keep_settled_ms: int) -> None:
        self._record_gaps()
        now = now_ms()
        try:
            if self.journal.wants_compaction():
                self.coverage.forget_settled_before(now - keep_settled_ms)
                self.journal.rewrite(self.coverage.snapshot(self._queues, now))
            else:
                self.journal.flush(now)
        except OSError as exc:
            self._refused(self.journal.path, exc)
            if not self._flush_failing:  # said once until it works again
                log.warning(
                    "cannot write %s (%s): %d record(s) kept in memory until it can",
                    self.journal.path,
                    exc,
                    self.journal.pending,
                )
            self._flush_failing = True
            return
        self.disk.note_written(self.journal.path)
        self._flush_failing = False
