"""A :class:`Pulse`: wakes every task waiting on it when it fires, and remembers nothing.

Used where a task waits for "something changed" (the writer finished a batch, a token was
fetched, the spool was emptied, a conversation's subscriptions must follow its slot, the
gap queue grew): a ``trio.Event`` set once stays set, so each of those places used to set
one and put a new one in its place. That is this class, written once.
"""

from __future__ import annotations

import trio


class Pulse:
    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        """Wake every task waiting now; a task that waits later waits for the next one."""
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        """Until the next :meth:`fire`."""
        await self._event.wait()

    def next(self) -> trio.Event:
        """The next firing, taken before work that must not miss one: check, then wait on
        it (a fire during the check still wakes the wait)."""
        return self._event
