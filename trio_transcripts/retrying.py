"""The one retry driver: it runs what ``retry.py`` decides, so no caller writes a loop.

``retry.py`` says what an answer means (:class:`~trio_transcripts.retry.Decision`: done,
retry, renew the token, split, create the database, ...) and how long to wait; this module
carries it out on the Trio clock: try, and while the decision is to try again, wait (the
server's ``Retry-After`` where it gave one, else full-jitter backoff) and try again. What
differs from one caller to the next is said in the call: which decisions end the tries and
go back to the caller (``until``), which are handled at once and tried again without a wait
(``at_once``: create a missing database), how a wait is logged (``say``), what a refusal
raises (``fail``) and when waiting stops making sense (``deadline``).

The callers: the token request (``auth.py``), InfluxDB's ``/ping`` and writes
(``sinks/influx.py``), the Notifications REST calls and channel creation
(``sources/channel_api.py``, ``sources/notifications.py``), and the reconnects of both
sources' sockets, where the socket tables of ``channels.py`` make the decision.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from .retry import Action, Backoff, Decision, next_delay

T = TypeVar("T")


@dataclass
class Tries:
    """One retry loop's count: the backoff grows with it. A socket that connected resets it
    (``reset``), so a drop after hours of service waits as little as the first one."""

    backoff: Backoff
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def reset(self) -> None:
        self.attempt = 0


async def retrying(
    attempt: Callable[[], Awaitable[tuple[Decision, T]]],
    tries: Tries,
    *,
    say: Callable[[Decision, int, float], None],
    fail: Callable[[Decision], BaseException],
    until: Collection[Action] = (Action.DONE,),
    again: Collection[Action] = (Action.RETRY,),
    at_once: Mapping[Action, Callable[[Decision], Awaitable[None]]] | None = None,
    deadline: float = math.inf,
) -> tuple[Decision, T]:
    """Call ``attempt`` until its decision is one of ``until``; return that decision and
    what came with it.

    A decision in ``again`` waits (``Retry-After``, else the backoff of ``tries``), tells
    ``say(decision, retry_number, delay_s)`` and tries again; one in ``at_once`` runs its
    handler and tries again at once (not counted as a retry); any other raises
    ``fail(decision)``, as does a wait that would end after ``deadline`` (the Trio clock).
    """
    handlers = at_once or {}
    while True:
        decision, value = await attempt()
        action = decision.action
        if action in until:
            return decision, value
        handler = handlers.get(action)
        if handler is not None:
            await handler(decision)
            continue
        if action not in again:
            raise fail(decision)
        delay = next_delay(tries.attempt, decision.retry_after_s, tries.backoff, tries.rng)
        if trio.current_time() + delay > deadline:
            raise fail(decision)
        say(decision, tries.attempt + 1, delay)
        await trio.sleep(delay)
        tries.attempt += 1


def unexpected(decision: Decision) -> BaseException:
    """``fail`` for tries that decide only done and again (a socket's reconnects): anything
    else is a bug of the caller's, said as one."""
    return AssertionError(f"unexpected decision {decision}")
