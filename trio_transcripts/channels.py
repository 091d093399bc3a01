"""The Notifications channel lifecycle, planned: which channels, which topics each, when to
rotate, what to do when a socket ends, and why. Pure: no Trio, no sockets, no clock.

In the spirit of h11's ``_state.py``, every transition lives here; the Trio side
(``sources/notifications.py``) asks and carries out. The rules, from the platform's limits
and behaviour:

* topics are packed into *slots* of at most 1,000 (the per-channel limit), one channel and one
  socket each; a topic is in one slot only; a new slot opens when all are full, up to the 20
  channels one OAuth client may hold;
* a channel's subscriptions follow its slot's topics: ``POST`` what is new; when a topic must
  go, ``PUT`` the whole list (the API removes no single topic);
* a channel rotates ``rotate_before_s`` before it ``expires``, but never before half its life
  (a skewed or odd ``expires`` must not make every new channel rotate at once);
* when a socket ends, :func:`after_socket` says what follows (the table is
  :data:`AFTER_SOCKET`), and the :class:`ChannelCounters` say what happened so far.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .wire.genesys import transcription_topic

MAX_TOPICS_PER_CHANNEL = 1000
MAX_CHANNELS = 20  # per OAuth client


class ChannelBudgetExceeded(Exception):
    """A topic would need a channel beyond what one OAuth client may hold."""


class SocketEnd(enum.Enum):
    """Why reading a socket stopped."""

    CLOSED = "the server closed it"
    LOST = "the connection was lost"
    DEAD = "silent past the heartbeat and a ping"
    GONE = "the channel no longer exists"
    UNAUTHORIZED = "the handshake was refused with 401 or 403"
    REJECTED = "the handshake was refused"
    REPLACED = "a newer socket serves the channel (socket_closing)"


class Step(enum.Enum):
    """What to do after a socket ended."""

    CHECK_CHANNEL = "ask the API whether the channel still exists"
    RECONNECT = "reconnect to the same channel after a backoff"
    NEW_CHANNEL = "create a new channel and subscribe its topics"
    RENEW_AND_NEW_CHANNEL = "renew the token, then create a new channel"
    RETIRE = "stop: the newer socket carries on"
    RENEW_AND_RECONNECT = "renew the token, then reconnect after a backoff"


AFTER_SOCKET: dict[tuple[SocketEnd, bool | None], Step] = {
    # (why it ended, does the channel still exist? None: not asked yet) -> next step
    (SocketEnd.REPLACED, None): Step.RETIRE,
    (SocketEnd.GONE, None): Step.NEW_CHANNEL,
    # Channels are tied to the token that made them: a refused handshake needs both anew.
    (SocketEnd.UNAUTHORIZED, None): Step.RENEW_AND_NEW_CHANNEL,
    **{
        (end, None): Step.CHECK_CHANNEL
        for end in (SocketEnd.CLOSED, SocketEnd.LOST, SocketEnd.DEAD, SocketEnd.REJECTED)
    },
    # A handshake refused otherwise (a 5xx in maintenance, say) says nothing of the channel:
    # asked about, it is reconnected to after a backoff while it exists. Creating a new
    # channel at once instead spun through channels against an unavailable service (the
    # simulator's outage fault, tests/test_backfill.py) towards the platform's 20-channel limit.
    **{
        (end, True): Step.RECONNECT
        for end in (SocketEnd.CLOSED, SocketEnd.LOST, SocketEnd.DEAD, SocketEnd.REJECTED)
    },
    **{
        (end, False): Step.NEW_CHANNEL
        for end in (SocketEnd.CLOSED, SocketEnd.LOST, SocketEnd.DEAD, SocketEnd.REJECTED)
    },
}


AFTER_STREAM: dict[SocketEnd, Step] = {
    # The fragment stream (``sources/fragment_stream.py``): one fixed URL, no channel to ask
    # about or replace, so every end reconnects; a refused handshake renews the token first.
    SocketEnd.UNAUTHORIZED: Step.RENEW_AND_RECONNECT,
    **{
        end: Step.RECONNECT
        for end in (SocketEnd.CLOSED, SocketEnd.LOST, SocketEnd.DEAD, SocketEnd.REJECTED)
    },
}


@dataclass
class ChannelCounters:
    channels_created: int = 0
    connects: int = 0
    reconnects: int = 0
    dead_sockets: int = 0
    socket_closings: int = 0
    rotations: int = 0
    channels_gone: int = 0
    ignored: int = 0
    discovered: int = 0
    unsubscribed: int = 0


@dataclass
class Slot:
    """One channel's worth of topics."""

    index: int
    topics: set[str] = field(default_factory=set)

    def conversations(self) -> tuple[str, ...]:
        return tuple(
            sorted(t.split(".")[2] for t in self.topics if t.startswith("v2.conversations."))
        )


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """One request that brings a channel's subscriptions to its slot's topics."""

    method: str  # "POST" (add these) or "PUT" (exactly these)
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    slot: Slot
    opened: bool  # a new slot: the caller starts its channel


class ChannelPlan:
    """The slots and their topics, and the counters; see the module docstring."""

    def __init__(
        self, max_topics_per_channel: int = MAX_TOPICS_PER_CHANNEL, max_channels: int = MAX_CHANNELS
    ) -> None:
        self.max_topics = max_topics_per_channel
        self.max_channels = max_channels
        self.slots: list[Slot] = []
        self.counters = ChannelCounters()

    def conversations(self) -> set[str]:
        return {c for slot in self.slots for c in slot.conversations()}

    def follows(self, topic: str) -> bool:
        return any(topic in slot.topics for slot in self.slots)

    def add(self, topic: str) -> Placement | None:
        """Put ``topic`` in a slot with room (a new one if none has); None if it has one."""
        if self.follows(topic):
            return None
        slot = next((s for s in self.slots if len(s.topics) < self.max_topics), None)
        opened = slot is None
        if slot is None:
            if len(self.slots) >= self.max_channels:
                raise ChannelBudgetExceeded(
                    f"{topic} would need channel {len(self.slots) + 1}; one OAuth client may "
                    f"hold {self.max_channels} channels of {self.max_topics} topics: shard "
                    f"the conversations over more OAuth clients (SHARD, GENESYS_CLIENT_ID)"
                )
            slot = Slot(len(self.slots))
            self.slots.append(slot)
        slot.topics.add(topic)
        return Placement(slot, opened)

    def discovered(self, conversation_id: str) -> Placement | None:
        """A conversation announced on a watched queue."""
        placement = self.add(transcription_topic(conversation_id))
        if placement is not None:
            self.counters.discovered += 1
        return placement

    def remove_conversation(self, conversation_id: str) -> list[Slot]:
        """Drop a conversation's topic; the slots whose channels must resubscribe."""
        topic = transcription_topic(conversation_id)
        changed = [slot for slot in self.slots if topic in slot.topics]
        for slot in changed:
            slot.topics.discard(topic)
            self.counters.unsubscribed += 1
        return changed

    def channel_created(self) -> None:
        self.counters.channels_created += 1

    def connected(self) -> None:
        self.counters.connects += 1

    def socket_closing(self) -> None:
        self.counters.socket_closings += 1

    def ignored(self) -> None:
        self.counters.ignored += 1

    def rotating(self) -> None:
        self.counters.rotations += 1

    def after_socket(self, end: SocketEnd, channel_exists: bool | None = None) -> Step:
        """The next step after a socket ended (:data:`AFTER_SOCKET`), counted."""
        step = AFTER_SOCKET[(end, channel_exists)]
        if end is SocketEnd.DEAD and channel_exists is None:
            self.counters.dead_sockets += 1
        if step is Step.RECONNECT:
            self.counters.reconnects += 1
        elif step in (Step.NEW_CHANNEL, Step.RENEW_AND_NEW_CHANNEL):
            self.counters.channels_gone += 1
        return step


def subscription_change(subscribed: set[str], wanted: set[str]) -> SubscriptionChange | None:
    """``POST`` what is new, or ``PUT`` the whole list when a topic must go; None if equal."""
    if subscribed <= wanted:
        added = tuple(sorted(wanted - subscribed))
        return SubscriptionChange("POST", added) if added else None
    return SubscriptionChange("PUT", tuple(sorted(wanted)))


def can_wait(subscribed: set[str], wanted: set[str]) -> bool:
    """Whether bringing ``subscribed`` to ``wanted`` can wait to be batched with what follows:
    only topics to drop (calls that ended), nothing to add. Dropping one topic is a ``PUT`` of
    the whole list (up to 1,000 topics); at the end of a busy hour calls end several a second,
    and a ``PUT`` for each would cost more than the frames of those calls."""
    return wanted < subscribed


def rotate_at(created_at: float, expires_at: float, rotate_before_s: float) -> float:
    """When to replace a channel: ``rotate_before_s`` before it expires, not before half
    its life (both on the caller's clock)."""
    return max(expires_at - rotate_before_s, (created_at + expires_at) / 2)
