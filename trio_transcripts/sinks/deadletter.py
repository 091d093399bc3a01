"""The dead-letter file: what could not be persisted, and why. JSON Lines, fsynced in batches.

Every record says when, what kind of thing (an ``utterance`` the store rejected or could not
take before shutdown, a ``frame`` that could not be parsed, a ``fragment`` that arrived after
its utterance was final), the reason in words, and the thing itself, complete: a dead letter
is somewhere data went, not a place it vanished.

Records are queued in memory and written by :meth:`DeadLetters.run`, a task of the worker's
nursery, with one write and one fsync per batch in a worker thread, batches at most every
``BATCH_EVERY_S``: a flood of bad frames costs the reader the encoding of each record, not a
file open and an fsync, nor a thread's round trip each (issue 21's profile). The queue is
bounded (``max_pending_bytes``): past it, ``await put`` waits for the disk, so a disk slower
than the flood (or a full one, ``diskfull.py``: the writer waits for space) pushes back on the
socket like a slow database does. At shutdown the worker calls :meth:`DeadLetters.close`
last, which writes what is queued, in order, and returns what it could not write by then.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from ..diskfull import Disk, DiskFull, Unwritten, append_whole
from ..errors import FatalError
from ..lineproto import Schema, encode
from ..model import Fragment, Utterance
from ..sensitive import Screen
from ..wire.instants import iso_of

log = logging.getLogger("trio_transcripts.deadletter")

DEFAULT_MAX_PENDING_BYTES = 8 << 20
BATCH_EVERY_S = 0.1
# The last write at shutdown waits this long for a full disk: after the drain's 30 s, inside
# systemd's TimeoutStopSec=45 (deploy/trio-transcripts.service).
CLOSE_WITHIN_S = 5.0


_encoder = msgspec.json.Encoder()  # UTF-8 as it is, like json.dumps(ensure_ascii=False)


def _line(kind: str, reason: str, payload: dict[str, Any]) -> bytes:
    record = {"time": iso_of(int(time.time() * 1000)), "kind": kind, "reason": reason, **payload}
    return _encoder.encode(record) + b"\n"


def utterance_line(utterance: Utterance, reason: str, schema: Schema = Schema()) -> bytes:
    payload = {"utterance": msgspec.structs.asdict(utterance), "line": encode(utterance, schema)}
    return _line("utterance", reason, payload)


def frame_line(frame: str | bytes, reason: str, source: str, screen: Screen) -> bytes:
    """The whole frame, whatever its size (the socket's own limit bounds it), through
    ``screen`` (``sensitive.py``: card numbers and the rest never reach this file):
    ``size`` in bytes as it came; a binary frame or one not UTF-8 as text with each byte
    that is not UTF-8 escaped (``\\xff``), so the record is still one line of valid JSON."""
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", "surrogatepass"))
    return _line("frame", reason, {"source": source, "size": size, "frame": screen.frame(frame)})


def fragment_line(fragment: Fragment, reason: str) -> bytes:
    return _line("fragment", reason, {"fragment": msgspec.structs.asdict(fragment)})


def backfill_line(
    conversation_id: str,
    communications: Sequence[str],
    windows: Sequence[tuple[int, int]],
    reason: str,
) -> bytes:
    """A conversation whose gaps the backfill could not fill (``backfill.py``): which, its
    gaps, and why; ``backfill CONVERSATION_ID`` retries it by hand."""
    payload = {
        "conversationId": conversation_id,
        "communications": list(communications),
        "gaps": [{"start": iso_of(a), "end": iso_of(b)} for a, b in windows],
    }
    return _line("backfill", reason, payload)


class DeadLetters:
    """Queues records for ``path`` and writes them in batches; counts what was written."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        schema: Schema = Schema(),
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        disk: Disk | None = None,
    ) -> None:
        self.path = Path(path)
        self.disk = disk or Disk()
        self.schema = schema
        self.max_pending_bytes = max_pending_bytes
        self.counts: dict[str, int] = {}  # records written and fsynced, by kind
        self._pending: list[tuple[str, bytes]] = []  # (kind, line)
        self._pending_bytes = 0
        self._queued = trio.Event()
        self._room = trio.lowlevel.ParkingLot()
        self._writing = trio.Lock()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --- queueing -----------------------------------------------------------------------

    def put_nowait(self, kind: str, line: bytes) -> None:
        """Queue a record whatever the queue holds: for the shutdown path, which must not wait."""
        self._pending.append((kind, line))
        self._pending_bytes += len(line)
        self._queued.set()

    async def put(self, kind: str, line: bytes) -> None:
        """Queue a record; wait while the queue is past its bound (the disk is behind).

        Cancelled means not queued: the cancellation point comes before the record is
        queued, never after (as ``BackpressureQueue.put``). The worker re-queues what a
        cancelled ``put`` did not take, so a record queued and then reported cancelled was
        written twice (``tests/test_deadletter.py``)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while self._pending and self._pending_bytes >= self.max_pending_bytes:
            parked = True
            await self._room.park()
        self.put_nowait(kind, line)
        if not parked:
            await trio.lowlevel.cancel_shielded_checkpoint()

    def utterances_nowait(self, utterances: Sequence[Utterance], reason: str) -> None:
        for u in utterances:
            self.put_nowait("utterance", utterance_line(u, reason, self.schema))

    async def utterances(self, utterances: Sequence[Utterance], reason: str) -> None:
        for u in utterances:
            await self.put("utterance", utterance_line(u, reason, self.schema))

    # --- writing ------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: whenever records are queued, write them all with one fsync; then
        let the next batch gather for ``BATCH_EVERY_S`` (a flood's fsyncs are few)."""
        while True:
            await self._queued.wait()
            await self.flush()
            await trio.sleep(BATCH_EVERY_S)

    async def flush(self, deadline: float = math.inf) -> None:
        """Write everything queued now, in order, and fsync; while the disk is full, wait
        (until ``deadline``: then :class:`DiskFull`). A record leaves the queue only once it
        is on disk: cancelled, refused or failed, the batch goes back to its head."""
        async with self._writing:
            batch, self._pending = self._pending, []
            self._queued = trio.Event()
            if not batch:
                return
            data = b"".join(line for _, line in batch)
            try:
                await self.disk.write(
                    self.path, partial(append_whole, self.path, data), deadline=deadline
                )
            except BaseException as exc:
                self._pending = batch + self._pending
                if isinstance(exc, OSError):
                    raise FatalError(
                        f"cannot write dead letters to {self.path}: {exc} (--dead-letter "
                        f"names a file in a writable directory)"
                    ) from exc
                raise
            self._pending_bytes -= sum(len(line) for _, line in batch)
            for kind, _ in batch:
                self.counts[kind] = self.counts.get(kind, 0) + 1
            self._room.unpark_all()

    async def close(self, within_s: float = CLOSE_WITHIN_S) -> Unwritten:
        """The last flush, at shutdown: what could not be written within ``within_s`` (a
        full disk) or at all (an error), by kind; empty when the file took everything."""
        full = False
        try:
            await self.flush(deadline=trio.current_time() + within_s)
        except (DiskFull, FatalError) as exc:
            full = isinstance(exc, DiskFull)
            log.error("dead letters not written: %s", exc)
        lost: dict[str, int] = {}
        for kind, _ in self._pending:
            lost[kind] = lost.get(kind, 0) + 1
        if not lost:
            return Unwritten()
        return Unwritten(lost, disk_full=full, where=(f"the dead-letter file {self.path}",))


def read_dead_letters(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a dead-letter file, oldest first."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
