"""Where frames come from: the :class:`Source` protocol, gaps, and the two sources.

A source owns its sockets (connect, read, reconnect) and nothing else: every frame it reads it
parses and hands to ``emit(event, frame)``, awaiting it before reading the next one. That
await is the backpressure path: while the worker's ring buffer is paused, ``emit`` blocks, the
source stops reading, and TCP pushes back on the server. The raw ``frame`` travels with its
event so that a malformed one can be set aside whole.

Implementations: :mod:`.notifications` (Genesys Cloud) and :mod:`.fragment_stream` (the
reference design's stream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import trio

from ..errors import SourceError
from ..model import Merge
from ..router import SourceEvent
from ..wire.instants import iso_of

__all__ = ["Emit", "Gap", "GapLog", "Source", "SourceError", "SourceEvent", "SourceHealth"]

log = logging.getLogger("trio_transcripts.source")

Emit = Callable[[SourceEvent, str | bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Gap:
    """A time without a live socket: what the platform sent then is not replayed."""

    start_ms: int
    end_ms: int
    conversations: tuple[str, ...]
    where: str
    refused: bool = False  # a reconnect failed at least once meanwhile: an outage

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


HEARD_WITHIN_S = 60.0
"""A socket is live when it was heard from within two of the platform's 30 s heartbeats."""


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """For readiness and metrics: the sockets a source should hold, how many are live
    (connected, and heard from within :data:`HEARD_WITHIN_S` where the platform sends
    heartbeats), and how many topics it is subscribed to."""

    sockets: int
    live: int
    topics: int


class Source(Protocol):
    """A stream of transcript events; the worker runs one (``worker.py``).

    ``kind`` names it in logs and dead-letter records; ``merge`` says how its fragments
    combine into utterances. ``run`` reads until cancelled, awaiting ``emit`` for each frame,
    and calls ``task_status.started()`` once it is reading or retrying on its own; it raises
    :class:`SourceError` when retrying cannot help. ``gaps`` lists the times it had no live
    socket. That is all a worker needs; a source that holds sockets says more about them
    (:class:`Watched`), and one that follows conversations by id takes more (:class:`Calls`).
    """

    @property
    def kind(self) -> str: ...

    @property
    def merge(self) -> Merge: ...

    @property
    def gaps(self) -> Sequence[Gap]: ...

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


@runtime_checkable
class Watched(Protocol):
    """A source's sockets, for readiness, metrics and the log line of a shutdown during
    startup (both sources; a test's or the bench's own need not be)."""

    def waiting_for(self) -> str | None:
        """What it still waits for before it can read (``None`` once it reads)."""

    def health(self, now: float) -> SourceHealth:
        """The sockets' state at ``now`` (the Trio clock)."""

    def reconnects(self) -> Mapping[str, int]:
        """Sockets replaced so far, by why (a metric label: a few fixed reasons)."""


@runtime_checkable
class Calls(Protocol):
    """What the source follows, and how to follow more (the Notifications source): the
    backfill's and the embed API's ``add_conversation``."""

    def conversations(self) -> Collection[str]: ...

    def follows(self, conversation_id: str) -> bool:
        """Whether ``conversation_id`` is followed, without listing them all (the backfill
        asks this of each job due, every few seconds, at up to 20,000 followed)."""

    def add_conversation(self, conversation_id: str) -> None: ...

    def remove_conversation(self, conversation_id: str) -> None: ...


@dataclass
class GapLog:
    """Opens a gap when a socket is lost, closes and logs it when one is live again.

    ``on_close`` (the completeness side's durable record, ``completeness.py``) is told of
    each gap before it is logged or counted. A socket lost again before one was live (a
    refused reconnect) makes the gap an outage."""

    where: str
    gaps: list[Gap] = field(default_factory=list)
    on_close: Callable[[Gap], None] | None = None
    _open_since: int | None = None
    _losses: int = 0

    def lost(self) -> None:
        if self._open_since is None:
            self._open_since = int(time.time() * 1000)
        self._losses += 1

    def live(self, conversations: tuple[str, ...]) -> None:
        """A socket is live again: the gap, if one is open, is over."""
        self._close(conversations, "")

    def stopped(self, conversations: tuple[str, ...]) -> None:
        """The source stops: a gap still open ends now, and counts."""
        self._close(conversations, " (still open when the source stopped)")

    def _close(self, conversations: tuple[str, ...], note: str) -> None:
        if self._open_since is None:
            return
        refused = self._losses > 1
        gap = Gap(self._open_since, int(time.time() * 1000), conversations, self.where, refused)
        self._open_since = None
        self._losses = 0
        if self.on_close is not None:
            self.on_close(gap)
        self.gaps.append(gap)
        log.warning(
            "gap on %s from %s to %s (%d ms)%s for %d conversation(s) %s: anything the "
            "platform sent meanwhile is not replayed live",
            gap.where,
            iso_of(gap.start_ms),
            iso_of(gap.end_ms),
            gap.duration_ms,
            note,
            len(conversations),
            ", ".join(conversations[:5]) + (" ..." if len(conversations) > 5 else ""),
        )
