"""Which followed conversations went silent: a transcription session that ended unseen. Pure.

The platform sends a transcript-less ``SESSION_ONGOING`` message when a transcription session
starts and every 5 minutes while it lasts, whatever is said (developer.genesys.cloud,
"Transcription Notifications", "Flow of Messages"). So a conversation heard from before and
then silent for longer than that, plus a margin for the platform's batching, has ended without
``SESSION_ENDED``: a mid-call failure, or its end was lost in a gap. The source then flushes
what is pending of it as partials and unsubscribes (``sources/notifications.py``).

Times are the caller's clock, in milliseconds. A conversation is watched from when its topic
is listened to (:meth:`Liveness.watch`), heard or not: one never heard for as long is let go
too, and the backfill asks analytics whether and when it ended (``coverage.py``).
"""

from __future__ import annotations

KEEPALIVE_MS = 300_000
"""The platform's keepalive interval for a transcription session."""
MARGIN_MS = 60_000
"""How much later than a keepalive is due a conversation is called silent."""


class Liveness:
    """When each watched conversation was last heard, oldest first."""

    def __init__(self, keepalive_ms: int = KEEPALIVE_MS, margin_ms: int = MARGIN_MS) -> None:
        if keepalive_ms <= 0 or margin_ms < 0:
            raise ValueError("keepalive_ms must be > 0 and margin_ms >= 0")
        self.silent_after_ms = keepalive_ms + margin_ms
        # Re-inserted on each message, so the first entry is the one heard from longest ago.
        self._heard: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._heard)

    def heard(self, conversation_id: str, now_ms: int) -> None:
        """A message of the conversation arrived (any: a keepalive counts)."""
        self._heard.pop(conversation_id, None)
        self._heard[conversation_id] = now_ms

    def watch(self, conversation_id: str, now_ms: int) -> None:
        """Listening to the conversation began: watched from now unless watched already."""
        if conversation_id not in self._heard:
            self._heard[conversation_id] = now_ms

    def ended(self, conversation_id: str) -> None:
        """The session ended (``SESSION_ENDED``) or is followed no more: stop watching it."""
        self._heard.pop(conversation_id, None)

    def silent(self, now_ms: int) -> list[tuple[str, int]]:
        """The conversations silent past the limit, with how long, no longer watched."""
        found: list[tuple[str, int]] = []
        for conversation_id, at in self._heard.items():
            if now_ms - at <= self.silent_after_ms:
                break
            found.append((conversation_id, now_ms - at))
        for conversation_id, _ in found:
            del self._heard[conversation_id]
        return found
