"""The post-call backfill: the task that fills each recorded gap.

The platform does not replay notifications (``../shared/genesys-api.md``, section 6), so
every stretch the live stream missed is written down first (``gaprecords.py``: a gap a source
closed, a session that ended unseen, the time the worker was not running) and filled here:

* Once a conversation with a gap has ended (followed no more: ``SESSION_ENDED`` seen, or
  silent past the keepalive, ``liveness.py``), :class:`Backfiller` asks for its post-call
  transcript (``postcall.py``), decides what fills a gap and is not stored yet
  (``gapfill.py``, after every live row routed so far has its sink result), and writes that
  through the worker's sink, which accounts for it separately.
* A transcript not yet available (404) is asked for again with backoff until ``give_up_s``
  after the gap began; then a ``backfill`` dead letter says which conversation and why. An
  expired URL is asked for anew (``fetch_transcripts``).
* At start, one request for the transcript of a conversation that cannot exist is the
  permission check: 404 means the client may read transcripts; 403 means it may not, and the
  backfill is off with one log line naming the permissions (gap records are still kept, for
  ``backfill`` runs once the role is fixed).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from .errors import ConfigError, FatalError
from .gapfill import Plan, StoredUtterance, Window, plan
from .gaprecords import WORKER_NOT_RUNNING, BackfillQueue, GapRecord, Heartbeat, Job, now_ms
from .model import Malformed, Utterance
from .postcall import NotYet, PostCallClient, Refused
from .retry import Backoff, next_delay
from .sinks import WriteResult
from .sinks.deadletter import DeadLetters, backfill_line
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

# --- the task ---------------------------------------------------------------------------


class Calls(Protocol):
    """What the source follows now, and the communications it saw of each (the Notifications
    source)."""

    def conversations(self) -> Collection[str]: ...

    def communications(self, conversation_id: str) -> tuple[str, ...]: ...

    def resume(self, conversations: dict[str, list[str]]) -> None:
        """Those followed before a restart: watch them for silence from now."""


StoredLookup = Callable[[str], Awaitable[list[StoredUtterance]]]
"""What the store holds of one conversation (``stored.py``, in a thread)."""
WriteBatch = Callable[[Sequence[Utterance]], Awaitable[WriteResult]]
"""The worker's sink, serialised with its writer and accounted as backfill."""


@dataclass(frozen=True)
class BackfillSettings:
    give_up_s: float = 86_400.0
    retry: Backoff = Backoff(base_s=30.0, cap_s=1_800.0)
    check_s: float = 5.0  # how often due jobs are looked for (a new gap wakes it at once)
    heartbeat_s: float = 10.0
    url_attempts: int = 3  # fresh URLs asked for when the ones in hand expired
    decorated_text: bool = False  # a phrase's decoratedText where given (``--text``)


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


class Backfiller:
    """The backfill task (module docstring); its parts are passed in."""

    def __init__(
        self,
        queue: BackfillQueue,
        client: PostCallClient,
        stored: StoredLookup,
        dead_letters: DeadLetters,
        calls: Calls,
        *,
        settings: BackfillSettings = BackfillSettings(),
        rng: random.Random | None = None,
    ) -> None:
        self.queue = queue
        self.client = client
        self.stored = stored
        self.dead_letters = dead_letters
        self.calls = calls
        self.settings = settings
        self.heartbeat = Heartbeat(queue.state_dir)
        self.counts = BackfillCounts()
        self.enabled: bool | None = None  # known once the permission probe answered
        self.probed = trio.Event()
        self._rng = rng or random.Random()
        self._tried = trio.Event()
        self._quiet_until = 0.0  # Trio clock: the API asked us (Retry-After) to hold off

    async def wait_empty(self) -> None:
        """Wait until no conversation is left to backfill (tests, the ``backfill`` command)."""
        while self.queue.jobs:
            await self._tried.wait()

    async def run(
        self,
        write: WriteBatch,
        settle: Callable[[], Awaitable[bool]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Record the restart gap, beat, and fill gaps until cancelled."""
        calls = self.calls
        try:
            self.queue.load()
            self._restart_gap(calls)
        except OSError as exc:
            raise FatalError(
                f"the state directory {self.queue.state_dir} (gap records, --state-dir) cannot "
                f"be used: {exc}"
            ) from exc
        task_status.started()  # the probe below may wait on the API: the worker goes on
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._beat, calls)
                refused = await self.client.may_read_transcripts()
                self.enabled = refused is None
                self.probed.set()
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
                    nursery.start_soon(self._fill, calls, write, settle)
        finally:
            self._beat_once(calls)
            with trio.CancelScope(shield=True):
                await self.client.aclose()

    def _restart_gap(self, calls: Calls) -> None:
        last = self.heartbeat.read()
        if last is None:
            return
        at, followed = last
        calls.resume(followed)
        now = now_ms()
        self.queue.record(
            [
                GapRecord(c, at, now, WORKER_NOT_RUNNING, tuple(comms))
                for c, comms in followed.items()
            ]
        )
        if followed:
            log.warning(
                "the worker was not running from %s to %s (%.0f s): %d conversation(s) queued "
                "for backfill",
                iso_of(at),
                iso_of(now),
                (now - at) / 1000,
                len(followed),
            )

    async def _beat(self, calls: Calls) -> None:
        # The first beat waits a period: the last run's file, already recorded as a gap, must
        # not be replaced by one written before the source has placed its conversations.
        while True:
            await trio.sleep(self.settings.heartbeat_s)
            self._beat_once(calls)

    def _beat_once(self, calls: Calls) -> None:
        followed = {c: list(calls.communications(c)) for c in calls.conversations()}
        try:
            self.heartbeat.write(now_ms(), followed)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.heartbeat.path, exc)

    async def _fill(
        self, calls: Calls, write: WriteBatch, settle: Callable[[], Awaitable[bool]]
    ) -> None:
        while True:
            due = self._due(calls)
            if not due:
                changed = self.queue.changed
                with trio.move_on_after(self.settings.check_s):
                    await changed.wait()
                continue
            for job in due:
                # One conversation's 429 holds them all: the rate limit is the client's.
                await trio.sleep_until(self._quiet_until)
                await self.attempt(job, write, settle)
                self._tried.set()
                self._tried = trio.Event()

    def _due(self, calls: Calls) -> list[Job]:
        followed = calls.conversations()
        now = trio.current_time()
        return [
            job
            for job in list(self.queue.jobs.values())
            if job.conversation_id not in followed and job.next_at <= now
        ]

    async def attempt(
        self, job: Job, write: WriteBatch, settle: Callable[[], Awaitable[bool]]
    ) -> None:
        """One try at one conversation: written and settled, retried later, or given up."""
        transcripts = await self.transcripts(job)
        if isinstance(transcripts, Refused):
            self._give_up(job, transcripts.reason)
            return
        if isinstance(transcripts, NotYet):
            self._later(job, transcripts)
            return
        if not await settle():  # the live rows read so far are in the store before we compare
            self._later(job, NotYet("live rows are still on their way to the store"))
            return
        try:
            plans, result = await fill(
                transcripts, job.windows, self.stored, job.conversation_id, write, self.counts
            )
        except (FatalError, ConfigError, OSError) as exc:
            self._later(job, NotYet(f"cannot read what is stored: {exc}"))
            return
        self._settled(job, plans, result)

    async def transcripts(self, job: Job) -> list[PostCallTranscript] | NotYet | Refused:
        return await fetch_transcripts(
            self.client,
            job.conversation_id,
            job.communications,
            self.counts,
            self.settings.url_attempts,
            decorated=self.settings.decorated_text,
        )

    def _later(self, job: Job, why: NotYet) -> None:
        now = now_ms()
        if now - job.since_ms > self.settings.give_up_s * 1000:
            self._give_up(
                job, f"still not available after {self.settings.give_up_s:.0f} s: {why.reason}"
            )
            return
        if why.retry_after_s is not None:
            self._quiet_until = trio.current_time() + why.retry_after_s
        delay = next_delay(job.attempts, why.retry_after_s, self.settings.retry, self._rng)
        job.attempts += 1
        job.next_at = trio.current_time() + delay
        self.counts.retries += 1
        log.info(
            "post-call transcript of %s: %s; asking again in %.0f s",
            job.conversation_id,
            why.reason,
            delay,
        )

    def _give_up(self, job: Job, reason: str) -> None:
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
        self.queue.settle(job.conversation_id, "dead", {"reason": reason})

    def _settled(self, job: Job, plans: list[Plan], result: WriteResult) -> None:
        written = result.acknowledged
        log.info(
            "backfilled conversation %s: %d utterance(s) written, %d already stored live, "
            "%d written before, %d outside its gaps%s",
            job.conversation_id,
            written,
            sum(p.covered_live for p in plans),
            sum(p.already_backfilled for p in plans),
            sum(p.outside_gaps for p in plans),
            f", {len(result.rejected)} refused (dead letters)" if result.rejected else "",
        )
        self.queue.settle(job.conversation_id, "done", {"written": written})


async def fetch_transcripts(
    client: PostCallClient,
    conversation_id: str,
    communications: list[str],
    counts: BackfillCounts,
    url_attempts: int = 3,
    *,
    decorated: bool = False,
) -> list[PostCallTranscript] | NotYet | Refused:
    """Every transcript of a conversation's communications; when none is known (a restart
    gap of a call never heard, the ``backfill`` command), analytics names them, and they are
    added to ``communications``. A URL that expired before it was read is asked for anew,
    ``url_attempts`` times."""
    if not communications:
        call = await client.call(conversation_id)
        if not isinstance(call, CallRecord):
            return call
        if not call.communications:
            return Refused("the conversation details name no voice communication")
        communications.extend(call.communications)
    found: list[PostCallTranscript] = []
    for communication in communications:
        for _ in range(url_attempts):
            urls = await client.transcript_urls(conversation_id, communication)
            if not isinstance(urls, list):
                return urls
            documents = [await client.document(url) for url in urls]
            if any(d is None for d in documents):
                counts.expired_urls += 1
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
    return found


async def fill(
    transcripts: Sequence[PostCallTranscript],
    windows: Sequence[Window] | None,
    stored: StoredLookup,
    conversation_id: str,
    write: WriteBatch,
    counts: BackfillCounts,
) -> tuple[list[Plan], WriteResult]:
    """Compare with what is stored (``gapfill.py``), write what is missing, count it."""
    held = await stored(conversation_id)
    plans = [plan(t, windows, held) for t in transcripts]
    utterances = [u for p in plans for u in p.utterances]
    result = await write(utterances) if utterances else WriteResult()
    counts.written += result.acknowledged
    counts.covered += sum(p.covered_live for p in plans)
    counts.repeated += sum(p.already_backfilled for p in plans)
    counts.conversations += 1
    return plans, result
