"""Where utterances go: the :class:`Sink` protocol, what a write reports, and the sinks.

A sink says what happened to every utterance it was given (:class:`WriteResult`): the worker
builds its account from these results alone, never from counters it reads back afterwards,
so the account printed at exit is what the store acknowledged, by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import FatalSinkError
from ..model import Utterance

__all__ = ["FatalSinkError", "Pingable", "Rejected", "Sink", "WriteResult"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """An utterance the store refused for good (a type conflict, a point too large)."""

    utterance: Utterance
    reason: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one ``write`` did with its batch: every utterance is in exactly one part.

    ``acknowledged``: the store confirmed it. ``rejected``: refused for good, with the
    store's reason (the worker writes these to the dead-letter file). ``spooled``: kept in the
    durable spool, to be written later (the spool reports that write when it happens).
    """

    acknowledged: int = 0
    rejected: tuple[Rejected, ...] = ()
    spooled: int = 0

    @property
    def total(self) -> int:
        return self.acknowledged + len(self.rejected) + self.spooled

    @classmethod
    def all_acknowledged(cls, utterances: Sequence[Utterance]) -> WriteResult:
        return cls(acknowledged=len(utterances))

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.acknowledged + other.acknowledged,
            self.rejected + other.rejected,
            self.spooled + other.spooled,
        )


class Sink(Protocol):
    """A store for utterances. Implement it to plug your own store into the worker.

    ``write`` returns once every utterance it was given is acknowledged by the store or
    refused for good, and says which in its :class:`WriteResult`. It may wait as long as the
    store is down (retrying): that is what makes backpressure reach the reader. It raises
    :class:`FatalSinkError` when retrying cannot help. A write may be repeated after a crash
    or a retry: stores must treat the same utterance written twice as one.
    """

    async def open(self) -> None:
        """Get ready (check the server, create the database...); called once, first."""

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        """Persist ``utterances`` (a batch, oldest first); say what became of each."""

    async def aclose(self) -> None:
        """Flush and release resources."""

    def describe(self) -> str:
        """Where the data goes, for humans (a URL and database, a file path)."""


@runtime_checkable
class Pingable(Protocol):
    """A sink that can say, without writing, whether its store answers (for readiness while
    no data flows). The worker pings it when it has not acknowledged a write for a while."""

    async def ping(self) -> bool:
        """True when the store answered."""
