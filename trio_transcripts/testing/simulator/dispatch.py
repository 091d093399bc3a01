"""The simulator's dispatcher: the frames of every call, paced, with the stream's faults.

One task sends the frames of all calls in an interleaved order, each only to the sockets
subscribed to its topic (``channel.metadata`` and ``v2.system.*`` need none). A frame that no
socket can take waits (up to ``subscribe_wait_s``, then it is skipped and logged); a frame a
socket failed to take (dropped, too slow) is sent again on the next one. So every final in the
truth file was sent at least once. The platform itself does neither: with the
``no_redelivery`` fault, as there, such a frame is lost at once, and a lost final's truth
record says so. A truth record is written when a final first goes out (or is lost).

Faults in the stream: a final sent twice, an invalid-JSON frame or a 2 MiB frame every N
frames, a drop every N frames on a socket, and ``v2.system.socket_closing`` after N frames.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import trio

from .calls import Call, SimFrame, SimUtterance, stream_frames, truth_record
from .config import SimConfig, SimStats
from .sockets import SocketHub

log = logging.getLogger("trio_transcripts.simulator")

MALFORMED = '{"topicName": "v2.conversations.x'
OVERSIZED = json.dumps({"topicName": "channel.metadata", "eventBody": {"pad": "x" * (2 << 20)}})
SOCKET_CLOSING = json.dumps(
    {
        "topicName": "v2.system.socket_closing",
        "eventBody": {
            "message": "Maintenance: reconnect within one minute",
            "systemTopicType": None,
        },
    }
)


class Dispatcher:
    def __init__(
        self, config: SimConfig, stats: SimStats, calls: list[Call], hub: SocketHub
    ) -> None:
        self.config = config
        self.stats = stats
        self.calls = calls
        self.hub = hub
        self.faults = config.faults
        self.truth: list[dict[str, object]] = []
        self.truth_file: TextIO | None = None
        self.done = trio.Event()
        self._sent_finals: set[tuple[str, str]] = set()

    def frames(self) -> Iterator[SimFrame]:
        """Every frame to send, in order (a replay file's, or the calls' interleaved)."""
        if self.config.replay_path is not None:
            return replay_frames(self.config.replay_path)
        config = self.config
        return stream_frames(
            self.calls,
            config.source,
            config.seed,
            config.queue_id,
            by_time=config.speech_time,
            batch=config.batch_transcripts,
        )

    async def run(self, nursery: trio.Nursery) -> None:
        interval = 1.0 / self.config.rate if self.config.rate > 0 else 0.0
        next_at = trio.current_time()
        sent = 0
        faults = self.faults
        for sent_frames, frame in enumerate(self.frames()):
            if sent_frames == 0:
                while len(self.hub.targets(frame)) < self.config.start_after_sockets:
                    await self.hub.wait_changed()
            if self.config.speech_time:
                await trio.sleep(max(0.0, frame.at_ms / 1000 - time.time()))
            elif interval:
                next_at = max(next_at + interval, trio.current_time() - 1.0)
                await trio.sleep_until(next_at)
            delivered = await self.deliver(frame)
            if frame.session_end:  # sent or lost: the post-call transcript is on its way
                self.hub.api.postcall.ended(frame.conversation_id, trio.current_time(), frame.at_ms)
            if not delivered:
                continue
            sent += 1
            if frame.finals and faults.duplicate_finals:
                await self.deliver(frame)
            if faults.malformed_every and sent % faults.malformed_every == 0:
                await self.deliver(SimFrame("", MALFORMED, ""))
            if faults.oversized_every and sent % faults.oversized_every == 0:
                await self.deliver(SimFrame("", OVERSIZED, ""))
            if faults.socket_closing_after and sent == faults.socket_closing_after:
                nursery.start_soon(self._socket_closing)
        self.done.set()

    async def deliver(self, frame: SimFrame) -> bool:
        """Send ``frame`` to every socket that should get it; wait, resend, or skip."""
        deadline = trio.current_time() + self.config.subscribe_wait_s
        while True:
            targets = self.hub.targets(frame)
            if not targets and self.faults.no_redelivery:
                return self._lost(frame)
            if not targets:
                with trio.move_on_at(deadline):
                    await self.hub.wait_changed()
                    continue
                self.stats.frames_skipped += 1
                log.warning(
                    "no subscribed socket for %s within %.0f s; frame skipped",
                    frame.topic or "the fragment stream",
                    self.config.subscribe_wait_s,
                )
                return False
            delivered = False
            for sock in targets:
                if await self.hub.send(sock, frame.text):
                    delivered = True
                    sock.frames += 1
                    if self.faults.drop_every and sock.frames % self.faults.drop_every == 0:
                        await self.hub.drop(sock)
            if delivered:
                self.stats.frames_sent += 1
                self._record_finals(frame)
                return True
            if self.faults.no_redelivery:
                return self._lost(frame)
            self.stats.resent += 1

    def _lost(self, frame: SimFrame) -> bool:
        """``no_redelivery``: the frame is gone, as the platform's would be. A final's truth
        record says ``"lost": true``: only a backfill can store that utterance."""
        self.stats.frames_lost += 1
        self._record_finals(frame, lost=True)
        return False

    def _record_finals(self, frame: SimFrame, *, lost: bool = False) -> None:
        for u in frame.finals:
            self._record_final(u, lost=lost)

    def _record_final(self, u: SimUtterance, *, lost: bool) -> None:
        key = (u.conversation_id, u.utterance_id)
        if key in self._sent_finals:
            return
        self._sent_finals.add(key)
        self.stats.finals_sent += 1
        call = next(c for c in self.calls if c.conversation_id == u.conversation_id)
        record = truth_record(u, call.session_start_ms)
        record["sentAt"] = time.time() * 1000  # for latency: final sent -> point acknowledged
        if lost:
            record["lost"] = True
        self.truth.append(record)
        if self.truth_file is not None:
            self.truth_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.truth_file.flush()

    async def _socket_closing(self) -> None:
        sockets = list(self.hub.channel_sockets.values())
        for sock in sockets:
            await self.hub.send(sock, SOCKET_CLOSING)
        await trio.sleep(self.faults.socket_closing_grace_s)
        for sock in sockets:
            if not sock.dead:
                await self.hub.retire(sock)


def replay_frames(path: Path) -> Iterator[SimFrame]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\n")
            if not text:
                continue
            topic = ""
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):  # sent as it is: the test's bad frame
                value = None
            if isinstance(value, dict) and isinstance(value.get("topicName"), str):
                topic = value["topicName"]
            conversation = topic.split(".")[2] if topic.startswith("v2.conversations.") else ""
            yield SimFrame(topic, text, conversation)
