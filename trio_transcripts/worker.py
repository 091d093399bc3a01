"""The worker: one nursery, the data path, and an ordered shutdown that loses nothing.

Tasks: the token refresher, the source reader(s), the writer that drains the ring buffer into
the sink, a sweeper that expires idle utterances, and a status line. A frame's path:
socket -> parser -> coalescer -> ring -> writer -> sink. The reader awaits room in the ring
before it reads the next frame; the writer awaits the sink (which retries while the database
is down), so backpressure runs from the database back to the TCP socket, and nothing is
dropped on the way.

Shutdown (``stop()``, a signal, a fatal error, or cancellation by a host application) runs in
this order:

1. the sources stop: sockets close with 1001 and no new frame is read;
2. the coalescer is flushed: pending utterances become partials (``final=False``) and enter
   the ring;
3. the writer drains the ring into the sink, within ``shutdown_timeout_s``;
4. what the sink did not take by then (the batch in flight, what is left in the ring) is
   written to the dead-letter file, synchronously;
5. the token refresher stops last.

The writer and the refresher run under shielded scopes that only this module cancels, so a
host cancelling the worker still gets the full drain, bounded by the shutdown timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import trio

from .auth import AuthError, Credentials, TokenManager
from .backpressure import BackpressureQueue
from .coalesce import Coalescer, Duplicate
from .config import Config
from .model import Fragment, Malformed, Merge, Utterance
from .ring import RingFull
from .sinks import FatalSinkError, Sink
from .sinks.deadletter import DeadLetter
from .sinks.file import FileSink
from .sinks.influx import InfluxSink
from .sources import SourceError, SourceEvent
from .sources.fragment_stream import FragmentStreamSettings, FragmentStreamSource
from .sources.notifications import NotificationsSettings, NotificationsSource
from .spool import Spool, SpoolingSink
from .wire.genesys import Transcription

log = logging.getLogger("trio_transcripts.worker")

FatalError = AuthError | SourceError | FatalSinkError


@dataclass
class Account:
    """Where everything went. ``persisted`` counts only what the sink acknowledged."""

    frames: int = 0
    malformed: int = 0
    transcript_problems: int = 0
    fragments: int = 0
    duplicates: int = 0
    finals: int = 0
    partials: int = 0
    persisted: int = 0
    dead_lettered: int = 0
    spooled: int = 0
    replayed: int = 0
    gaps: int = 0
    gap_ms: int = 0

    def summary(self) -> str:
        return (
            f"{self.frames} frames read ({self.malformed} malformed, "
            f"{self.transcript_problems} unreadable transcripts), {self.fragments} "
            f"fragments, {self.duplicates} duplicates ignored; {self.finals} final and "
            f"{self.partials} partial utterances; {self.persisted} persisted, "
            f"{self.dead_lettered} dead-lettered, {self.spooled} spooled to disk "
            f"({self.replayed} replayed from it); {self.gaps} gaps ({self.gap_ms} ms)"
        )


def now_ms() -> int:
    return int(time.time() * 1000)


class Worker:
    """See the module docstring. Use :func:`run_worker` to run one in a nursery."""

    def __init__(self, config: Config, *, sink: Sink | None = None) -> None:
        self.config = config
        self.account = Account()
        self.dead_letter = DeadLetter(config.dead_letter_path)
        self.sink: Sink = sink or self._default_sink()
        self.spooling: SpoolingSink | None = None
        if config.spool_dir is not None:
            spool = Spool(config.spool_dir, max_bytes=config.spool_max_bytes)
            self.spooling = SpoolingSink(self.sink, spool, spool_after_s=config.spool_after_s)
            self.sink = self.spooling
        self.queue: BackpressureQueue[Utterance] = BackpressureQueue(
            config.buffer_capacity, high_water=config.high_water, low_water=config.low_water
        )
        merge = Merge.APPEND if config.source_kind == "fragments" else Merge.REVISE
        self.coalescer = Coalescer(merge, idle_timeout_ms=config.idle_timeout_ms)
        self.tokens = self._token_manager()
        self.source: NotificationsSource | FragmentStreamSource = self._source()
        self.fatal: BaseException | None = None
        self.last_write_latency_s = 0.0
        self._stop = trio.Event()
        self._writer_scope = trio.CancelScope(shield=True)
        self._writer_done = trio.Event()
        self._inflight: list[Utterance] = []
        self._progress = trio.Event()

    # --- assembly ---------------------------------------------------------------------

    def _default_sink(self) -> Sink:
        if self.config.influx is not None:
            return InfluxSink(self.config.influx, self.dead_letter)
        return FileSink(self.config.output_path, self.config.schema)

    def _token_manager(self) -> TokenManager | None:
        c = self.config
        if not (c.client_id and c.client_secret and c.login_url):
            return None
        return TokenManager(Credentials(c.client_id, c.client_secret, c.login_url))

    def _source(self) -> NotificationsSource | FragmentStreamSource:
        c = self.config
        if c.stream_url:
            stream = FragmentStreamSettings(
                c.stream_url, c.conversation_ids[0] if c.conversation_ids else None
            )
            return FragmentStreamSource(stream, self.tokens, self._on_event)
        if self.tokens is None or not c.api_url:
            raise SourceError(
                "the Notifications source needs GENESYS_CLIENT_ID, "
                "GENESYS_CLIENT_SECRET and a region or GENESYS_API_URL"
            )
        settings = NotificationsSettings(
            c.api_url, c.conversation_ids, c.queue_ids, heartbeat_timeout_s=c.heartbeat_timeout_s
        )
        return NotificationsSource(settings, self.tokens, self._on_event)

    # --- control ----------------------------------------------------------------------

    def stop(self) -> None:
        """Begin the ordered shutdown."""
        self._stop.set()

    def hurry(self) -> None:
        """Skip the wait for the writer (a second SIGINT): dead-letter what is left now."""
        self._stop.set()
        self._writer_scope.cancel()

    def add_conversation(self, conversation_id: str) -> None:
        """Follow one more conversation (Notifications source), at run time."""
        self._notifications().add_conversation(conversation_id)

    def remove_conversation(self, conversation_id: str) -> None:
        """Stop following a conversation (Notifications source), at run time."""
        self._notifications().remove_conversation(conversation_id)

    def _notifications(self) -> NotificationsSource:
        if not isinstance(self.source, NotificationsSource):
            raise SourceError(
                "conversations are added and removed on the Notifications "
                "source; the fragment stream has a fixed URL"
            )
        return self.source

    async def wait_progress(self) -> None:
        """Wait until the writer finishes its next batch (or the spool replays a record)."""
        await self._progress.wait()

    def _made_progress(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def idle(self) -> bool:
        """Nothing pending anywhere: coalescer, ring, or a write in flight."""
        spooling = self.spooling is not None and self.spooling.backlog
        return not (self.coalescer.pending or len(self.queue) or self._inflight or spooling)

    # --- the data path ----------------------------------------------------------------

    async def _on_event(self, event: SourceEvent, frame: str | bytes) -> None:
        self.account.frames += 1
        source = self.config.source_kind
        if isinstance(event, Malformed):
            self.account.malformed += 1
            log.warning(
                "malformed %s frame: %s; set aside in %s",
                source,
                event.reason,
                self.dead_letter.path,
            )
            self.dead_letter.frame(frame, event.reason, source)
            return
        fragments: Sequence[Fragment]
        if isinstance(event, Transcription):
            for problem in event.problems:
                self.account.transcript_problems += 1
                log.warning(
                    "unreadable transcript: %s; frame set aside in %s",
                    problem,
                    self.dead_letter.path,
                )
                self.dead_letter.frame(frame, problem, source)
            fragments = event.fragments
        else:
            fragments = (event,)
        for fragment in fragments:
            self.account.fragments += 1
            for result in self.coalescer.feed(fragment, now_ms()):
                if isinstance(result, Duplicate):
                    self._duplicate(result)
                else:
                    await self._enqueue(result)
        if isinstance(event, Transcription) and event.session_ended:
            for partial in self.coalescer.flush(event.conversation_id):
                await self._enqueue(partial)

    def _duplicate(self, duplicate: Duplicate) -> None:
        self.account.duplicates += 1
        if self.coalescer.merge is Merge.APPEND and not duplicate.fragment.is_final:
            # Appended text after the final would otherwise vanish: keep it.
            self.dead_letter.fragment(duplicate.fragment, duplicate.reason)
        else:
            log.debug("duplicate ignored: %s", duplicate.reason)

    async def _enqueue(self, utterance: Utterance) -> None:
        if utterance.final:
            self.account.finals += 1
        else:
            self.account.partials += 1
        await self.queue.put(utterance)

    def _enqueue_partial_now(self, utterance: Utterance, reason: str) -> None:
        """Shutdown path: into the ring without waiting; if it is truly full, dead-letter."""
        self.account.partials += 1
        try:
            self.queue.put_unbounded(utterance)
        except (RingFull, trio.ClosedResourceError):
            self._dead_letter([utterance], reason)

    def _dead_letter(self, utterances: list[Utterance], reason: str) -> None:
        if utterances:
            log.error(
                "%d utterance(s) not persisted (%s); written to %s",
                len(utterances),
                reason,
                self.dead_letter.path,
            )
            self.dead_letter.utterances(utterances, reason)
            self.account.dead_lettered += len(utterances)

    async def _writer(self) -> None:
        """Batches from the ring into the sink, until the ring is closed and empty."""
        wait_s = self.config.batch_wait_ms / 1000
        with self._writer_scope:
            try:
                while True:
                    try:
                        batch = await self.queue.get_batch(self.config.batch_size)
                    except trio.EndOfChannel:
                        return
                    self._inflight = batch
                    missing = self.config.batch_size - len(batch)
                    if missing:
                        # One wake-up when the batch is full or its oldest item has waited
                        # long enough, not one per utterance.
                        with suppress(trio.EndOfChannel):
                            batch.extend(
                                await self.queue.get_batch(
                                    missing,
                                    deadline=trio.current_time() + wait_s,
                                    min_items=missing,
                                )
                            )
                    before = self.dead_letter.counts.get("utterance", 0)
                    started = time.perf_counter()
                    await self.sink.write(batch)
                    self.last_write_latency_s = time.perf_counter() - started
                    rejected = self.dead_letter.counts.get("utterance", 0) - before
                    spooled = self.spooling.last_spooled if self.spooling is not None else 0
                    self.account.persisted += len(batch) - rejected - spooled
                    self.account.dead_lettered += rejected
                    self.account.spooled += spooled
                    self._inflight = []
                    self._made_progress()
            except FatalSinkError as exc:
                self._fail(exc)
                self._dead_letter(list(exc.unwritten) or self._inflight, f"sink failed: {exc}")
                self._inflight = []
            finally:
                if self._inflight:
                    self._dead_letter(
                        self._inflight, "not acknowledged by the sink before the shutdown deadline"
                    )
                    self._inflight = []
                self._writer_done.set()

    async def _replay_spool(self, scope: trio.CancelScope) -> None:
        """Writes the spool back; stops with the refresher, last: what is left stays on disk."""
        assert self.spooling is not None
        spooling = self.spooling

        def acknowledged(count: int) -> None:
            self.account.replayed += count
            self.account.persisted += count
            self._made_progress()

        with scope:
            await spooling.replay(acknowledged)

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(1)
            for partial in self.coalescer.expire(now_ms()):
                log.info(
                    "utterance %s/%s idle for %d s: persisted as partial",
                    partial.conversation_id,
                    partial.utterance_id,
                    self.config.idle_timeout_ms // 1000,
                )
                await self._enqueue(partial)

    async def _status(self) -> None:
        last_frames, last_time = 0, trio.current_time()
        while True:
            await trio.sleep(self.config.status_interval_s)
            now = trio.current_time()
            rate = (self.account.frames - last_frames) / max(now - last_time, 1e-9)
            last_frames, last_time = self.account.frames, now
            log.info(self.status_line(rate))

    def status_line(self, frames_per_s: float) -> str:
        stats = self.queue.statistics()
        return (
            f"status: {frames_per_s:,.0f} frames/s, {self.account.persisted} persisted, "
            f"buffer {stats.count}/{stats.capacity}{' (paused)' if stats.paused else ''}, "
            f"pending {self.coalescer.pending}, last write "
            f"{self.last_write_latency_s * 1000:.0f} ms, "
            f"{self.account.dead_lettered} dead-lettered, {self.account.spooled} spooled"
        )

    def _fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        log.error("fatal: %s", exc)
        self._stop.set()

    # --- the nursery ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop`, a fatal error or cancellation; then drain in order.

        Raises the fatal error (:class:`AuthError`, :class:`SourceError`,
        :class:`FatalSinkError`) after the drain, if there was one.
        """
        refresher_scope = trio.CancelScope(shield=True)
        try:
            await self._run_tasks(refresher_scope, task_status)
        except* (AuthError, SourceError, FatalSinkError) as group:
            self._fail(group.exceptions[0])
        finally:
            with trio.CancelScope(shield=True):
                await self.sink.aclose()
                if self.tokens is not None:
                    await self.tokens.aclose()
            self._account_gaps()
            log.info("account: %s", self.account.summary())
        if self.fatal is not None:
            raise self.fatal

    async def _run_tasks(
        self, refresher_scope: trio.CancelScope, task_status: trio.TaskStatus[Worker]
    ) -> None:
        replay_scope = trio.CancelScope(shield=True)
        async with trio.open_nursery() as nursery:
            if self.tokens is not None:
                await nursery.start(self._run_refresher, refresher_scope)
            await self.sink.open()
            log.info(
                "writing to %s; dead letters to %s",
                self.sink.describe(),
                self.dead_letter.path.resolve(),
            )
            nursery.start_soon(self._writer)
            if self.spooling is not None:
                nursery.start_soon(self._replay_spool, replay_scope)
            try:
                async with trio.open_nursery() as readers:
                    readers.start_soon(self._run_source)
                    readers.start_soon(self._sweeper)
                    readers.start_soon(self._status)
                    task_status.started(self)
                    await self._stop.wait()
                    log.info("shutting down: no more frames will be read")
                    readers.cancel_scope.cancel()
            finally:
                await self._drain()
                replay_scope.cancel()
                refresher_scope.cancel()

    async def _run_refresher(
        self,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        assert self.tokens is not None
        with scope:
            try:
                await self.tokens.run(task_status=task_status)
            except AuthError as exc:
                self._fail(exc)
                raise

    async def _run_source(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await self.source.run(task_status=task_status)
        except* (SourceError, AuthError) as group:
            self._fail(group.exceptions[0])

    async def _drain(self) -> None:
        with trio.CancelScope(shield=True):
            partials = self.coalescer.flush()
            if partials:
                log.info("flushing %d pending utterance(s) as partials", len(partials))
            for partial in partials:
                self._enqueue_partial_now(partial, "pending at shutdown, ring buffer full")
            self.queue.close()
            with trio.move_on_after(self.config.shutdown_timeout_s):
                await self._writer_done.wait()
            if not self._writer_done.is_set():
                log.error(
                    "the sink did not take everything within %.0f s", self.config.shutdown_timeout_s
                )
                self._writer_scope.cancel()
                await self._writer_done.wait()
            leftovers = self.queue.take_nowait(self.config.buffer_capacity)
            self._dead_letter(leftovers, "not persisted before the shutdown deadline")

    def _account_gaps(self) -> None:
        gaps = self.source.gaps
        self.account.gaps = len(gaps)
        self.account.gap_ms = sum(getattr(g, "duration_ms", 0) for g in gaps)


async def run_worker(
    config: Config,
    *,
    sink: Sink | None = None,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a worker: ``worker = await nursery.start(run_worker, config)``.

    Runs until cancelled (or ``worker.stop()``); cancellation performs the same ordered
    drain, shielded and bounded by ``config.shutdown_timeout_s``.
    """
    await Worker(config, sink=sink).run(task_status=task_status)


class _ChannelSink:
    """Hands utterances to the application through a memory channel (no buffer), so the
    application's pace is the backpressure. What it no longer reads is dead-lettered."""

    def __init__(self, send: trio.MemorySendChannel[Utterance], dead_letter: DeadLetter) -> None:
        self._send = send
        self._dead_letter = dead_letter

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, utterances: Sequence[Utterance]) -> None:
        for i, utterance in enumerate(utterances):
            try:
                await self._send.send(utterance)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._dead_letter.utterances(
                    list(utterances[i:]), "the application stopped reading the stream"
                )
                return

    async def aclose(self) -> None:
        await self._send.aclose()

    def describe(self) -> str:
        return "the application (open_transcript_stream)"


@asynccontextmanager
async def open_transcript_stream(
    config: Config,
) -> AsyncIterator[trio.MemoryReceiveChannel[Utterance]]:
    """Coalesced utterances for the application itself, with no sink::

        async with open_transcript_stream(config) as utterances:
            async for utterance in utterances:
                ...

    Leaving the block shuts the worker down in order; partials it flushes then, which the
    application no longer reads, go to the dead-letter file.
    """
    send, receive = trio.open_memory_channel[Utterance](0)
    async with trio.open_nursery() as nursery:
        worker = Worker(config)
        worker.sink = _ChannelSink(send, worker.dead_letter)
        await nursery.start(worker.run)
        try:
            async with receive:
                yield receive
        finally:
            worker.stop()
