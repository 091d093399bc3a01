"""The Notifications channel planner, as tables: no sockets, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.channels import (
    AFTER_SOCKET,
    ChannelPlan,
    SocketEnd,
    Step,
    SubscriptionChange,
    can_wait,
    rotate_at,
    subscription_change,
)
from trio_transcripts.wire.genesys import transcription_topic

# (why the socket ended, does the channel exist?) -> (next step, counters that moved)
AFTER = [
    (SocketEnd.REPLACED, None, Step.RETIRE, {}),
    (SocketEnd.GONE, None, Step.NEW_CHANNEL, {"channels_gone": 1}),
    (SocketEnd.REJECTED, None, Step.CHECK_CHANNEL, {}),
    (SocketEnd.REJECTED, True, Step.RECONNECT, {"reconnects": 1}),
    (SocketEnd.REJECTED, False, Step.NEW_CHANNEL, {"channels_gone": 1}),
    (SocketEnd.UNAUTHORIZED, None, Step.RENEW_AND_NEW_CHANNEL, {"channels_gone": 1}),
    (SocketEnd.CLOSED, None, Step.CHECK_CHANNEL, {}),
    (SocketEnd.LOST, None, Step.CHECK_CHANNEL, {}),
    (SocketEnd.DEAD, None, Step.CHECK_CHANNEL, {"dead_sockets": 1}),
    (SocketEnd.CLOSED, True, Step.RECONNECT, {"reconnects": 1}),
    (SocketEnd.LOST, True, Step.RECONNECT, {"reconnects": 1}),
    (SocketEnd.DEAD, True, Step.RECONNECT, {"reconnects": 1}),
    (SocketEnd.CLOSED, False, Step.NEW_CHANNEL, {"channels_gone": 1}),
    (SocketEnd.LOST, False, Step.NEW_CHANNEL, {"channels_gone": 1}),
    (SocketEnd.DEAD, False, Step.NEW_CHANNEL, {"channels_gone": 1}),
]


@pytest.mark.parametrize(
    ("end", "exists", "step", "counted"),
    AFTER,
    ids=[f"{e.name}-{x}" for e, x, _, _ in AFTER],
)
def test_after_socket(
    end: SocketEnd, exists: bool | None, step: Step, counted: dict[str, int]
) -> None:
    plan = ChannelPlan()
    assert plan.after_socket(end, exists) is step
    moved = {k: v for k, v in vars(plan.counters).items() if v}
    assert moved == counted


def test_the_table_covers_every_end_that_can_be_asked() -> None:
    asked = {(e, x) for e, x, _, _ in AFTER}
    assert asked == set(AFTER_SOCKET)
    for end in SocketEnd:
        assert (end, None) in AFTER_SOCKET, f"{end} has no first step"


@pytest.mark.parametrize(
    ("subscribed", "wanted", "change"),
    [
        (set(), set(), None),
        ({"a"}, {"a"}, None),
        (set(), {"b", "a"}, SubscriptionChange("POST", ("a", "b"))),
        ({"a"}, {"a", "b"}, SubscriptionChange("POST", ("b",))),
        ({"a", "b"}, {"a"}, SubscriptionChange("PUT", ("a",))),
        ({"a", "b"}, set(), SubscriptionChange("PUT", ())),
        ({"a", "b"}, {"a", "c"}, SubscriptionChange("PUT", ("a", "c"))),
    ],
)
def test_subscription_change(
    subscribed: set[str], wanted: set[str], change: SubscriptionChange | None
) -> None:
    assert subscription_change(subscribed, wanted) == change


@pytest.mark.parametrize(
    ("created", "expires", "before", "at"),
    [
        (0.0, 86_400.0, 600.0, 85_800.0),  # ten minutes before expiry
        (0.0, 100.0, 600.0, 50.0),  # a short channel: not before half its life
        (10.0, 10.0, 600.0, 10.0),  # already expired: at once
    ],
)
def test_rotate_at(created: float, expires: float, before: float, at: float) -> None:
    assert rotate_at(created, expires, before) == at


def test_slots_hold_at_most_the_limit_and_a_topic_once() -> None:
    plan = ChannelPlan(max_topics_per_channel=2)
    placements = [plan.add(transcription_topic(c)) for c in "abc"]
    assert [p.opened for p in placements if p] == [True, False, True]
    assert plan.add(transcription_topic("a")) is None
    assert [sorted(s.conversations()) for s in plan.slots] == [["a", "b"], ["c"]]
    (slot,) = plan.remove_conversation("b")
    assert slot.index == 0 and plan.counters.unsubscribed == 1
    assert plan.remove_conversation("never") == []
    placement = plan.add(transcription_topic("d"))
    assert placement is not None and placement.slot.index == 0 and not placement.opened


def test_a_discovered_conversation_is_counted_once() -> None:
    plan = ChannelPlan()
    assert plan.discovered("c1") is not None
    assert plan.discovered("c1") is None
    assert plan.counters.discovered == 1 and plan.conversations() == {"c1"}


@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abcdefgh")), max_size=60))
def test_packing_never_exceeds_the_limit_nor_duplicates(ops: list[tuple[bool, str]]) -> None:
    plan = ChannelPlan(max_topics_per_channel=3)
    followed: set[str] = set()
    for add, conversation in ops:
        if add:
            plan.add(transcription_topic(conversation))
            followed.add(conversation)
        else:
            plan.remove_conversation(conversation)
            followed.discard(conversation)
        assert all(len(s.topics) <= 3 for s in plan.slots)
        topics = [t for s in plan.slots for t in s.topics]
        assert len(topics) == len(set(topics))
        assert plan.conversations() == followed


@pytest.mark.parametrize(
    ("subscribed", "wanted", "waits"),
    [
        ({"a", "b"}, {"a"}, True),  # only a topic to drop: batched with the next drops
        ({"a"}, set(), True),
        ({"a"}, {"a", "b"}, False),  # a topic to add: at once
        ({"a"}, {"b"}, False),  # one dropped, one added: at once
        ({"a"}, {"a"}, False),  # nothing to do
    ],
)
def test_only_drops_can_wait(subscribed: set[str], wanted: set[str], waits: bool) -> None:
    assert can_wait(subscribed, wanted) is waits
