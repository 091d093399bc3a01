"""A backfill job's next step, from what its last attempt found. Pure.

A job (one conversation's gaps, ``gaprecords.py``) is ``OPEN`` until it is ``DONE`` (its
gaps written, or nothing was missing) or ``GIVEN_UP`` (a dead letter says why). The backfill
task (``backfill.py``) makes an attempt, names its :class:`Outcome`, and carries out the
:class:`Step` that :func:`decide` returns; every transition is in :data:`AFTER`, one row per
outcome: the step before the job's give-up deadline and the step after it. A job settled
takes no more outcomes (:class:`Settled`), so it cannot be both done and given up.
"""

from __future__ import annotations

import enum


class Stage(enum.Enum):
    OPEN = "open"
    DONE = "done"
    GIVEN_UP = "given up"


class Outcome(enum.Enum):
    """What one look at a job found."""

    FOLLOWED = "still followed"  # the conversation goes on live: not due
    NOT_YET = "not available yet"  # 404, 429, 5xx, no answer, an expired URL again
    IN_PROGRESS = "call in progress"  # analytics: it has not ended
    UNSETTLED = "live rows still on their way"  # the store may not hold them yet
    STORE_UNREADABLE = "cannot read what is stored"
    WRITE_FAILED = "cannot write"  # the sink refused the batch as a whole
    REFUSED = "refused"  # a 403 for this conversation, a document we cannot read
    FILLED = "filled"  # written, or nothing missing


class Step(enum.Enum):
    WAIT = "wait"  # nothing to do until it is due
    RETRY = "retry later"
    DONE = "done"
    GIVE_UP = "give up"


AFTER: dict[Outcome, tuple[Step, Step]] = {
    # outcome:               (before the deadline, past it)
    Outcome.FOLLOWED: (Step.WAIT, Step.WAIT),  # a live call is never given up on
    Outcome.NOT_YET: (Step.RETRY, Step.GIVE_UP),
    Outcome.IN_PROGRESS: (Step.RETRY, Step.GIVE_UP),
    Outcome.UNSETTLED: (Step.RETRY, Step.GIVE_UP),
    Outcome.STORE_UNREADABLE: (Step.RETRY, Step.GIVE_UP),
    Outcome.WRITE_FAILED: (Step.RETRY, Step.GIVE_UP),
    Outcome.REFUSED: (Step.GIVE_UP, Step.GIVE_UP),
    Outcome.FILLED: (Step.DONE, Step.DONE),
}

STAGE_AFTER = {
    Step.WAIT: Stage.OPEN,
    Step.RETRY: Stage.OPEN,
    Step.DONE: Stage.DONE,
    Step.GIVE_UP: Stage.GIVEN_UP,
}


class Settled(Exception):
    """An outcome for a job already done or given up: a bug in the caller."""


def decide(
    stage: Stage, outcome: Outcome, since_ms: int, now_ms: int, give_up_ms: int
) -> tuple[Step, Stage]:
    """The step after ``outcome`` for a job in ``stage`` whose first gap was recorded at
    ``since_ms``, and the stage it is in then; past ``give_up_ms`` from ``since_ms`` a
    retry becomes giving up."""
    if stage is not Stage.OPEN:
        raise Settled(f"a job {stage.value} takes no outcome ({outcome.value})")
    before, after = AFTER[outcome]
    step = after if now_ms - since_ms > give_up_ms else before
    return step, STAGE_AFTER[step]
