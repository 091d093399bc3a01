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
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import trio
import trio_websocket

from ..auth import TokenManager
from ..model import Ignored, Malformed, Merge
from ..outcomes import outcome_of, outcome_of_error
from ..retry import Action, Backoff, Service, classify, next_delay
from ..wire.genesys import (
    ChannelGone,
    QueueConversation,
    SocketClosing,
    SubscriptionReply,
    SystemNotice,
    Transcription,
    parse_notification,
    queue_conversations_topic,
    transcription_topic,
)
from . import SOCKET_LOST, Emit, Gap, GapLog, SourceError, close_transport, queued_message

log = logging.getLogger("trio_transcripts.source.notifications")

PING = '{"message":"ping"}'
TRANSCRIPTION_PERMISSION = "conversation:transcription:view"


@dataclass(frozen=True)
class NotificationsSettings:
    api_url: str
    conversation_ids: tuple[str, ...] = ()
    queue_ids: tuple[str, ...] = ()
    heartbeat_timeout_s: float = 35.0
    pong_timeout_s: float = 10.0
    rotate_before_s: float = 600.0
    old_socket_grace_s: float = 65.0
    max_topics_per_channel: int = 1000
    message_queue_size: int = 64
    max_message_size: int = 16 << 20
    backoff: Backoff = Backoff(base_s=0.5, cap_s=30.0)
    timeout_s: float = 10.0


@dataclass
class NotificationsStatistics:
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


class _ChannelLost(Exception):
    """This channel cannot be used any more; make a new one."""


@dataclass
class _Channel:
    id: str
    connect_uri: str
    expires_at: float  # trio clock
    created_at: float  # trio clock
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    connected: trio.Event = field(default_factory=trio.Event)
    subscribed: set[str] = field(default_factory=set)


@dataclass
class _Slot:
    index: int
    topics: set[str] = field(default_factory=set)
    changed: trio.Event = field(default_factory=trio.Event)
    gaps: GapLog = field(default_factory=lambda: GapLog("notifications"))
    nursery: trio.Nursery | None = None

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def conversations(self) -> tuple[str, ...]:
        return tuple(
            sorted(t.split(".")[2] for t in self.topics if t.startswith("v2.conversations."))
        )


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
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.stats = NotificationsStatistics()
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            base_url=settings.api_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s),
        )
        self._slots: list[_Slot] = []
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()
        self._emit: Emit | None = None

    @property
    def gaps(self) -> list[Gap]:
        return [gap for slot in self._slots for gap in slot.gaps.gaps]

    def waiting_for(self) -> str | None:
        if self.stats.connects:
            return None
        return f"a notification channel and its socket from {self.settings.api_url}"

    def _count(self, name: str) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[NotificationsStatistics], bool]) -> None:
        """Wait until ``predicate(self.stats)`` holds (for status pages and tests)."""
        while not predicate(self.stats):
            await self._changed.wait()

    def conversations(self) -> set[str]:
        return {c for slot in self._slots for c in slot.conversations()}

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run every channel until cancelled. Raises :class:`SourceError` when refused."""
        self._emit = emit
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for slot in self._slots:  # conversations added before run()
                    nursery.start_soon(self._run_slot, slot)
                for queue_id in self.settings.queue_ids:
                    self._add_topic(queue_conversations_topic(queue_id))
                for conversation_id in self.settings.conversation_ids:
                    self._add_topic(transcription_topic(conversation_id))
                if not self._slots:
                    raise SourceError(
                        "nothing to subscribe: set CONVERSATION_ID or GENESYS_QUEUE_ID"
                    )
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await self._client.aclose()

    # --- topics -----------------------------------------------------------------------

    def add_conversation(self, conversation_id: str) -> None:
        """Subscribe a conversation's transcription topic (no-op if already subscribed)."""
        self._add_topic(transcription_topic(conversation_id))

    def remove_conversation(self, conversation_id: str) -> None:
        topic = transcription_topic(conversation_id)
        for slot in self._slots:
            if topic in slot.topics:
                slot.topics.discard(topic)
                slot.notify()
                self._count("unsubscribed")
                log.info("unsubscribed conversation %s", conversation_id)

    def _add_topic(self, topic: str) -> None:
        if any(topic in slot.topics for slot in self._slots):
            return
        slot = next(
            (s for s in self._slots if len(s.topics) < self.settings.max_topics_per_channel), None
        )
        if slot is None:
            slot = _Slot(len(self._slots))
            self._slots.append(slot)
            slot.topics.add(topic)
            if self._nursery is not None:  # else run() starts it
                self._nursery.start_soon(self._run_slot, slot)
        else:
            slot.topics.add(topic)
            slot.notify()

    # --- channels ---------------------------------------------------------------------

    async def _run_slot(self, slot: _Slot) -> None:
        async with trio.open_nursery() as nursery:
            slot.nursery = nursery
            await self._start_channel(slot, None)

    async def _start_channel(self, slot: _Slot, old: _Channel | None) -> None:
        """Open a channel (retrying), run it, and once it is connected retire ``old``."""
        attempt = 0
        while True:
            try:
                channel = await self._open_channel(slot)
                break
            except _ChannelLost as exc:
                delay = self.settings.backoff.delay(attempt, self._rng)
                log.warning(
                    "could not open a notification channel (%s); retry in %.2f s", exc, delay
                )
                await trio.sleep(delay)
                attempt += 1
        assert slot.nursery is not None
        slot.nursery.start_soon(self._run_channel, slot, channel)
        if old is not None:
            with trio.move_on_after(self.settings.timeout_s * 3):
                await channel.connected.wait()
            old.scope.cancel()

    async def _run_channel(self, slot: _Slot, channel: _Channel) -> None:
        with channel.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_subscriptions, slot, channel)
                nursery.start_soon(self._rotate_before_expiry, slot, channel)
                await self._socket_loop(slot, channel, nursery)

    async def _rotate_before_expiry(self, slot: _Slot, channel: _Channel) -> None:
        # Never before half the channel's life: a skewed or odd ``expires`` must not make
        # every new channel rotate at once.
        halfway = (channel.created_at + channel.expires_at) / 2
        await trio.sleep_until(max(channel.expires_at - self.settings.rotate_before_s, halfway))
        log.info("channel %s expires soon; rotating to a new channel", channel.id)
        self._count("rotations")
        await self._start_channel(slot, channel)

    async def _request(self, method: str, path: str, json: object = None) -> httpx.Response:
        """A REST call with a fresh token, renewing it on 401 and retrying transient faults."""
        attempt = 0
        while True:
            token = await self.tokens.get()
            try:
                response = await self._client.request(
                    method, path, json=json, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TransportError as exc:
                decision = classify(Service.GENESYS_API, outcome_of_error(exc), time.time())
            else:
                decision = classify(Service.GENESYS_API, outcome_of(response), time.time())
                if decision.action is Action.DONE:
                    return response
            if decision.action is Action.RENEW_TOKEN:
                self.tokens.invalidate(token)
            elif decision.action is Action.FATAL:
                raise SourceError(
                    f"Genesys API {method} {self.settings.api_url}{path} failed: {decision.detail}"
                )
            delay = next_delay(attempt, decision.retry_after_s, self.settings.backoff, self._rng)
            log.warning("%s %s failed (%s); retry in %.2f s", method, path, decision.detail, delay)
            await trio.sleep(delay)
            attempt += 1

    async def _open_channel(self, slot: _Slot) -> _Channel:
        response = await self._request("POST", "/api/v2/notifications/channels")
        if response.status_code == 404:
            raise SourceError(
                f"{self.settings.api_url} has no notifications API (404): "
                f"check GENESYS_REGION or GENESYS_API_URL"
            )
        body = response.json()
        expires_at = math.inf
        if isinstance(body.get("expires"), str):
            try:
                expires = datetime.fromisoformat(body["expires"]).timestamp()
                expires_at = trio.current_time() + (expires - time.time())
            except ValueError:
                log.warning("channel expiry %r unreadable; not rotating", body["expires"])
        channel = _Channel(body["id"], body["connectUri"], expires_at, trio.current_time())
        self._count("channels_created")
        log.info("channel %s created (%d topics)", channel.id, len(slot.topics))
        await self._subscribe(slot, channel)
        return channel

    async def _subscribe(self, slot: _Slot, channel: _Channel) -> None:
        """Bring the channel's subscriptions to the slot's topics: ``POST`` what is new, or,
        when a topic must go, ``PUT`` the whole list (the API removes no single topic). This
        task is the channel's only writer, so ``PUT`` cannot race another change."""
        wanted = set(slot.topics)
        path = f"/api/v2/notifications/channels/{channel.id}/subscriptions"
        if channel.subscribed <= wanted:
            added = sorted(wanted - channel.subscribed)
            if not added:
                return
            response = await self._request("POST", path, [{"id": t} for t in added])
        else:
            response = await self._request("PUT", path, [{"id": t} for t in sorted(wanted)])
        if response.status_code == 404:
            raise _ChannelLost(f"channel {channel.id} vanished while subscribing")
        rejected = [
            e
            for e in response.json().get("entities", [])
            if isinstance(e, dict) and e.get("rejectionReason")
        ]
        if rejected:
            first = rejected[0]
            missing = ", ".join(first.get("missingPermissions") or []) or "unknown"
            raise SourceError(
                f"Genesys rejected {len(rejected)} subscription(s), e.g. {first.get('id')}: "
                f"{first.get('rejectionReason')} (missing permissions: {missing}). The OAuth "
                f"client's role needs {TRANSCRIPTION_PERMISSION}"
            )
        channel.subscribed = wanted

    async def _keep_subscriptions(self, slot: _Slot, channel: _Channel) -> None:
        while True:
            await slot.changed.wait()
            await self._subscribe(slot, channel)

    # --- sockets ----------------------------------------------------------------------

    async def _socket_loop(self, slot: _Slot, channel: _Channel, nursery: trio.Nursery) -> None:
        attempt = 0
        while True:
            outcome = "closed"
            try:
                async with trio_websocket.open_websocket_url(
                    channel.connect_uri,
                    message_queue_size=self.settings.message_queue_size,
                    max_message_size=self.settings.max_message_size,
                    connect_timeout=self.settings.timeout_s,
                    disconnect_timeout=5,
                ) as ws:
                    self._count("connects")
                    channel.connected.set()
                    slot.gaps.live(slot.conversations())
                    attempt = 0
                    outcome = await self._read(ws, slot, channel, nursery)
            except trio_websocket.ConnectionRejected as exc:
                log.warning(
                    "handshake on channel %s rejected: HTTP %d", channel.id, exc.status_code
                )
                if exc.status_code in (401, 403):
                    self.tokens.invalidate()
                outcome = "gone"
            except SOCKET_LOST as exc:
                log.warning("socket on channel %s lost: %s", channel.id, _describe(exc))
            if outcome == "replaced":
                return
            slot.gaps.lost()
            if outcome != "gone" and await self._channel_exists(channel):
                delay = self.settings.backoff.delay(attempt, self._rng)
                self._count("reconnects")
                log.info("reconnecting to channel %s in %.2f s", channel.id, delay)
                await trio.sleep(delay)
                attempt += 1
                continue
            self._count("channels_gone")
            log.warning("channel %s is gone; creating a new one and resubscribing", channel.id)
            assert slot.nursery is not None
            slot.nursery.start_soon(self._start_channel, slot, None)
            channel.scope.cancel()
            return

    async def _channel_exists(self, channel: _Channel) -> bool:
        try:
            response = await self._request("HEAD", f"/api/v2/notifications/channels/{channel.id}")
        except SourceError:
            return False
        return response.status_code != 404

    async def _wait_for_message(
        self,
        ws: trio_websocket.WebSocketConnection,
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
            return await ws.get_message()
        if superseded_at is not None:
            return None
        log.warning(
            "no message on channel %s for %.0f s; sending a ping",
            channel.id,
            self.settings.heartbeat_timeout_s,
        )
        await ws.send_message(PING)
        with trio.move_on_after(self.settings.pong_timeout_s):
            return await ws.get_message()
        self._count("dead_sockets")
        log.warning(
            "no pong on channel %s within %.0f s; reconnecting",
            channel.id,
            self.settings.pong_timeout_s,
        )
        return None

    async def _read(
        self,
        ws: trio_websocket.WebSocketConnection,
        slot: _Slot,
        channel: _Channel,
        nursery: trio.Nursery,
    ) -> str:
        """Read until the socket ends; say why: ``closed``, ``dead``, ``gone``, ``replaced``."""
        superseded_at: float | None = None
        emit = self._emit
        assert emit is not None, "run() sets it before any socket opens"
        try:
            while True:
                message = queued_message(ws)
                if message is None:
                    message = await self._wait_for_message(ws, channel, superseded_at)
                    if message is None:
                        return "replaced" if superseded_at is not None else "dead"
                event = parse_notification(message)
                if isinstance(event, Transcription):
                    await emit(event, message)
                    if event.session_ended:
                        self.remove_conversation(event.conversation_id)
                elif isinstance(event, Malformed):
                    await emit(event, message)
                elif isinstance(event, SocketClosing):
                    self._count("socket_closings")
                    log.info("socket_closing on channel %s: opening a new socket first", channel.id)
                    superseded_at = trio.current_time()
                    nursery.start_soon(self._socket_loop, slot, channel, nursery)
                elif isinstance(event, ChannelGone):
                    log.warning("channel %s reported 404: %s", channel.id, event.message)
                    return "gone"
                elif isinstance(event, QueueConversation):
                    if transcription_topic(event.conversation_id) not in slot.topics:
                        self._count("discovered")
                        log.info(
                            "queue %s: conversation %s appeared; subscribing",
                            event.queue_id,
                            event.conversation_id,
                        )
                    self.add_conversation(event.conversation_id)
                elif isinstance(event, SubscriptionReply) and not event.ok:
                    log.warning("subscription request failed: %s %s", event.code, event.message)
                elif isinstance(event, SystemNotice):
                    log.warning(
                        "system notice %s: %s %s", event.topic, event.reason, event.message or ""
                    )
                elif isinstance(event, Ignored):
                    self._count("ignored")
        except trio_websocket.ConnectionClosed as exc:
            log.info("channel %s socket closed: %s", channel.id, _describe(exc))
            return "replaced" if superseded_at is not None else "closed"
        finally:
            with trio.move_on_after(1, shield=True):
                await ws.aclose(1001, "going away")
            await close_transport(ws)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio_websocket.ConnectionClosed) and exc.reason is not None:
        return f"close code {exc.reason.code} ({exc.reason.name}) {exc.reason.reason or ''}"
    return f"{type(exc).__name__}: {exc}"
