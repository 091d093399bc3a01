"""The worker: one nursery, the data path, and an ordered shutdown that loses nothing.

A worker is given its parts (a :class:`~trio_transcripts.sources.Source`, a
:class:`~trio_transcripts.sinks.Sink`, the dead-letter file, the token manager) and swaps none
of them; :func:`~trio_transcripts.assemble.assemble` builds them from a
:class:`~trio_transcripts.config.Config`. A frame's path: source -> router (pure: coalescing
and the per-event rules, ``router.py``) -> ring -> writer -> sink. The reader awaits room in
the ring before it reads the next frame; the writer awaits the sink (which retries while the
database is down), so backpressure runs from the database back to the TCP socket.

The account (:class:`Account`) is built from what the router counted and from what the sink
returned for each batch (and the spool for each record it replayed): ``persisted`` is what
the store acknowledged, never a difference of counters.

Startup (a token, the sink ready) runs inside the lifecycle: ``stop()``, a signal or a host
cancelling at any stage ends the run at once, with a line saying what it was waiting for.

Shutdown (``stop()``, a signal, a fatal error, or cancellation by a host application) runs in
this order:

1. the source stops: sockets close with 1001 and no new frame is read;
2. the router flushes the coalescer: pending utterances become partials (``final=False``)
   and enter the ring;
3. the writer drains the ring into the sink, within ``shutdown_timeout_s``;
4. what the sink did not take by then (the batch in flight, what is left in the ring) goes
   to the dead-letter file;
5. the spool replay, the token refresher and the dead-letter writer stop last, and the
   dead letters still queued are written; what a full disk refused even then is in the
   account as not kept, and the run ends with :class:`~trio_transcripts.errors.DataNotKept`
   (exit code 74).

The writer and those last tasks run under shielded scopes that only this module cancels, so a
host cancelling the worker still gets the full drain, bounded by the shutdown timeout. Which
stage the worker is in, and what a stop, a hurry, a fatal error or the deadline makes it do
there, is one table (``lifecycle.py``); the methods here tell it what happened and carry out
its answer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import msgspec
import trio

from .account import Account, Ledger, SetAside, not_kept_words
from .auth import TokenManager
from .backfill import Backfiller
from .backpressure import BackpressureQueue
from .coalesce import Coalescer
from .config import WorkerSettings
from .diskfull import Disk
from .errors import DataNotKept, FatalError, FatalSinkError, SourceError, first_fatal
from .lifecycle import Do, Event, Lifecycle
from .logthrottle import Repeated, Repeats
from .model import SessionLost, Utterance
from .pulse import Pulse
from .redaction import redact_url
from .ring import RingFull
from .router import Action, Enqueue, Router, SetAsideFragment, SetAsideFrame, SourceEvent
from .sensitive import Kind, Screen, describe_kinds
from .sinks import Pingable, Sink, WriteResult
from .sinks.deadletter import DeadLetters, fragment_line, frame_line
from .snapshot import Snapshot, status_line
from .sources import Calls, Source, SourceHealth, Watched
from .spool import Spool, SpoolingSink

log = logging.getLogger("trio_transcripts.worker")
# Its own logger: a shard process reports snapshots instead, and turns it down
# (``shard_process.py``).
status_log = logging.getLogger("trio_transcripts.status")

FRAMES_SET_ASIDE = Repeated(
    "frame set aside",
    "set aside {count:,} more malformed frames in the last {seconds:.0f} s; first: {first}",
)
UTTERANCES_SET_ASIDE = Repeated(
    "utterances set aside",
    "{count:,} more times utterances were not persisted in the last {seconds:.0f} s; "
    "first: {first}",
)
FRAGMENTS_SET_ASIDE = Repeated(
    "fragment set aside",
    "set aside {count:,} more fragments in the last {seconds:.0f} s; first: {first}",
)


class WriteObserver(Protocol):
    """Told of every batch the writer wrote (metrics: latency, size, lag)."""

    def written(self, seconds: float, batch: Sequence[Utterance], result: WriteResult) -> None:
        """``batch`` took ``seconds`` and became ``result``."""


def now_ms() -> int:
    """The wall clock, epoch ms: the start the coalescer gives a fragment that came with
    none (every other time stored is the platform's)."""
    return time.time_ns() // 1_000_000


def tick_ms() -> int:
    """The monotonic clock, ms: the coalescer's idle timeout, which an NTP step of the wall
    clock must neither trip at once (forward) nor hold back for the step (back)."""
    return time.monotonic_ns() // 1_000_000


class Worker:
    """See the module docstring. Run it with ``await nursery.start(worker.run)``."""

    def __init__(
        self,
        *,
        source: Source,
        sink: Sink,
        dead_letters: DeadLetters,
        tokens: TokenManager | None = None,
        settings: WorkerSettings = WorkerSettings(),
        observer: WriteObserver | None = None,
        backfill: Backfiller | None = None,
        spool: Spool | None = None,
        disk: Disk | None = None,
        repeats: Repeats | None = None,
    ) -> None:
        """With ``spool`` (``--spool``), what ``sink`` does not take within
        ``settings.spool_after_s`` waits there, and is replayed (``spool.py``). ``disk`` is
        the record of which files a full disk refuses (``diskfull.py``), shared with the
        parts that write (``assemble.py``), for readiness and the metrics; ``repeats``
        rate-limits the log lines a flood repeats (``logthrottle.py``), shared likewise."""
        if isinstance(sink, SpoolingSink):
            raise TypeError("pass the spool as spool=, and the store it guards as sink=")
        self.disk = disk or Disk()
        self.repeats = repeats or Repeats()
        spooling = (
            SpoolingSink(sink, spool, spool_after_s=settings.spool_after_s, disk=self.disk)
            if spool is not None
            else None
        )
        self.source = source
        self.backfill = backfill
        self.sink: Sink = spooling if spooling is not None else sink
        self.dead_letters = dead_letters
        self.tokens = tokens
        self.settings = settings
        self.observer = observer
        self.last_frame_at: float | None = None  # trio clock
        self.sink_ok_at: float | None = None  # trio clock: ready, or a write acknowledged
        self.router = Router(
            Coalescer(source.merge, idle_timeout_ms=settings.idle_timeout_ms),
            Screen(settings.redact, settings.phone_regions),
        )
        self.backfill_screen = Screen(settings.redact, settings.phone_regions)
        self.queue: BackpressureQueue[Utterance] = BackpressureQueue(
            settings.buffer_capacity, high_water=settings.high_water, low_water=settings.low_water
        )
        self.lifecycle = Lifecycle()
        self.last_write_latency_s = 0.0
        self.ledger = Ledger()
        self._spooling = spooling
        # The scopes the lifecycle's answers act on (``_handle``).
        self._startup = trio.CancelScope()
        self._readers = trio.CancelScope()
        self._writer_scope = trio.CancelScope(shield=True)
        self._writer_done = trio.Event()
        self._services: list[trio.CancelScope] = []
        self._inflight: Sequence[Utterance] = ()
        self._progress = Pulse()  # a batch written, a record replayed
        # The writer and the backfill take turns at the sink: a sink writes one batch at a
        # time (the file sink appends from a thread), and each result is accounted to its own.
        self._sink_turn = trio.Lock()
        self._resolved = 0  # live utterances the writer has had a sink result for

    # --- control ----------------------------------------------------------------------

    def stop(self) -> None:
        """Begin the ordered shutdown (at once, if the worker is still starting)."""
        self._handle(Event.STOP)

    def hurry(self) -> None:
        """Skip the wait for the writer (a second SIGINT): dead-letter what is left now."""
        self._handle(Event.HURRY)

    @property
    def fatal(self) -> FatalError | None:
        """The run's fatal error (the first), raised at its end; None so far."""
        return self.lifecycle.fatal

    def waiting_for(self) -> str | None:
        """What the worker waits for before it can read: a startup stage, or the source's."""
        source = self.source
        return self.lifecycle.waiting or (
            source.waiting_for() if isinstance(source, Watched) else None
        )

    def _handle(self, event: Event, error: FatalError | None = None) -> None:
        """Tell the lifecycle what happened, and carry out its answer."""
        waiting = self.waiting_for()
        for do in self.lifecycle.handle(event, error):
            if do is Do.WARN_WAITING:
                if waiting is not None:
                    log.warning("stopping while still waiting for %s", waiting)
            elif do is Do.CANCEL_STARTUP:
                self._startup.cancel()
            elif do is Do.SHIELD_SERVICES:
                for scope in self._services:
                    scope.shield = True
            elif do is Do.STOP_READING:
                log.info("shutting down: no more frames will be read")
                self._readers.cancel()
            elif do is Do.CANCEL_WRITER:
                self._writer_scope.cancel()
            elif do is Do.CANCEL_SERVICES:
                for scope in self._services:
                    scope.cancel()

    def add_conversation(self, conversation_id: str) -> None:
        """Follow one more conversation, at run time (the Notifications source)."""
        self._calls().add_conversation(conversation_id)

    def remove_conversation(self, conversation_id: str) -> None:
        """Stop following a conversation, at run time (the Notifications source)."""
        self._calls().remove_conversation(conversation_id)

    def _calls(self) -> Calls:
        if not isinstance(self.source, Calls):
            raise SourceError(
                f"conversations are added and removed on the Notifications source; the "
                f"{self.source.kind} source follows what it is given"
            )
        return self.source

    async def wait_progress(self) -> None:
        """Wait until the writer finishes its next batch (or the spool replays a record)."""
        await self._progress.wait()

    def _made_progress(self) -> None:
        self._progress.fire()

    @property
    def stopping(self) -> bool:
        return self.lifecycle.stopping

    @property
    def account(self) -> Account:
        redacted = self.router.screen.counts + self.backfill_screen.counts
        backfill = self.backfill
        if backfill is None:
            return self.ledger.account(self.router.counts, self.source.gaps, redacted=redacted)
        queued = {why.value: n for why, n in backfill.completeness.recorded.items()}
        return self.ledger.account(
            self.router.counts, self.source.gaps, queued, backfill.counts.uncovered, redacted
        )

    def idle(self) -> bool:
        """Nothing pending anywhere: coalescer, ring, a write in flight, or the spool."""
        spooling = self._spooling is not None and self._spooling.backlog
        return not (self.router.pending or len(self.queue) or self._inflight or spooling)

    # --- the data path ----------------------------------------------------------------

    async def _on_event(self, event: SourceEvent, frame: str | bytes) -> None:
        """One frame's event through the router, and what it said done; one checkpoint.

        While the ring has room nothing here waits: utterances go in without a scheduler
        visit each, and the one checkpoint at the end lets cancellation in and gives the
        writer and the socket's reads a turn; the source finds the next frame of the read
        already split off (``sources/_socket.py``). A full ring parks the reader in ``put``.
        """
        if not isinstance(event, SessionLost):
            self.last_frame_at = trio.current_time()
        actions = self.router.route(event, now_ms(), tick_ms())
        if actions:
            await self._carry_out(actions, frame)
        await trio.lowlevel.checkpoint()

    async def _carry_out(self, actions: Sequence[Action], frame: str | bytes = "") -> None:
        """Do what the router said. The router has already let go of what its actions
        carry (a final left the coalescer), so a cancellation (shutdown) part-way must not
        drop the rest: they are carried out at once, without waiting for room."""
        for i, action in enumerate(actions):
            try:
                if isinstance(action, Enqueue):
                    try:
                        self.queue.put_nowait(action.utterance)
                    except trio.WouldBlock:  # paused or full: wait for the writer
                        await self.queue.put(action.utterance)
                else:
                    await self.dead_letters.put(*self._set_aside(action, frame))
            except trio.Cancelled:
                for rest in actions[i:]:
                    if isinstance(rest, Enqueue):
                        self._enqueue_now(rest.utterance)
                    else:
                        self.dead_letters.put_nowait(*self._set_aside(rest, frame))
                raise

    def _set_aside(
        self, action: SetAsideFrame | SetAsideFragment, frame: str | bytes
    ) -> tuple[str, bytes]:
        """The log line (rate-limited) and dead-letter record of a frame or fragment set
        aside, its text through the screen as every text that is written."""
        screen = self.router.screen
        if isinstance(action, SetAsideFrame):
            self.repeats.log(
                log,
                logging.WARNING,
                FRAMES_SET_ASIDE,
                f"{self.source.kind} frame set aside in {self.dead_letters.path}: {action.reason}",
            )
            return "frame", frame_line(frame, action.reason, self.source.kind, screen)
        fragment = msgspec.structs.replace(action.fragment, text=screen.text(action.fragment.text))
        self.repeats.log(
            log,
            logging.WARNING,
            FRAGMENTS_SET_ASIDE,
            f"fragment of {fragment.conversation_id}/{fragment.utterance_id} set aside in "
            f"{self.dead_letters.path}: {action.reason}",
        )
        return "fragment", fragment_line(fragment, action.reason)

    def _enqueue_now(self, utterance: Utterance) -> None:
        """Shutdown path: into the ring without waiting; if it is truly full, dead-letter."""
        try:
            self.queue.put_unbounded(utterance)
        except (RingFull, trio.ClosedResourceError):
            self._dead_letter(
                [utterance], "pending at shutdown, ring buffer full", SetAside.RING_FULL
            )

    def _dead_letter(self, utterances: Sequence[Utterance], reason: str, why: SetAside) -> None:
        if utterances:
            self.repeats.log(
                log,
                logging.ERROR,
                UTTERANCES_SET_ASIDE,
                f"{len(utterances)} utterance(s) not persisted ({reason}); queued for the "
                f"dead-letter file {self.dead_letters.path}",
            )
            self.dead_letters.utterances_nowait(utterances, reason)
            self.ledger.set_aside(len(utterances), why)

    def _record(
        self, result: WriteResult, batch: Sequence[Utterance], *, backfill: bool = False
    ) -> None:
        """Account for one write; synchronous, so no cancellation falls between. (A batch the
        sink answered wrongly for is the caller's to set aside: the writer dead-letters it,
        the backfill leaves its conversation in the queue for the next start.)"""
        problem = Ledger.problem(result, len(batch))
        if problem is not None:
            raise FatalSinkError(
                f"the sink {self.sink.describe()} {problem}: a bug in the sink", batch
            )
        self.ledger.written(result, backfill=backfill)
        self._reject(result)

    async def write_backfill(self, batch: Sequence[Utterance]) -> WriteResult:
        """The backfill's batch into the sink, between the writer's, accounted as backfill;
        its phrases pass the screen as live utterances do, a speaker's consecutive phrases
        checked together (``sensitive.Screen.batch``)."""
        batch = self.backfill_screen.batch(batch)
        async with self._sink_turn:
            result = await self.sink.write(batch)
        self._record(result, batch, backfill=True)
        self._made_progress()
        return result

    async def settled(self) -> bool:
        """Wait (a minute at most) until every live utterance routed so far has a sink result
        and the spool holds none: the backfill compares with the store only then, or it would
        write again what is on its way there. False when that did not happen in time."""
        counts = self.router.counts
        routed = counts.finals + counts.partials

        def pending() -> bool:
            spooled = self._spooling is not None and self._spooling.backlog
            return self._resolved < routed or bool(spooled)

        with trio.move_on_after(60):
            while pending() and not self.stopping:
                await self._progress.wait()
        return not pending()

    def _reject(self, result: WriteResult) -> None:
        for rejected in result.rejected:
            self._dead_letter([rejected.utterance], rejected.reason, SetAside.REJECTED)

    def _replayed(self, result: WriteResult) -> None:
        self.ledger.replayed_from_spool(result)
        self._reject(result)
        self._made_progress()

    async def _writer(self) -> None:
        """Batches from the ring into the sink, until the ring is closed and empty."""
        wait_s = self.settings.batch_wait_ms / 1000
        batch_size = self.settings.batch_size
        with self._writer_scope:
            try:
                while True:
                    try:
                        batch = await self.queue.get_batch(batch_size)
                    except trio.EndOfChannel:
                        return
                    self._inflight = batch
                    missing = batch_size - len(batch)
                    if missing:
                        # One wake-up when the batch is full or its oldest item has waited
                        # long enough, not one per utterance.
                        with contextlib.suppress(trio.EndOfChannel):
                            batch.extend(
                                await self.queue.get_batch(
                                    missing,
                                    deadline=trio.current_time() + wait_s,
                                    min_items=missing,
                                )
                            )
                    started = time.perf_counter()
                    async with self._sink_turn:
                        result = await self.sink.write(batch)
                    self.last_write_latency_s = time.perf_counter() - started
                    self._inflight = ()
                    self._record(result, batch)
                    self._resolved += len(batch)
                    if result.acknowledged:
                        self.sink_ok_at = trio.current_time()
                    if self.observer is not None:
                        self.observer.written(self.last_write_latency_s, batch, result)
                    self._made_progress()
            except FatalSinkError as exc:
                self._fail(exc)
                self._dead_letter(
                    exc.unwritten or self._inflight, f"sink failed: {exc}", SetAside.SINK_FAILED
                )
                self._inflight = ()
            finally:
                self._dead_letter(
                    self._inflight,
                    "not acknowledged by the sink before the shutdown deadline",
                    SetAside.DEADLINE,
                )
                self._inflight = ()
                self._writer_done.set()

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(1)
            self.repeats.flush_due()
            expired = self.router.expire(tick_ms())
            for action in expired:
                log.info(
                    "utterance %s/%s idle for %d s: persisted as partial",
                    action.utterance.conversation_id,
                    action.utterance.utterance_id,
                    self.settings.idle_timeout_ms // 1000,
                )
            await self._carry_out(expired)

    async def _check_sink(self) -> None:
        """Ping a quiet sink, so readiness knows it still answers when no data flows."""
        sink = self.sink
        if not isinstance(sink, Pingable):
            return
        interval = self.settings.ready_sink_s / 3
        while True:
            await trio.sleep(interval)
            ok_at = self.sink_ok_at
            if (ok_at is None or trio.current_time() - ok_at >= interval) and await sink.ping():
                self.sink_ok_at = trio.current_time()

    async def _status(self) -> None:
        last = self.snapshot()
        while True:
            await trio.sleep(self.settings.status_interval_s)
            now = self.snapshot()
            rate = (now.account.frames - last.account.frames) / max(now.at - last.at, 1e-9)
            last = now
            status_log.info(status_line(now, rate))

    def _backfill_state(self) -> str:
        if self.backfill is None:
            return "off"
        enabled = self.backfill.enabled
        return "probing" if enabled is None else "on" if enabled else "refused"

    def snapshot(self) -> Snapshot:
        """Where the worker is, in one frozen value (``snapshot.py``); cheap: no I/O."""
        now = trio.current_time()
        stats = self.queue.statistics()
        source = self.source
        health, reconnects = SourceHealth(0, 0, 0), {}
        if isinstance(source, Watched):
            health, reconnects = source.health(now), dict(source.reconnects())
        tokens = self.tokens
        return Snapshot(
            at=now,
            account=self.account,
            source=self.source.kind,
            set_aside_by={why.value: n for why, n in self.ledger.set_aside_by.items()},
            reconnects=reconnects,
            token_needed=tokens is not None,
            token_valid=tokens is not None and tokens.valid(),
            token_renewals=tokens.renewals if tokens is not None else 0,
            ring_count=stats.count,
            ring_capacity=stats.capacity,
            ring_paused=stats.paused,
            ring_pauses=stats.pauses,
            ring_peak=stats.peak,
            pending=self.router.pending,
            sockets=health.sockets,
            live_sockets=health.live,
            topics=health.topics,
            spool_bytes=self._spooling.bytes if self._spooling is not None else 0,
            since_last_frame_s=None if self.last_frame_at is None else now - self.last_frame_at,
            sink=self.sink.describe(),
            sink_ok_age_s=None if self.sink_ok_at is None else now - self.sink_ok_at,
            last_write_s=self.last_write_latency_s,
            backfill=self._backfill_state(),
            stopping=self.stopping,
            disk_full=tuple(r.describe() for r in self.disk.refused()),
            disk_full_waits=self.disk.waits,
        )

    def _fail(self, exc: FatalError) -> None:
        log.error("fatal: %s", exc)
        self._handle(Event.FATAL, exc)

    # --- the nursery ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop`, a fatal error or cancellation; then drain in order.

        Raises the fatal error (a :class:`~trio_transcripts.errors.FatalError`) after the
        drain, if there was one. Stopped during startup, it returns without reporting
        started.
        """
        try:
            async with trio.open_nursery() as nursery:
                # The writer waits on the empty ring until the reader fills it (or the drain
                # closes it, if the run stops during startup).
                nursery.start_soon(self._writer)
                try:
                    if await self._start(nursery):
                        await self._read(nursery, task_status)
                finally:
                    await self._drain()
        except* FatalError as group:
            fatal = first_fatal(group)
            assert fatal is not None, "except* matched a FatalError"
            self._fail(fatal)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    unwritten = await self.dead_letters.close()
                    if self.backfill is not None:
                        unwritten |= self.backfill.completeness.unwritten()
                    self.ledger.left_unwritten(unwritten.counts)
                    await self.sink.aclose()
                    if self.tokens is not None:
                        await self.tokens.aclose()
                finally:
                    self.repeats.flush()
            self._handle(Event.CLOSED)
            log.info("account: %s", self.account.summary())
        if unwritten.counts:
            message = (
                f"{not_kept_words(unwritten.counts)} could not be written anywhere: "
                f"{' and '.join(unwritten.where)} refused them at shutdown"
            )
            if unwritten.disk_full and self.fatal is None:
                raise DataNotKept(message, dict(unwritten.counts))  # exit 74: the disk
            if self.fatal is not None:
                message += f" (after: {self.fatal})"
            raise FatalError(message) from self.fatal  # exit 1: waiting would not help
        if self.fatal is not None:
            raise self.fatal

    async def _start(self, nursery: trio.Nursery) -> bool:
        """A token, then the sink ready; False when stopped before both were."""
        with self._startup:
            nursery.start_soon(self._service, self.dead_letters.run)
            if self.tokens is not None:
                self.lifecycle.starting(
                    f"a token from {redact_url(self.tokens.credentials.login_url)}"
                )
                await nursery.start(self._service, self.tokens.run)
            self.lifecycle.starting(f"{self.sink.describe()} to be ready")
            await self.sink.open()
            self.sink_ok_at = trio.current_time()
            self._handle(Event.STARTED)
            log.info(
                "writing to %s; dead letters to %s",
                self.sink.describe(),
                self.dead_letters.path.resolve(),
            )
            phones = self.settings.phone_regions if Kind.PHONE in self.settings.redact else ()
            log.info(
                "redacting %s%s from every text before it is written (--redact or REDACT: "
                "%s, or none)",
                describe_kinds(self.settings.redact),
                f" (phone numbers of {','.join(phones)})" if phones else "",
                ", ".join(k.value for k in Kind),
            )
            return not self.lifecycle.stopping  # a stop in the same turn: nothing is read
        return False

    async def _service(
        self,
        fn: Callable[..., Awaitable[None]],
        *args: object,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run a task that outlives the drain (refresher, replay, dead letters): its scope is
        shielded once startup is over, and cancelled by :meth:`run`, last."""
        scope = trio.CancelScope(shield=self.lifecycle.services_shielded)
        self._services.append(scope)
        with scope:
            try:
                if task_status is trio.TASK_STATUS_IGNORED:
                    await fn(*args)
                else:
                    await fn(*args, task_status=task_status)
            except FatalError as exc:
                self._fail(exc)
                raise

    async def _read(self, nursery: trio.Nursery, task_status: trio.TaskStatus[Worker]) -> None:
        if self._spooling is not None:
            # A fatal error there leaves the record on disk for the next start.
            nursery.start_soon(
                self._service, self._spooling.replay, self._replayed, self._made_progress
            )
        with self._readers:  # cancelled by Do.STOP_READING
            async with trio.open_nursery() as readers:
                if self.backfill is not None:
                    # Before the source: what may be missed is on disk before a frame is read.
                    await readers.start(self.backfill.run, self.write_backfill, self.settled)
                readers.start_soon(self._run_source)
                readers.start_soon(self._sweeper)
                readers.start_soon(self._status)
                readers.start_soon(self._check_sink)
                task_status.started(self)

    async def _run_source(self) -> None:
        try:
            await self.source.run(self._on_event)
        except* FatalError as group:
            fatal = first_fatal(group)
            assert fatal is not None, "except* matched a FatalError"
            self._fail(fatal)

    async def _drain(self) -> None:
        with trio.CancelScope(shield=True):
            self._handle(Event.STOP)  # a host cancelling: no stop() came
            partials = self.router.flush()
            if partials:
                log.info("flushing %d pending utterance(s) as partials", len(partials))
            for action in partials:
                self._enqueue_now(action.utterance)
            self.queue.close()
            done = self._writer_done
            with trio.move_on_after(self.settings.shutdown_timeout_s):
                await done.wait()
            if not done.is_set():
                log.error(
                    "the sink did not take everything within %g s",
                    self.settings.shutdown_timeout_s,
                )
                self._handle(Event.DEADLINE)
                await done.wait()
            leftovers = self.queue.take_nowait(self.settings.buffer_capacity)
            self._dead_letter(
                leftovers, "not persisted before the shutdown deadline", SetAside.DEADLINE
            )
            self._handle(Event.DRAINED)
