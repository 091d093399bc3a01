"""Where utterances go: the :class:`Sink` protocol and its implementations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..model import Utterance


class FatalSinkError(Exception):
    """The sink cannot go on (bad credentials, missing bucket): a configuration problem.

    ``unwritten`` holds the utterances of the batch that was being written, so the caller can
    set them aside (dead-letter file) rather than lose them.
    """

    def __init__(self, message: str, unwritten: Sequence[Utterance] = ()) -> None:
        super().__init__(message)
        self.unwritten = list(unwritten)


@runtime_checkable
class Sink(Protocol):
    """A store for utterances. Implement it to plug your own store into the worker.

    ``write`` returns once every utterance it was given is either acknowledged by the store
    or set aside with a reason (for example in the dead-letter file); it may wait as long as
    the store is down (retrying), which is what makes backpressure reach the reader. It raises
    :class:`FatalSinkError` when retrying cannot help. A write may be repeated after a crash
    or a retry: stores must treat the same utterance written twice as one.
    """

    async def open(self) -> None:
        """Get ready (check the server, create the database...); called once, first."""

    async def write(self, utterances: Sequence[Utterance]) -> None:
        """Persist ``utterances`` (a batch, oldest first)."""

    async def aclose(self) -> None:
        """Flush and release resources."""

    def describe(self) -> str:
        """Where the data goes, for humans (a URL and database, a file path)."""
