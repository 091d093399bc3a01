"""The reference design's fragment stream: one JSON fragment per WebSocket frame.

Connects to a configured URL with ``Authorization: Bearer <token>``, reads fragments and hands
each to ``emit``; what follows the end of a socket is ``channels.py``'s :data:`AFTER_STREAM`
(a 401 handshake renews the token; every end reconnects, with capped, fully jittered backoff,
by the retry driver of ``retrying.py``), and each gap is logged and counted. The socket itself
is ``_socket.py``'s.
"""

from __future__ import annotations

import logging
import random
import urllib.parse
from dataclasses import dataclass

import trio

from ..auth import TokenManager
from ..channels import AFTER_STREAM, SocketEnd, Step
from ..logthrottle import Repeats
from ..model import Merge
from ..redaction import redact_url
from ..retry import Action, Backoff, Decision
from ..retrying import Tries, retrying, unexpected
from ..wire.fragments import parse_fragment
from . import Emit, Gap, GapLog, SourceHealth
from ._socket import Socket, SocketOptions, read_socket

log = logging.getLogger("trio_transcripts.source.fragments")


@dataclass(frozen=True)
class FragmentStreamSettings:
    url: str
    conversation_id: str | None = None
    socket: SocketOptions = SocketOptions(message_queue_size=4)
    backoff: Backoff = Backoff()

    def default_conversation(self) -> str:
        """For fragments without ``conversationId``: the setting, the URL's, or ``unknown``."""
        if self.conversation_id:
            return self.conversation_id
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)
        return (query.get("conversationId") or ["unknown"])[0]


class FragmentStreamSource:
    """Implements :class:`~trio_transcripts.sources.Source` for the fragment stream."""

    kind = "fragments"
    merge = Merge.APPEND

    def __init__(
        self,
        settings: FragmentStreamSettings,
        tokens: TokenManager | None,
        *,
        rng: random.Random | None = None,
        repeats: Repeats | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.gap_log = GapLog("fragment stream")
        self.connects = 0
        self._replaced = 0
        self._connected = False
        self._rng = rng or random.Random()
        self._repeats = repeats or Repeats()

    @property
    def gaps(self) -> list[Gap]:
        return list(self.gap_log.gaps)

    def waiting_for(self) -> str | None:
        return None if self.connects else f"the fragment stream at {redact_url(self.settings.url)}"

    def health(self, now: float) -> SourceHealth:
        # The stream sends no heartbeats: a quiet call is not a dead socket.
        return SourceHealth(sockets=1, live=int(self._connected), topics=1)

    def reconnects(self) -> dict[str, int]:
        return {"reconnect": self._replaced}

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        conversation = self.settings.default_conversation()
        task_status.started()
        tries = Tries(self.settings.backoff, self._rng)

        def opened() -> None:
            self.connects += 1
            self._connected = True
            self.gap_log.live((conversation,))
            tries.reset()

        async def read(socket: Socket) -> SocketEnd:
            while True:
                frame = socket.queued()
                if frame is None:
                    frame = await socket.get_message()
                await emit(parse_fragment(frame, conversation_id=conversation), frame)

        async def once() -> tuple[Decision, None]:
            token = await self.tokens.get() if self.tokens is not None else None
            headers = [(b"Authorization", f"Bearer {token}".encode())] if token else []
            end = await read_socket(
                self.settings.url,
                self.settings.socket,
                read,
                where="fragment stream",
                repeats=self._repeats,
                headers=headers,
                opened=opened,
            )
            self._connected = False
            self._replaced += 1
            step = AFTER_STREAM[end]
            if step is Step.RENEW_AND_RECONNECT and self.tokens is not None:
                self.tokens.invalidate(token)
            self.gap_log.lost()
            return Decision(Action.RETRY, step.value), None

        def say(_decision: Decision, _retry: int, delay: float) -> None:
            log.info("reconnecting to the fragment stream in %.2f s", delay)

        try:
            await retrying(once, tries, say=say, fail=unexpected, until=())
        finally:
            self.gap_log.stopped((conversation,))
