"""The post-call backfill: the task that fills each recorded gap.

The platform does not replay notifications (``../shared/genesys-api.md``, section 6), so
every stretch the live stream missed is written down first (``completeness.py`` records what
the source reports: a head, a socket gap, a session that ended unseen, the time the worker
was not running; ``gaprecords.py`` keeps them) and filled here:

* At start, :meth:`Backfiller.run` has the completeness side put the last run's state and
  this one's on disk before the source reads a frame, follows again what the last run
  followed, and asks analytics for each followed queue's calls during the absence
  (``absence.py``).
* Once a conversation with a gap is followed no more (``SESSION_ENDED`` seen, silent past
  the keepalive, found ended), the task asks for its post-call transcript (``postcall.py``),
  decides what fills a gap and is not stored yet (``gapfill.py``, after every live row routed
  so far has its sink result), and writes that through the worker's sink, which accounts
  for it separately. What each attempt found is an outcome, and ``fillplan.py``'s table says
  what follows: done, retried with backoff, or given up with a ``backfill`` dead letter once
  ``give_up_s`` have passed since the gap began. An expired URL is asked for anew.
* At start, one request for the transcript of a conversation that cannot exist is the
  permission check: 404 means the client may read transcripts; 403 means it may not, and the
  backfill is off with one log line naming the permissions (gap records are still kept, for
  ``backfill`` runs once the role is fixed).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import trio

from . import absence
from .completeness import Absence, Completeness
from .config import Config
from .coverage import Ended, Gap, Unfollowed, Why
from .dirlock import DirectoryLock
from .errors import ConfigError, FatalError
from .fillplan import Outcome, Step, decide
from .gapfill import Plan, StoredUtterance, Window, plan
from .gaprecords import Job, now_ms
from .model import Malformed, Utterance
from .postcall import NotYet, PostCallClient, Refused
from .retry import Backoff, next_delay
from .shard import Shard
from .sinks import WriteResult
from .sinks.deadletter import DeadLetters, backfill_line
from .sources import Calls
from .wire.analytics import CallRecord
from .wire.instants import iso_of
from .wire.transcript import PostCallTranscript, parse_transcript

log = logging.getLogger("trio_transcripts.backfill")

TRANSCRIPT_PERMISSIONS = (
    "speechAndTextAnalytics:data:view and recording:recording:view (or "
    "recording:recordingSegment:view)"
)
"""What reading post-call transcripts takes, with the Speech and Text Analytics add-on
(help.mypurecloud.com, "Work with a voice transcript", prerequisites)."""


StoredLookup = Callable[[str], Awaitable[list[StoredUtterance]]]
"""What the store holds of one conversation (``stored.py``, in a thread)."""
WriteBatch = Callable[[Sequence[Utterance]], Awaitable[WriteResult]]
"""The worker's sink, serialised with its writer and accounted as backfill."""


RETRY_CAP_S = 1_800.0  # a transcript not there yet is asked for at least every 30 minutes


@dataclass(frozen=True)
class BackfillSettings:
    give_up_s: float = Config.backfill_give_up_s
    retry: Backoff = Backoff(base_s=Config.backfill_retry_s, cap_s=RETRY_CAP_S)
    check_s: float = 5.0  # how often due jobs are looked for (a new gap wakes it at once)
    url_attempts: int = 3  # fresh URLs asked for when the ones in hand expired
    decorated_text: bool = False  # a phrase's decoratedText where given (``--text``)
    queues: tuple[str, ...] = ()  # followed queues: their calls during an absence are found
    conversations: tuple[str, ...] = ()  # configured: on disk at start with the rest
    lookback_s: float = Config.queue_lookback_s  # why an hour: config.py
    shard: Shard | None = None  # a catch-up keeps only this shard's calls


@dataclass
class BackfillCounts:
    """What the backfill did, for the account, the status line and metrics."""

    conversations: int = 0  # settled: written or nothing missing
    written: int = 0  # utterances the store acknowledged
    covered: int = 0  # phrases already stored live
    repeated: int = 0  # phrases already backfilled
    retries: int = 0  # transcripts asked for again (not yet there, a fault)
    expired_urls: int = 0
    given_up: int = 0
    found_absent: int = 0  # calls a queue catch-up found (followed or queued)
    uncovered: list[str] = field(default_factory=list)  # absences no catch-up could cover

    def add(self, filled: Filled) -> None:
        self.conversations += 1
        self.written += filled.result.acknowledged
        self.covered += sum(p.covered_live for p in filled.plans)
        self.repeated += sum(p.already_backfilled for p in filled.plans)


class InProgress(msgspec.Struct, frozen=True, gc=False):
    """Analytics says the call has not ended: its transcript cannot be there yet."""

    reason: str


class Fetched(msgspec.Struct, frozen=True, gc=False):
    """A conversation's transcripts, with the communications they were asked for."""

    transcripts: tuple[PostCallTranscript, ...]
    communications: tuple[str, ...]
    expired_urls: int = 0


class Filled(msgspec.Struct, frozen=True, gc=False):
    """What one conversation's fill planned and what the store said of it."""

    plans: tuple[Plan, ...]
    result: WriteResult


class Failed(msgspec.Struct, frozen=True, gc=False):
    """A fill that could not read the store or write to it."""

    outcome: Outcome
    reason: str


class Attempt(msgspec.Struct, frozen=True, gc=False):
    """What one try at one conversation found: an outcome for ``fillplan.py``."""

    outcome: Outcome
    reason: str = ""
    retry_after_s: float | None = None
    fetched: Fetched | None = None
    filled: Filled | None = None


class Backfiller:
    """The backfill task (module docstring); its parts are passed in."""

    def __init__(
        self,
        completeness: Completeness,
        client: PostCallClient,
        stored: StoredLookup,
        dead_letters: DeadLetters,
        calls: Calls,
        *,
        settings: BackfillSettings = BackfillSettings(),
        rng: random.Random | None = None,
    ) -> None:
        self.completeness = completeness
        self.queue = completeness.queue
        self.client = client
        self.stored = stored
        self.dead_letters = dead_letters
        self.calls = calls
        self.settings = settings
        self.counts = BackfillCounts()
        # Known once the permission probe answered (the worker's snapshot shows it).
        self.enabled: bool | None = None
        self._rng = rng or random.Random()
        self._quiet_until = 0.0  # Trio clock: the API asked us (Retry-After) to hold off

    @property
    def keep_settled_ms(self) -> int:
        return int(self.settings.lookback_s * 1000)

    async def run(
        self,
        write: WriteBatch,
        settle: Callable[[], Awaitable[bool]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Put the state on disk, follow again what was followed, catch the queues up, and
        fill gaps until cancelled. Reports started before the source may read a frame."""
        s = self.settings
        lock = DirectoryLock(self.queue.state_dir, "state directory", "--state-dir")
        try:
            lock.acquire()
            away = self.completeness.start(s.queues, s.conversations, self.keep_settled_ms)
        except OSError as exc:
            lock.release()
            raise FatalError(
                f"the state directory {self.queue.state_dir} (gap records, --state-dir) cannot "
                f"be used: {exc}"
            ) from exc
        for conversation_id in away.carried:
            self.calls.add_conversation(conversation_id)
        task_status.started()  # the probe below may wait on the API: the worker goes on
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.completeness.run, self.keep_settled_ms)
                if s.queues:
                    nursery.start_soon(self._catch_up, away)
                refused = await self.client.may_read_transcripts()
                self.enabled = refused is None
                if refused is not None:
                    log.error(
                        "backfill off: the OAuth client may not read post-call transcripts (it "
                        "needs %s, and Speech and Text Analytics): %s. Gaps are still recorded "
                        "in %s",
                        TRANSCRIPT_PERMISSIONS,
                        refused.reason,
                        self.queue.path,
                    )
                else:
                    nursery.start_soon(self._fill, write, settle)
        finally:
            lock.release()
            with trio.CancelScope(shield=True):
                await self.client.aclose()

    # --- a queue's calls during the absence (``absence.py``) -------------------------------

    async def _catch_up(self, away: Absence) -> None:
        s = self.settings
        since = (away.since_ms if away.since_ms is not None else away.until_ms) - int(
            s.lookback_s * 1000
        )
        until = now_ms()  # the queues are subscribed by now or soon: later calls are announced
        for queue_id in s.queues:
            found = await absence.queue_calls(self.client, queue_id, since, until, self._wait)
            if isinstance(found, Refused):
                self._uncovered(queue_id, since, until, found.reason)
                continue
            if isinstance(found, NotYet):  # not with a wait; for the type checker
                continue
            self._sort(queue_id, found)

    async def _wait(self, why: NotYet, attempts: int) -> None:
        delay = next_delay(attempts, why.retry_after_s, self.settings.retry, self._rng)
        if why.retry_after_s is not None:
            self._quiet_until = trio.current_time() + why.retry_after_s
        log.info("the details query: %s; asking again in %.0f s", why.reason, delay)
        await trio.sleep_until(max(self._quiet_until, trio.current_time() + delay))

    def _uncovered(self, queue_id: str, since: int, until: int, reason: str) -> None:
        span = f"queue {queue_id} from {iso_of(since)} to {iso_of(until)}"
        self.counts.uncovered.append(span)
        if "HTTP 403" not in reason:  # not the permission: say what it was
            log.error("the calls of %s cannot be looked for: %s", span, reason)
            return
        log.error(
            "the calls of %s cannot be looked for: the OAuth client needs %s (%s); calls that "
            "reached the queue meanwhile are not followed or backfilled",
            span,
            absence.DETAILS_PERMISSION,
            reason,
        )

    def _sort(self, queue_id: str, found: list[CallRecord]) -> None:
        coverage = self.completeness.coverage
        shard = self.settings.shard
        followed = self.calls.conversations()
        sorted_ = absence.sort(
            found,
            shard.owns if shard is not None else lambda _: True,
            {c: s.heard for c, s in coverage.followed.items() if c in followed},
            coverage.settled,
            self.queue.jobs,
        )
        now = now_ms()
        for call in sorted_.follow:
            start = call.start_ms if call.start_ms is not None else now
            self.completeness.carry(call.conversation_id, start, Why.QUEUE_ABSENCE)
            self.calls.add_conversation(call.conversation_id)
        self.completeness.queue_gaps(
            Gap(
                call.conversation_id,
                call.start_ms if call.start_ms is not None else 0,
                call.end_ms if call.end_ms is not None else now,
                Why.QUEUE_ABSENCE,
                call.communications,
            )
            for call in sorted_.backfill
        )
        for call in sorted_.found_ended:
            self.completeness.report(Unfollowed(call.conversation_id, Ended.FOUND_ENDED, now))
            self.calls.remove_conversation(call.conversation_id)
        self.counts.found_absent += len(sorted_.follow) + len(sorted_.backfill)
        log.info(
            "queue %s: %d call(s) during the absence: %d in progress (followed), %d ended "
            "(queued for backfill), %d followed again found ended, %d already known",
            queue_id,
            len(found),
            len(sorted_.follow),
            len(sorted_.backfill),
            len(sorted_.found_ended),
            sorted_.skipped,
        )

    # --- filling gaps -----------------------------------------------------------------------

    async def _fill(self, write: WriteBatch, settle: Callable[[], Awaitable[bool]]) -> None:
        while True:
            due = self._due()
            if not due:
                with trio.move_on_after(self.settings.check_s):
                    await self.queue.changed.wait()
                continue
            for job in due:
                # One conversation's 429 holds them all: the rate limit is the client's.
                await trio.sleep_until(self._quiet_until)
                self.carry_out(job, await self.attempt(job, write, settle))

    def _due(self) -> list[Job]:
        """Jobs to try now; one still followed is not due (``Outcome.FOLLOWED``: wait).
        O(jobs): each is looked up in the channel plan, the followed are not listed."""
        now = trio.current_time()
        follows = self.calls.follows
        return [
            job
            for job in list(self.queue.jobs.values())
            if job.next_at <= now and not follows(job.conversation_id)
        ]

    async def attempt(
        self, job: Job, write: WriteBatch, settle: Callable[[], Awaitable[bool]]
    ) -> Attempt:
        """One try at one conversation, and what it found."""
        fetched = await fetch_transcripts(
            self.client,
            job.conversation_id,
            job.communications,
            self.settings.url_attempts,
            decorated=self.settings.decorated_text,
        )
        if isinstance(fetched, Refused):
            return Attempt(Outcome.REFUSED, fetched.reason)
        if isinstance(fetched, InProgress):
            return Attempt(Outcome.IN_PROGRESS, fetched.reason)
        if isinstance(fetched, NotYet):
            return Attempt(Outcome.NOT_YET, fetched.reason, fetched.retry_after_s)
        if not await settle():  # the live rows read so far are in the store before we compare
            return Attempt(Outcome.UNSETTLED, "live rows are still on their way to the store")
        filled = await fill(
            fetched.transcripts, job.windows, self.stored, job.conversation_id, write
        )
        if isinstance(filled, Failed):
            return Attempt(filled.outcome, filled.reason, fetched=fetched)
        return Attempt(Outcome.FILLED, fetched=fetched, filled=filled)

    def carry_out(self, job: Job, attempt: Attempt) -> Step:
        """What ``fillplan.py`` says after ``attempt``, done: settle, retry later, give up."""
        if attempt.fetched is not None:
            self.counts.expired_urls += attempt.fetched.expired_urls
            for communication in attempt.fetched.communications:
                if communication not in job.communications:
                    job.communications.append(communication)
        give_up_ms = int(self.settings.give_up_s * 1000)
        step, stage = decide(job.stage, attempt.outcome, job.since_ms, now_ms(), give_up_ms)
        try:
            if step is Step.DONE:
                assert attempt.filled is not None, "FILLED carries what was filled"
                self._settled(job, attempt.filled)
                self.counts.add(attempt.filled)
            elif step is Step.GIVE_UP:
                reason = attempt.reason
                if attempt.outcome is not Outcome.REFUSED:
                    reason = f"still not available after {self.settings.give_up_s:.0f} s: {reason}"
                self._give_up(job, reason)
        except OSError as exc:
            # Not settled on disk: the job stays open and is tried again (a repeat writes
            # nothing twice: the same ids, and what is stored covers the rest).
            log.error(
                "cannot write %s (%s): conversation %s tried again later",
                self.queue.path,
                exc,
                job.conversation_id,
            )
            self._later(job, Attempt(Outcome.NOT_YET, f"cannot settle: {exc}"))
            return Step.RETRY
        job.stage = stage
        if step is Step.RETRY:
            self._later(job, attempt)
        return step

    def _later(self, job: Job, attempt: Attempt) -> None:
        if attempt.retry_after_s is not None:
            self._quiet_until = trio.current_time() + attempt.retry_after_s
        delay = next_delay(job.attempts, attempt.retry_after_s, self.settings.retry, self._rng)
        job.attempts += 1
        job.next_at = trio.current_time() + delay
        self.counts.retries += 1
        log.info(
            "backfill of %s: %s (%s); trying again in %.0f s",
            job.conversation_id,
            attempt.outcome.value,
            attempt.reason,
            delay,
        )

    def _give_up(self, job: Job, reason: str) -> None:
        self.queue.settle(job.conversation_id, "dead", {"reason": reason})  # first: may fail
        self.counts.given_up += 1
        log.error(
            "backfill of conversation %s given up: %s; dead letter in %s",
            job.conversation_id,
            reason,
            self.dead_letters.path,
        )
        self.dead_letters.put_nowait(
            "backfill",
            backfill_line(
                job.conversation_id,
                job.communications,
                [(w.start_ms, w.end_ms) for w in job.windows],
                reason,
            ),
        )

    def _settled(self, job: Job, filled: Filled) -> None:
        plans, result = filled.plans, filled.result
        log.info(
            "backfilled conversation %s: %d utterance(s) written, %d already stored live, "
            "%d written before, %d outside its gaps%s",
            job.conversation_id,
            result.acknowledged,
            sum(p.covered_live for p in plans),
            sum(p.already_backfilled for p in plans),
            sum(p.outside_gaps for p in plans),
            f", {len(result.rejected)} refused (dead letters)" if result.rejected else "",
        )
        self.queue.settle(job.conversation_id, "done", {"written": result.acknowledged})


async def fetch_transcripts(
    client: PostCallClient,
    conversation_id: str,
    communications: Sequence[str],
    url_attempts: int = 3,
    *,
    decorated: bool = False,
) -> Fetched | InProgress | NotYet | Refused:
    """Every transcript of a conversation's communications; when none is known (a call
    never heard, the ``backfill`` command), analytics names them, and says whether the call
    has ended. A URL that expired before it was read is asked for anew, ``url_attempts``
    times."""
    comms = tuple(communications)
    if not comms:
        call = await client.call(conversation_id)
        if not isinstance(call, CallRecord):
            return call
        if not call.communications:
            return Refused("the conversation details name no voice communication")
        comms = call.communications
        if call.end_ms is None:
            return InProgress("the conversation details have no conversationEnd yet")
    found: list[PostCallTranscript] = []
    expired = 0
    for communication in comms:
        for _ in range(url_attempts):
            urls = await client.transcript_urls(conversation_id, communication)
            if not isinstance(urls, list):
                return urls
            documents = [await client.document(url) for url in urls]
            if any(d is None for d in documents):
                expired += 1
                log.info(
                    "a transcript URL of %s expired before it was read; asking for new ones",
                    conversation_id,
                )
                continue
            for document in documents:
                if isinstance(document, NotYet | Refused):
                    return document
                assert document is not None
                parsed = parse_transcript(
                    document, conversation_id, communication, decorated=decorated
                )
                if isinstance(parsed, Malformed):
                    return Refused(f"transcript of {communication}: {parsed.reason}")
                for problem in parsed.problems:
                    log.warning(
                        "transcript of %s/%s: phrase not usable: %s",
                        conversation_id,
                        communication,
                        problem,
                    )
                found.append(parsed)
            break
        else:
            return NotYet(f"{url_attempts} transcript URLs in a row expired before being read")
    return Fetched(tuple(found), comms, expired)


async def fill(
    transcripts: Sequence[PostCallTranscript],
    windows: Sequence[Window] | None,
    stored: StoredLookup,
    conversation_id: str,
    write: WriteBatch,
) -> Filled | Failed:
    """Compare with what is stored (``gapfill.py``) and write what is missing. A store that
    cannot be read and a write that fails are told apart."""
    try:
        held = await stored(conversation_id)
    except (FatalError, ConfigError, OSError) as exc:
        return Failed(Outcome.STORE_UNREADABLE, f"cannot read what is stored: {exc}")
    plans = tuple(plan(t, windows, held) for t in transcripts)
    utterances = [u for p in plans for u in p.utterances]
    try:
        result = await write(utterances) if utterances else WriteResult()
    except (FatalError, OSError) as exc:
        return Failed(Outcome.WRITE_FAILED, f"cannot write: {exc}")
    return Filled(plans, result)
