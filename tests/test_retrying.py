"""The retry driver on a mock clock: what it waits, what it says, when it gives up."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from trio_transcripts.pulse import Pulse
from trio_transcripts.retry import Action, Backoff, Decision
from trio_transcripts.retrying import Tries, retrying


class Refused(Exception):
    pass


def script(*actions: Action | tuple[Action, float]) -> list[Decision]:
    out = []
    for action in actions:
        if isinstance(action, tuple):
            out.append(Decision(action[0], "told", retry_after_s=action[1]))
        else:
            out.append(Decision(action, str(action.value)))
    return out


async def drive(
    decisions: list[Decision], **options: object
) -> tuple[Decision, list[tuple[int, float, float]], list[str]]:
    said: list[tuple[int, float, float]] = []  # (retry, delay, when)
    handled: list[str] = []
    left = list(decisions)

    async def attempt() -> tuple[Decision, int]:
        await trio.lowlevel.checkpoint()
        return left.pop(0), len(left)

    async def create(decision: Decision) -> None:
        await trio.lowlevel.checkpoint()
        handled.append(decision.detail)

    decision, _ = await retrying(
        attempt,
        Tries(Backoff(base_s=1.0, cap_s=8.0), random.Random(1)),
        say=lambda d, retry, delay: said.append((retry, delay, trio.current_time())),
        fail=lambda d: Refused(d.detail),
        at_once={Action.CREATE_DATABASE: create},
        **options,  # type: ignore[arg-type]
    )
    return decision, said, handled


async def test_retries_wait_the_servers_word_else_a_growing_jittered_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    decisions = script(Action.RETRY, (Action.RETRY, 7.0), Action.RETRY, Action.DONE)
    decision, said, _ = await drive(decisions)
    assert decision.action is Action.DONE
    assert [retry for retry, _, _ in said] == [1, 2, 3]
    first, told, third = (delay for _, delay, _ in said)
    assert 0 <= first <= 1.0 and told == 7.0 and 0 <= third <= 4.0  # full jitter, capped
    assert trio.current_time() == pytest.approx(first + told + third)


async def test_a_refusal_raises_what_fail_makes_and_at_once_handlers_run_without_a_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    decision, said, handled = await drive(script(Action.CREATE_DATABASE, Action.DONE))
    assert (
        decision.action is Action.DONE and handled == [Action.CREATE_DATABASE.value] and said == []
    )
    assert trio.current_time() == 0
    with pytest.raises(Refused, match="fatal"):
        await drive(script(Action.RETRY, Action.FATAL))


async def test_a_wait_past_the_deadline_gives_up_before_it_begins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(Refused, match="told"):
        await drive(script((Action.RETRY, 5.0), Action.DONE), deadline=4.0)
    assert trio.current_time() == 0


async def test_until_hands_other_decisions_back_to_the_caller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    decision, _, _ = await drive(script(Action.SPLIT), until=(Action.DONE, Action.SPLIT))
    assert decision.action is Action.SPLIT


def test_a_reset_starts_the_backoff_over() -> None:
    tries = Tries(Backoff(base_s=1.0, cap_s=8.0), random.Random(1), attempt=5)
    tries.reset()
    assert tries.attempt == 0


async def test_a_pulse_wakes_every_waiter_and_remembers_nothing() -> None:
    pulse = Pulse()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await pulse.wait()
        woken.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(waiter, i)
        await trio.testing.wait_all_tasks_blocked()
        taken = pulse.next()  # taken before a check: a fire during it still wakes it
        pulse.fire()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(woken) == [0, 1, 2] and taken.is_set()
        nursery.start_soon(waiter, 3)
        await trio.testing.wait_all_tasks_blocked()
        assert 3 not in woken, "a fire before it began does not wake a later waiter"
        pulse.fire()
    assert 3 in woken
