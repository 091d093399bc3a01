"""Waiting in tests for a condition that nothing signals (a counter of the source, a job
queue emptied): checked after each short pause, under the caller's ``fail_after``, so a
test never assumes that something happened within some time, and one that never happens
fails with the caller's timeout. Under a mock clock the pauses cost no real time."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def until(condition: Callable[[], object], *, poll_s: float = 0.01) -> None:
    # Polling on purpose (what is waited for has no event: a source's counters, a queue of
    # jobs); a runtime hook for tests alone is what this replaces.
    while not condition():  # noqa: ASYNC110
        await trio.sleep(poll_s)
