"""The dead-letter file: what could not be persisted, and why. JSON Lines, fsynced in batches.

Every record says when, what kind of thing (an ``utterance`` the store rejected or could not
take before shutdown, a ``frame`` that could not be parsed, a ``fragment`` that arrived after
its utterance was final), the reason in words, and the thing itself, complete: a dead letter
is somewhere data went, not a place it vanished.

Records are queued in memory and written by :meth:`DeadLetters.run`, a task of the worker's
nursery, with one write and one fsync per batch in a worker thread: a flood of bad frames
costs the reader the encoding of each record, not a file open and an fsync. The queue is
bounded (``max_pending_bytes``): past it, ``await put`` waits for the disk, so a disk slower
than the flood pushes back on the socket like a slow database does. At shutdown the worker
calls :meth:`DeadLetters.flush` last, which writes what is queued, in order.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import trio

from ..errors import FatalError
from ..lineproto import Schema, encode
from ..model import Fragment, Utterance
from ..wire.instants import iso_of

MAX_FRAME_CHARS = 1 << 20
DEFAULT_MAX_PENDING_BYTES = 8 << 20


def _line(kind: str, reason: str, payload: dict[str, Any]) -> str:
    record = {"time": iso_of(int(time.time() * 1000)), "kind": kind, "reason": reason, **payload}
    return json.dumps(record, ensure_ascii=False) + "\n"


def utterance_line(utterance: Utterance, reason: str, schema: Schema = Schema()) -> str:
    payload = {"utterance": msgspec.structs.asdict(utterance), "line": encode(utterance, schema)}
    return _line("utterance", reason, payload)


def frame_line(frame: str | bytes, reason: str, source: str) -> str:
    if isinstance(frame, bytes):
        frame = frame.decode("utf-8", "backslashreplace")
    payload = {"source": source, "size": len(frame), "frame": frame[:MAX_FRAME_CHARS]}
    return _line("frame", reason, payload)


def fragment_line(fragment: Fragment, reason: str) -> str:
    return _line("fragment", reason, {"fragment": msgspec.structs.asdict(fragment)})


def backfill_line(
    conversation_id: str,
    communications: Sequence[str],
    windows: Sequence[tuple[int, int]],
    reason: str,
) -> str:
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
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.max_pending_bytes = max_pending_bytes
        self.counts: dict[str, int] = {}  # records written and fsynced, by kind
        self._pending: list[tuple[str, str]] = []  # (kind, line)
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

    def put_nowait(self, kind: str, line: str) -> None:
        """Queue a record whatever the queue holds: for the shutdown path, which must not wait."""
        self._pending.append((kind, line))
        self._pending_bytes += len(line)
        self._queued.set()

    async def put(self, kind: str, line: str) -> None:
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

    async def frame(self, frame: str | bytes, reason: str, source: str) -> None:
        await self.put("frame", frame_line(frame, reason, source))

    async def fragment(self, fragment: Fragment, reason: str) -> None:
        await self.put("fragment", fragment_line(fragment, reason))

    def utterances_nowait(self, utterances: Sequence[Utterance], reason: str) -> None:
        for u in utterances:
            self.put_nowait("utterance", utterance_line(u, reason, self.schema))

    async def utterances(self, utterances: Sequence[Utterance], reason: str) -> None:
        for u in utterances:
            await self.put("utterance", utterance_line(u, reason, self.schema))

    # --- writing ------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: whenever records are queued, write them all with one fsync."""
        while True:
            await self._queued.wait()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued now, in order, and fsync. Callers at shutdown shield it."""
        async with self._writing:
            batch, self._pending = self._pending, []
            self._queued = trio.Event()
            if not batch:
                return
            data = "".join(line for _, line in batch).encode("utf-8")
            try:
                # Shielded: a cancellation between taking the batch and the thread starting
                # would lose it; a record leaves memory only once it is on disk.
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._append, data)
            except OSError as exc:
                self._pending = batch + self._pending
                raise FatalError(f"cannot write dead letters to {self.path}: {exc}") from exc
            self._pending_bytes -= sum(len(line) for _, line in batch)
            for kind, _ in batch:
                self.counts[kind] = self.counts.get(kind, 0) + 1
            self._room.unpark_all()

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def read_dead_letters(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a dead-letter file, oldest first."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
