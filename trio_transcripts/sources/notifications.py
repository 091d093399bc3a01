"""Genesys Cloud Notifications: channels, subscriptions, discovery, liveness, reconnects.

The platform's rules (Genesys Cloud's Notifications API guide and the SDKs' channel and
subscription models) and what this module does with them:

* Topics (``v2.conversations.{id}.transcription`` per conversation, plus
  ``v2.routing.queues.{id}.conversations`` per watched queue) are packed into *slots* of at most
  1,000, one channel and one socket each (the platform's per-socket limit).
* A slot creates a channel (``POST /api/v2/notifications/channels``), subscribes its topics
  (``POST .../subscriptions``; removing a topic ``PUT``s the remaining list; one writer per
  channel, so changes never race), reads ``rejectionReason``/``missingPermissions`` into a
  clear error, and connects to ``connectUri`` exactly as returned.
* Discovery: a conversation announced on a watched queue is subscribed at once; one whose
  transcription session ends (``SESSION_ENDED``) is unsubscribed. Conversations can also be
  added and removed at run time with :meth:`NotificationsSource.add_conversation` and
  :meth:`~NotificationsSource.remove_conversation`.
* Liveness: any message proves the socket alive. After ``heartbeat_timeout_s`` of silence
  (heartbeats come every ~30 s) we send ``{"message":"ping"}``; no answer within
  ``pong_timeout_s`` and we reconnect. The watchdog only runs while we wait on the socket:
  while our own backpressure holds the reader (the ring is paused), it is not counting, so a
  stall is never mistaken for a dead socket; if the server drops us during a long stall, that
  is an ordinary reconnect.
* ``v2.system.socket_closing``: a second socket is opened on the same channel at once; the old
  one is read until the server closes it, so nothing sent to it is lost and there is no gap.
* Rotation: ``rotate_before_s`` before the channel's ``expires``, a new channel is created,
  subscribed and connected, and only then is the old one closed (overlap, not gap; the
  duplicates it can cause are removed by the coalescer and by idempotent writes).
* A 404 ``result`` on the socket, or a HEAD 404 for the channel after a disconnect: a new
  channel, resubscribed. A 401 handshake: the token is renewed first (channels are tied to
  the token that made them), then a new channel.
* Reconnects use capped exponential backoff with full jitter. Every gap is logged and counted.

Which slot a topic goes to, what a socket's end leads to, when to rotate, and what each
subscription request is are decided by the pure planner in ``channels.py``; this module
carries its decisions out. The REST calls are ``channel_api.py``'s, the socket loop is
``_socket.py``'s, and every wait before trying again is the retry driver's (``retrying.py``).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import trio
import trio_websocket

from ..auth import TokenManager
from ..channels import (
    ChannelBudgetExceeded,
    ChannelCounters,
    ChannelPlan,
    Placement,
    Slot,
    SocketEnd,
    Step,
    can_wait,
    rotate_at,
    subscription_change,
)
from ..config import Config
from ..coverage import Ended, Followed, Heard, Listening, Seen, SocketGap, Unfollowed
from ..liveness import KEEPALIVE_MS, MARGIN_MS, Liveness
from ..logthrottle import Repeats
from ..model import Ignored, Malformed, Merge, SessionLost
from ..pulse import Pulse
from ..redaction import redact_url
from ..retry import Action, Backoff, Decision
from ..retrying import Tries, retrying, unexpected
from ..shard import CHANNELS_PER_CLIENT, Shard
from ..wire.genesys import (
    ChannelGone,
    Heartbeat,
    Pong,
    QueueConversation,
    SocketClosing,
    SubscriptionReply,
    SystemNotice,
    Transcription,
    parse_notification,
    queue_conversations_topic,
    transcription_topic,
)
from . import HEARD_WITHIN_S, Emit, Gap, GapLog, SourceError, SourceHealth
from ._socket import Socket, SocketOptions, read_socket
from .channel_api import TIMEOUT_S, ChannelApi, ChannelLost

log = logging.getLogger("trio_transcripts.source.notifications")

PING = '{"message":"ping"}'


@dataclass(frozen=True)
class NotificationsSettings:
    api_url: str
    conversation_ids: tuple[str, ...] = ()
    queue_ids: tuple[str, ...] = ()
    heartbeat_timeout_s: float = Config.heartbeat_timeout_s
    pong_timeout_s: float = 10.0
    rotate_before_s: float = 600.0
    old_socket_grace_s: float = 65.0
    max_topics_per_channel: int = 1000
    max_channels: int = CHANNELS_PER_CLIENT
    socket: SocketOptions = SocketOptions()
    backoff: Backoff = Backoff()
    timeout_s: float = TIMEOUT_S
    shard: Shard | None = None  # follow only this shard's conversations (``shard.py``)
    unsubscribe_batch_s: float = 1.0  # how long dropped topics wait for more to drop with them
    keepalive_s: float = KEEPALIVE_MS / 1000  # the platform's, per transcription session
    silence_margin_s: float = MARGIN_MS / 1000  # silent this much past it: the session ended
    liveness_check_s: float = 30.0
    decorated_text: bool = False  # store decoratedTranscript where given (``wire/genesys.py``)


def wall_ms() -> int:
    """Our clock in epoch ms, as gaps are recorded (``coverage.py``)."""
    return int(time.time() * 1000)


@dataclass
class _Channel:
    id: str
    connect_uri: str
    expires_at: float  # trio clock
    created_at: float  # trio clock
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    connected: trio.Event = field(default_factory=trio.Event)
    subscribed: set[str] = field(default_factory=set)
    sockets: int = 0  # open now (two while one is superseded)
    heard_at: float = -math.inf  # trio clock of the last message on any of them


@dataclass
class _SlotTasks:
    """The Trio side of a planned slot: its nursery, its gap log, a change signal."""

    changed: Pulse = field(default_factory=Pulse)  # its topics changed
    gaps: GapLog = field(default_factory=lambda: GapLog("notifications"))
    nursery: trio.Nursery | None = None
    channel: _Channel | None = None  # the one serving the slot (the newer, once connected)


@dataclass
class _Reading:
    """One socket being read: its slot, its channel, and since when a newer socket serves
    the channel (``socket_closing``)."""

    slot: Slot
    channel: _Channel
    nursery: trio.Nursery
    superseded_at: float | None = None


# What a message other than a transcription or a malformed frame does to the socket reading
# it: nothing (None), or end it (the why). One handler per kind of message, by its type;
# each takes its own kind (``Any`` here, so the table can hold them all).
_Handler = Callable[["NotificationsSource", Any, _Reading], SocketEnd | None]


class NotificationsSource:
    """Implements :class:`~trio_transcripts.sources.Source` for Genesys Notifications."""

    kind = "notifications"
    merge = Merge.REVISE

    def __init__(
        self,
        settings: NotificationsSettings,
        tokens: TokenManager,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        repeats: Repeats | None = None,
        report: Callable[[Seen], None] | None = None,
    ) -> None:
        """``report`` is told what the source saw (``coverage.py``): followed, listening,
        heard, a socket gap, unfollowed; the completeness side records it."""
        self.settings = settings
        self._report = report
        # The communication each conversation's last ``Heard`` named: one is reported only
        # when that changes (its first message, a new communication), all ``coverage.py``
        # needs, so a frame costs a dict lookup here, not a report.
        self._heard: dict[str, str | None] = {}
        self.tokens = tokens
        self.plan = ChannelPlan(settings.max_topics_per_channel, settings.max_channels)
        self._rng = rng or random.Random()
        self._repeats = repeats or Repeats()
        self.api = ChannelApi(
            settings.api_url,
            tokens,
            backoff=settings.backoff,
            rng=self._rng,
            timeout_s=settings.timeout_s,
            transport=transport,
        )
        self._tasks: dict[int, _SlotTasks] = {}
        self._nursery: trio.Nursery | None = None
        self._emit: Emit | None = None
        self.liveness = Liveness(
            int(settings.keepalive_s * 1000), int(settings.silence_margin_s * 1000)
        )

    @property
    def stats(self) -> ChannelCounters:
        return self.plan.counters

    @property
    def gaps(self) -> list[Gap]:
        return [gap for tasks in self._tasks.values() for gap in tasks.gaps.gaps]

    def health(self, now: float) -> SourceHealth:
        channels = [t.channel for t in self._tasks.values() if t.channel is not None]
        live = sum(1 for c in channels if c.sockets and now - c.heard_at <= HEARD_WITHIN_S)
        topics = sum(len(c.subscribed) for c in channels)
        return SourceHealth(sockets=len(self.plan.slots), live=live, topics=topics)

    def reconnects(self) -> dict[str, int]:
        """By how: the same channel again, a new one, ``socket_closing``, a rotation."""
        c = self.stats
        return {
            "reconnect": c.reconnects,  # the same channel again
            "new_channel": c.channels_gone,
            "socket_closing": c.socket_closings,
            "rotation": c.rotations,
        }

    def waiting_for(self) -> str | None:
        if self.stats.connects:
            return None
        return f"a notification channel and its socket from {redact_url(self.settings.api_url)}"

    def conversations(self) -> set[str]:
        return self.plan.conversations()

    def follows(self, conversation_id: str) -> bool:
        return self.plan.follows(transcription_topic(conversation_id))

    def _tell(self, seen: Seen) -> None:
        if self._report is not None:
            self._report(seen)

    def _gap_closed(self, gap: Gap) -> None:
        self._tell(SocketGap(gap.conversations, gap.start_ms, gap.end_ms, gap.refused))

    def _listening(self, channel: _Channel, topics: Sequence[str]) -> None:
        """``topics`` of ``channel`` are subscribed with a live socket: watched for silence
        from now (heard or not, ``liveness.py``), and reported."""
        conversations = tuple(t.split(".")[2] for t in topics if t.startswith("v2.conversations."))
        if not conversations:
            return
        now = int(trio.current_time() * 1000)
        for conversation_id in conversations:
            self.liveness.watch(conversation_id, now)
        self._tell(Listening(conversations, wall_ms()))

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run every channel until cancelled. Raises :class:`SourceError` when refused."""
        self._emit = emit
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._watch_liveness)
                for slot in self.plan.slots:  # conversations added before run()
                    nursery.start_soon(self._run_slot, slot)
                for queue_id in self.settings.queue_ids:
                    self._add(queue_conversations_topic(queue_id))
                for conversation_id in self.settings.conversation_ids:
                    self.add_conversation(conversation_id)
                if not self.plan.slots and self.settings.shard is None:
                    raise SourceError(
                        "nothing to subscribe: set CONVERSATION_ID or GENESYS_QUEUE_ID"
                    )
                if not self.plan.slots:
                    log.warning(
                        "shard %s owns none of the conversations given; it follows none",
                        self.settings.shard,
                    )
                task_status.started()
        finally:
            for slot in self.plan.slots:
                self._slot_tasks(slot).gaps.stopped(slot.conversations())
            with trio.CancelScope(shield=True):
                await self.api.aclose()

    # --- topics -----------------------------------------------------------------------

    def add_conversation(self, conversation_id: str) -> None:
        """Subscribe a conversation's transcription topic (no-op if already subscribed)."""
        self._tell(Followed(conversation_id, wall_ms()))
        self._add(transcription_topic(conversation_id))

    def remove_conversation(self, conversation_id: str) -> None:
        self._unfollow(conversation_id, Ended.REMOVED)

    def _unfollow(self, conversation_id: str, how: Ended, silent_ms: int = 0) -> None:
        self.liveness.ended(conversation_id)
        self._heard.pop(conversation_id, None)
        self._tell(Unfollowed(conversation_id, how, wall_ms(), silent_ms))
        for slot in self.plan.remove_conversation(conversation_id):
            self._slot_tasks(slot).changed.fire()
            log.info("unsubscribed conversation %s", conversation_id)

    def _slot_tasks(self, slot: Slot) -> _SlotTasks:
        tasks = self._tasks.get(slot.index)
        if tasks is None:
            tasks = self._tasks[slot.index] = _SlotTasks()
            tasks.gaps.on_close = self._gap_closed
        return tasks

    def _add(self, topic: str) -> None:
        try:
            self._place(self.plan.add(topic))
        except ChannelBudgetExceeded as exc:
            raise SourceError(str(exc)) from None

    def _place(self, placement: Placement | None) -> None:
        """Carry out the planner's placement of a topic: a new channel, or a resubscribe."""
        if placement is None:
            return
        tasks = self._slot_tasks(placement.slot)
        if not placement.opened:
            tasks.changed.fire()
        elif self._nursery is not None:  # else run() starts it
            self._nursery.start_soon(self._run_slot, placement.slot)

    async def _watch_liveness(self) -> None:
        while True:
            await trio.sleep(self.settings.liveness_check_s)
            await self.check_liveness(int(trio.current_time() * 1000))

    async def check_liveness(self, now_ms: int) -> list[str]:
        """End the conversations silent past the keepalive (``liveness.py``): unsubscribe,
        and hand the worker a ``SessionLost`` so what is pending of each becomes partials."""
        emit = self._emit
        assert emit is not None, "run() sets it first"
        # A late frame of a conversation already unsubscribed is watched again; its silence
        # is not news. Each silent one is looked up in the plan (O(slots)), not the plan's
        # 20,000 conversations listed each tick (issue 23).
        follows = self.plan.follows
        silent = self.liveness.silent(now_ms)
        lost = [(c, ms) for c, ms in silent if follows(transcription_topic(c))]
        for conversation_id, silent_ms in lost:
            log.warning(
                "conversation %s silent for %.0f s, past the platform's %.0f s keepalive: its "
                "transcription session ended unseen; flushing it and unsubscribing",
                conversation_id,
                silent_ms / 1000,
                self.settings.keepalive_s,
            )
            # Unsubscribed from here on: whatever the conversation still says (if its
            # session did go on) is heard no more, so its gap has no end of ours.
            self._unfollow(conversation_id, Ended.SILENT, silent_ms)
            await emit(SessionLost(conversation_id, silent_ms), "")
        return [conversation_id for conversation_id, _ in lost]

    # --- channels ---------------------------------------------------------------------

    async def _run_slot(self, slot: Slot) -> None:
        async with trio.open_nursery() as nursery:
            self._slot_tasks(slot).nursery = nursery
            await self._start_channel(slot, None)

    async def _start_channel(self, slot: Slot, old: _Channel | None) -> None:
        """Open a channel (retrying), run it, and once it is connected retire ``old``."""

        async def once() -> tuple[Decision, _Channel | None]:
            try:
                return Decision(Action.DONE, "open"), await self._open_channel(slot)
            except ChannelLost as exc:  # gone before its topics were subscribed
                return Decision(Action.RETRY, str(exc)), None

        def say(decision: Decision, _retry: int, delay: float) -> None:
            log.warning(
                "could not open a notification channel (%s); retry in %.2f s",
                decision.detail,
                delay,
            )

        _, channel = await retrying(
            once, Tries(self.settings.backoff, self._rng), say=say, fail=unexpected
        )
        assert channel is not None, "DONE comes with the channel"
        tasks = self._slot_tasks(slot)
        assert tasks.nursery is not None
        tasks.nursery.start_soon(self._run_channel, slot, channel)
        if old is not None:
            with trio.move_on_after(self.settings.timeout_s * 3):
                await channel.connected.wait()
            # The old socket's reads may be lingering over frames sent before the new
            # channel's subscriptions took (``sources/_socket.py``, ``LingeringStream``): a
            # cancel now would drop them unseen. Two lingers let it read them.
            await trio.sleep(2 * self.settings.socket.linger_s)
            old.scope.cancel()
        tasks.channel = channel

    async def _run_channel(self, slot: Slot, channel: _Channel) -> None:
        with channel.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_subscriptions, slot, channel)
                nursery.start_soon(self._rotate_before_expiry, slot, channel)
                await self._socket_loop(slot, channel, nursery)

    async def _rotate_before_expiry(self, slot: Slot, channel: _Channel) -> None:
        s = self.settings
        await trio.sleep_until(rotate_at(channel.created_at, channel.expires_at, s.rotate_before_s))
        log.info("channel %s expires soon; rotating to a new channel", channel.id)
        self.plan.rotating()
        await self._start_channel(slot, channel)

    async def _open_channel(self, slot: Slot) -> _Channel:
        info = await self.api.create_channel()
        now = trio.current_time()
        expires_at = math.inf
        if info.expires_epoch_s is not None:
            expires_at = now + (info.expires_epoch_s - time.time())
        channel = _Channel(info.id, info.connect_uri, expires_at, now)
        self.plan.channel_created()
        log.info("channel %s created (%d topics)", channel.id, len(slot.topics))
        await self._subscribe(slot, channel)
        return channel

    async def _subscribe(self, slot: Slot, channel: _Channel) -> None:
        """Bring the channel's subscriptions to the slot's topics. This task is the channel's
        only writer, so a ``PUT`` of the whole list cannot race another change."""
        wanted = set(slot.topics)
        change = subscription_change(channel.subscribed, wanted)
        if change is None:
            return
        await self.api.subscribe(channel.id, change.method, change.topics)
        added = wanted - channel.subscribed
        channel.subscribed = wanted
        if channel.sockets:
            self._listening(channel, tuple(added))

    async def _keep_subscriptions(self, slot: Slot, channel: _Channel) -> None:
        tasks = self._slot_tasks(slot)
        try:
            while True:
                # Taken before subscribing: a topic added while a request is in flight fires
                # it, so it is subscribed by the next round instead of another wait.
                changed = tasks.changed.next()
                await self._subscribe(slot, channel)
                await changed.wait()
                # Topics only to drop wait a moment for others (an addition ends the wait).
                with trio.move_on_after(self.settings.unsubscribe_batch_s):
                    while can_wait(channel.subscribed, set(slot.topics)):
                        await tasks.changed.wait()
        except ChannelLost as exc:
            # As when the socket finds its channel gone: a new channel takes the slot.
            log.warning("%s; creating a new channel and resubscribing", exc)
            assert tasks.nursery is not None
            tasks.nursery.start_soon(self._start_channel, slot, None)
            channel.scope.cancel()

    # --- sockets ----------------------------------------------------------------------

    async def _socket_loop(self, slot: Slot, channel: _Channel, nursery: trio.Nursery) -> None:
        """Read the channel's socket; reconnect while ``channels.py``'s table says so."""
        tasks = self._slot_tasks(slot)
        tries = Tries(self.settings.backoff, self._rng)
        is_open = False

        def opened() -> None:
            nonlocal is_open
            is_open = True
            self.plan.connected()
            channel.sockets += 1
            channel.heard_at = trio.current_time()
            channel.connected.set()
            tasks.gaps.live(slot.conversations())
            self._listening(channel, tuple(channel.subscribed))
            tries.reset()

        async def once() -> tuple[Decision, Step]:
            nonlocal is_open
            end = await read_socket(
                channel.connect_uri,
                self.settings.socket,
                partial(self._read, _Reading(slot, channel, nursery)),
                where=f"channel {channel.id}",
                repeats=self._repeats,
                opened=opened,
            )
            if is_open:
                channel.sockets -= 1
                is_open = False
            step = self.plan.after_socket(end)
            if step is Step.CHECK_CHANNEL:
                exists = await self.api.channel_exists(channel.id)
                step = self.plan.after_socket(end, exists)
            if step is not Step.RETIRE:
                tasks.gaps.lost()
            again = step is Step.RECONNECT
            return Decision(Action.RETRY if again else Action.DONE, step.value), step

        def say(_decision: Decision, _retry: int, delay: float) -> None:
            log.info("reconnecting to channel %s in %.2f s", channel.id, delay)

        _, step = await retrying(once, tries, say=say, fail=unexpected)
        if step is Step.RETIRE:
            return
        if step is Step.RENEW_AND_NEW_CHANNEL:
            self.tokens.invalidate()
        log.warning("channel %s is gone; creating a new one and resubscribing", channel.id)
        assert tasks.nursery is not None
        tasks.nursery.start_soon(self._start_channel, slot, None)
        channel.scope.cancel()

    async def _wait_for_message(
        self,
        socket: Socket,
        channel: _Channel,
        superseded_at: float | None,
    ) -> str | bytes | None:
        """The next message, under the watchdog; ``None`` when the socket is done for.

        A superseded socket (after ``socket_closing``) is only waited on for the rest of its
        grace period. A live one that stays silent past the heartbeat timeout is pinged, and
        is dead when no message follows within the pong timeout.
        """
        timeout = self.settings.heartbeat_timeout_s
        if superseded_at is not None:
            grace_left = superseded_at + self.settings.old_socket_grace_s - trio.current_time()
            timeout = min(timeout, max(0.0, grace_left))
        with trio.move_on_after(timeout):
            return await socket.get_message()
        if superseded_at is not None:
            return None
        log.warning(
            "no message on channel %s for %.0f s; sending a ping",
            channel.id,
            self.settings.heartbeat_timeout_s,
        )
        await socket.ws.send_message(PING)
        with trio.move_on_after(self.settings.pong_timeout_s):
            return await socket.get_message()
        log.warning(
            "no pong on channel %s within %.0f s; reconnecting",
            channel.id,
            self.settings.pong_timeout_s,
        )
        return None

    async def _read(self, reading: _Reading, socket: Socket) -> SocketEnd:
        """Read until the socket is done for, and say why. A transcription (nearly every
        frame) and a malformed frame go to ``emit`` from here; any other message to its
        handler in :data:`HANDLERS`."""
        channel = reading.channel
        decorated = self.settings.decorated_text
        emit = self._emit
        assert emit is not None, "run() sets it before any socket opens"
        try:
            while True:
                message = socket.queued()
                if message is None:
                    message = await self._wait_for_message(socket, channel, reading.superseded_at)
                    if message is None:
                        superseded = reading.superseded_at is not None
                        return SocketEnd.REPLACED if superseded else SocketEnd.DEAD
                channel.heard_at = trio.current_time()
                event = parse_notification(message, decorated=decorated)
                if type(event) is Transcription:
                    conversation = event.conversation_id
                    self.liveness.heard(conversation, int(channel.heard_at * 1000))
                    communication = event.communication_id
                    if self._heard.get(conversation, "") != communication:
                        self._heard[conversation] = communication
                        self._tell(
                            Heard(conversation, communication, event.session_start_ms, wall_ms())
                        )
                    await emit(event, message)
                    if event.session_ended:
                        self._unfollow(conversation, Ended.SESSION_ENDED)
                elif type(event) is Malformed:
                    await emit(event, message)
                elif (end := HANDLERS[type(event)](self, event, reading)) is not None:
                    return end
        except trio_websocket.ConnectionClosed:
            if reading.superseded_at is None:
                raise
            log.info("channel %s: the superseded socket was closed", channel.id)
            return SocketEnd.REPLACED

    def _on_socket_closing(self, _event: SocketClosing, reading: _Reading) -> None:
        self.plan.socket_closing()
        log.info("socket_closing on channel %s: opening a new socket first", reading.channel.id)
        reading.superseded_at = trio.current_time()
        reading.nursery.start_soon(
            self._socket_loop, reading.slot, reading.channel, reading.nursery
        )

    def _on_channel_gone(self, event: ChannelGone, reading: _Reading) -> SocketEnd:
        log.warning("channel %s reported 404: %s", reading.channel.id, event.message)
        return SocketEnd.GONE

    def _on_queue_conversation(self, event: QueueConversation, _reading: _Reading) -> None:
        shard = self.settings.shard
        if shard is not None and not shard.owns(event.conversation_id):
            return  # another shard's; it subscribes to the same queue
        try:
            placement = self.plan.discovered(event.conversation_id)
        except ChannelBudgetExceeded as exc:
            raise SourceError(str(exc)) from None
        if placement is not None:
            log.info(
                "queue %s: conversation %s appeared; subscribing",
                event.queue_id,
                event.conversation_id,
            )
            self._tell(Followed(event.conversation_id, wall_ms()))
            self._place(placement)

    def _on_subscription_reply(self, event: SubscriptionReply, _reading: _Reading) -> None:
        if not event.ok:
            log.warning("subscription request failed: %s %s", event.code, event.message)

    def _on_system_notice(self, event: SystemNotice, _reading: _Reading) -> None:
        log.warning("system notice %s: %s %s", event.topic, event.reason, event.message or "")

    def _on_ignored(self, _event: Ignored, _reading: _Reading) -> None:
        self.plan.ignored()

    def _on_heard(self, _event: Heartbeat | Pong, _reading: _Reading) -> None:
        """A heartbeat or a pong: the socket is alive (``heard_at``), nothing else."""


HANDLERS: dict[type, _Handler] = {
    SocketClosing: NotificationsSource._on_socket_closing,
    ChannelGone: NotificationsSource._on_channel_gone,
    QueueConversation: NotificationsSource._on_queue_conversation,
    SubscriptionReply: NotificationsSource._on_subscription_reply,
    SystemNotice: NotificationsSource._on_system_notice,
    Ignored: NotificationsSource._on_ignored,
    Heartbeat: NotificationsSource._on_heard,
    Pong: NotificationsSource._on_heard,
}
"""The handler of each kind of message but a transcription or a malformed frame
(``wire/genesys.py``'s ``NotificationEvent``: every other member is here,
``tests/test_notifications.py`` checks)."""
