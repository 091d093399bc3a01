"""The backfill planner's table (``fillplan.py``), and a property of every run through it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.fillplan import AFTER, Outcome, Settled, Stage, Step, decide

GIVE_UP_MS = 1_000


def test_every_outcome_has_a_row_before_and_after_the_deadline() -> None:
    assert set(AFTER) == set(Outcome)
    assert decide(Stage.OPEN, Outcome.NOT_YET, 0, 10, GIVE_UP_MS) == (Step.RETRY, Stage.OPEN)
    assert decide(Stage.OPEN, Outcome.NOT_YET, 0, 2_000, GIVE_UP_MS) == (
        Step.GIVE_UP,
        Stage.GIVEN_UP,
    )
    assert decide(Stage.OPEN, Outcome.FILLED, 0, 2_000, GIVE_UP_MS) == (Step.DONE, Stage.DONE)
    assert decide(Stage.OPEN, Outcome.REFUSED, 0, 0, GIVE_UP_MS)[0] is Step.GIVE_UP
    assert decide(Stage.OPEN, Outcome.FOLLOWED, 0, 10**9, GIVE_UP_MS)[0] is Step.WAIT
    assert decide(Stage.OPEN, Outcome.WRITE_FAILED, 0, 10, GIVE_UP_MS)[0] is Step.RETRY


@pytest.mark.parametrize("stage", [Stage.DONE, Stage.GIVEN_UP])
def test_a_settled_job_takes_no_outcome(stage: Stage) -> None:
    with pytest.raises(Settled):
        decide(stage, Outcome.FILLED, 0, 0, GIVE_UP_MS)


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Outcome)), st.integers(0, 500)),
        max_size=30,
    )
)
def test_each_job_ends_done_or_given_up_with_a_dead_letter_never_both_never_neither(
    outcomes: list[tuple[Outcome, int]],
) -> None:
    stage, now, dead_letters, settlings = Stage.OPEN, 0, 0, 0
    # Whatever comes first; then the call ends (it is followed no more) and what is left
    # is retried as the clock runs on.
    tail = [(Outcome.NOT_YET, GIVE_UP_MS)] * 3
    for outcome, later in [*outcomes, *tail]:
        if stage is not Stage.OPEN:
            break
        now += later
        step, stage = decide(stage, outcome, 0, now, GIVE_UP_MS)
        dead_letters += step is Step.GIVE_UP
        settlings += step in (Step.DONE, Step.GIVE_UP)
    assert stage in (Stage.DONE, Stage.GIVEN_UP), "never neither"
    assert settlings == 1, "never both"
    assert dead_letters == (stage is Stage.GIVEN_UP)
