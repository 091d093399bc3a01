"""The worker's lifecycle, as a table: no Trio, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.errors import FatalError
from trio_transcripts.lifecycle import AFTER, Do, Event, Lifecycle, Stage

ORDER = list(Stage)  # the stages in the order a run goes through them

# (stage, event) -> (next stage, what is done): the rules the worker's docstring promises.
RULES = [
    (Stage.STARTING, Event.STARTED, Stage.RUNNING, (Do.SHIELD_SERVICES,)),
    # Stopped while starting: the wait ends at once, nothing is read.
    (
        Stage.STARTING,
        Event.STOP,
        Stage.DRAINING,
        (Do.WARN_WAITING, Do.CANCEL_STARTUP, Do.STOP_READING),
    ),
    (Stage.RUNNING, Event.STOP, Stage.DRAINING, (Do.WARN_WAITING, Do.STOP_READING)),
    (Stage.RUNNING, Event.FATAL, Stage.DRAINING, (Do.WARN_WAITING, Do.STOP_READING)),
    (
        Stage.RUNNING,
        Event.HURRY,
        Stage.HURRIED,
        (Do.WARN_WAITING, Do.STOP_READING, Do.CANCEL_WRITER),
    ),
    (Stage.DRAINING, Event.STOP, Stage.DRAINING, ()),
    (Stage.DRAINING, Event.HURRY, Stage.HURRIED, (Do.CANCEL_WRITER,)),
    (Stage.DRAINING, Event.DEADLINE, Stage.HURRIED, (Do.CANCEL_WRITER,)),
    # The services (token refresher, spool replay, dead letters) stop only after the writer.
    (Stage.DRAINING, Event.DRAINED, Stage.CLOSING, (Do.CANCEL_SERVICES,)),
    (Stage.HURRIED, Event.DRAINED, Stage.CLOSING, (Do.CANCEL_SERVICES,)),
    (Stage.HURRIED, Event.HURRY, Stage.HURRIED, ()),
    (Stage.CLOSING, Event.FATAL, Stage.CLOSING, ()),
    (Stage.CLOSING, Event.CLOSED, Stage.CLOSED, ()),
    # A stop in the sink's last turn: started all the same, nothing read.
    (Stage.DRAINING, Event.STARTED, Stage.DRAINING, (Do.SHIELD_SERVICES,)),
    (Stage.HURRIED, Event.STARTED, Stage.HURRIED, (Do.SHIELD_SERVICES,)),
]


@pytest.mark.parametrize(("stage", "event", "after", "actions"), RULES)
def test_the_table_says_where_each_event_leads(
    stage: Stage, event: Event, after: Stage, actions: tuple[Do, ...]
) -> None:
    lifecycle = Lifecycle(stage=stage)
    assert lifecycle.handle(event) == actions
    assert lifecycle.stage is after


def test_an_event_that_cannot_happen_there_is_a_bug_said_plainly() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(RuntimeError, match="the writer is done cannot happen while starting"):
        lifecycle.handle(Event.DRAINED)


def test_startup_says_what_it_waits_for_until_it_is_over() -> None:
    lifecycle = Lifecycle()
    assert lifecycle.waiting == "the start"
    lifecycle.starting("a token from https://login.example")
    assert lifecycle.waiting == "a token from https://login.example"
    assert not lifecycle.services_shielded
    lifecycle.handle(Event.STARTED)
    assert lifecycle.waiting is None
    assert lifecycle.services_shielded
    lifecycle.starting("anything")  # too late: nothing is waited for any more
    assert lifecycle.waiting is None


def test_stopped_during_startup_the_services_are_never_shielded() -> None:
    lifecycle = Lifecycle()
    lifecycle.handle(Event.STOP)
    assert lifecycle.stopping and not lifecycle.services_shielded
    lifecycle.handle(Event.STARTED)  # the sink's wait ended in the same turn
    assert lifecycle.services_shielded and lifecycle.stage is Stage.DRAINING


def test_the_first_fatal_error_is_the_runs() -> None:
    lifecycle = Lifecycle(stage=Stage.RUNNING)
    first, second = FatalError("first"), FatalError("second")
    lifecycle.handle(Event.FATAL, first)
    lifecycle.handle(Event.FATAL, second)
    assert lifecycle.fatal is first
    assert lifecycle.stopping


# Events a run may see in any order: signals, a host, failing tasks, the drain's own.
EVENTS = st.lists(st.sampled_from(list(Event)), max_size=30)


@given(EVENTS)
def test_a_run_only_moves_forward_and_does_each_thing_once(events: list[Event]) -> None:
    lifecycle = Lifecycle()
    done: list[Do] = []
    started = events.index(Event.STARTED) if Event.STARTED in events else len(events)
    events = [e for i, e in enumerate(events) if e is not Event.STARTED or i == started]
    for event in events:
        before = lifecycle.stage
        if (before, event) not in AFTER:
            continue  # impossible there (the table says so, tested above)
        done += lifecycle.handle(event)
        assert ORDER.index(lifecycle.stage) >= ORDER.index(before)
    once = [Do.CANCEL_STARTUP, Do.SHIELD_SERVICES, Do.STOP_READING, Do.CANCEL_WRITER]
    for do in [*once, Do.CANCEL_SERVICES]:
        assert done.count(do) <= 1, (do, events)
    # The services never stop before reading did, nor is the writer hurried before it.
    if Do.CANCEL_SERVICES in done:
        assert Do.STOP_READING in done
        assert done.index(Do.STOP_READING) < done.index(Do.CANCEL_SERVICES)
    if Do.CANCEL_WRITER in done:
        assert done.index(Do.STOP_READING) < done.index(Do.CANCEL_WRITER)


def test_every_stage_but_the_last_has_a_way_on_and_stop_is_always_accepted() -> None:
    for stage in Stage:
        assert (stage, Event.STOP) in AFTER
        assert (stage, Event.FATAL) in AFTER
        if stage is not Stage.CLOSED:
            assert any(AFTER[key][0] is not stage for key in AFTER if key[0] is stage)
