"""A load generator for ``bench``: every frame rendered before the clock starts.

The simulator (``testing/simulator``) builds each frame as it sends it, through the WebSocket
library, and so spends a core of its own: a client reading from it measures the simulator.
This generator renders the same calls (:func:`~.simulator.calls.stream_frames`, the same
seeds, the same truth) once, encodes each as a server WebSocket frame (unmasked: a header and
the payload, RFC 6455 section 5.2), concatenates them, and writes that buffer to each socket in
large slices, as fast as the client reads. What it costs per frame is then one ``memoryview``
slice per ~1 MiB, so whatever reads from it is the limit. At ``--rate`` each frame goes out
on its own at its due time, as a contact centre's calls send them (issue 23: sending the
frames due every few ms batched the reader's wake-ups that real traffic does not).

It answers the same REST calls as the simulator (tokens, channels, subscriptions: the
simulator's own :class:`~.simulator.api.SimApi`), takes the WebSocket handshake itself
(``/channels/{id}`` once the channel has a subscription, and the reference design's fragment
stream), replies to a close frame and to ``{"message":"ping"}``, and serves each socket the
whole stream once. When it stops (SIGTERM), it writes one truth file per socket it served,
``truth-{n}.jsonl`` in ``--truth-dir`` (sockets numbered from 0 in the order they opened): one
line per final it sent, with ``sentAt``, the epoch ms at which the slice holding it was handed
to the socket. No faults: those stay in the simulator.

Run: ``python -m trio_transcripts.testing.loadgen --calls 1000 --utterances 80`` prints one
JSON line (URLs, conversation ids, frame and final counts) once the stream is rendered.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import hashlib
import json
import os
import signal
import struct
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from .simulator.api import SimApi
from .simulator.calls import make_calls, stream_frames, truth_record
from .simulator.config import SimConfig, SimStats
from .simulator.sockets import FRAGMENT_PATH, PONG, endpoints, serve_http

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SLICE_BYTES = 1 << 20
"""Unpaced, the stream goes out in slices of about this size (whole frames)."""


def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unfragmented, unmasked server frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


CLOSE_NORMAL = server_frame(struct.pack("!H", 1000), opcode=0x8)


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + WEBSOCKET_GUID).digest()).decode()


@dataclass(frozen=True)
class Rendered:
    """The whole stream, ready to write: ``ends[i]`` is the byte offset after frame ``i``."""

    stream: bytes
    ends: list[int]
    finals: dict[int, dict[str, object]]  # frame index -> its truth record
    conversation_ids: list[str]

    @property
    def frames(self) -> int:
        return len(self.ends)


def malformed_frames(count: int, valid: Sequence[str]) -> list[str]:
    """``count`` distinct frames no parser takes: by turns a valid frame cut short (the
    ``i``-th of ``valid``, cycling, cut at a different length each time) and a text that is
    not JSON at all (what a proxy's error page looks like), each numbered so none repeats."""
    frames = []
    for i in range(count):
        if i % 2:
            frames.append(f"<html><body>502 Bad Gateway (upstream {i})</body></html>")
        else:
            text = valid[i % len(valid)]
            frames.append(f'{{"n":{i},' + text[1 : max(2, len(text) - 1 - i % 64)])
    return frames


def render(config: SimConfig, malformed: int = 0) -> Rendered:
    """Every frame of ``config``'s calls, encoded and concatenated (pure, deterministic);
    with ``malformed``, that many :func:`malformed_frames` first (``bench --malformed``)."""
    epoch = config.epoch_ms if config.epoch_ms is not None else int(time.time() * 1000)
    calls = make_calls(config.calls, config.utterances, config.seed, epoch)
    starts = {c.conversation_id: c.session_start_ms for c in calls}
    parts: list[bytes] = []
    ends: list[int] = []
    finals: dict[int, dict[str, object]] = {}
    offset = 0
    frames = list(stream_frames(calls, config.source, config.seed))
    texts = [f.text for f in frames]
    for index, text in enumerate(malformed_frames(malformed, texts[:1000] or ["{}"]) + texts):
        encoded = server_frame(text.encode())
        parts.append(encoded)
        offset += len(encoded)
        ends.append(offset)
        if index >= malformed:
            frame = frames[index - malformed]
            for u in frame.finals:  # one at most: the generator's calls are not batched
                finals[index] = truth_record(u, starts[frame.conversation_id])
    return Rendered(b"".join(parts), ends, finals, [c.conversation_id for c in calls])


def upgrade_request(url: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A client's WebSocket handshake for ``url`` (``ws://`` only), for raw socket readers."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    ).encode()
    return request + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"


class FrameCounter:
    """Counts whole server frames in a byte stream fed in arbitrary pieces (pure).

    What the bench's raw reader does instead of decoding: headers are read, payloads
    skipped. ``closed`` is set by a close frame.
    """

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.closed = False
        self._buffer = b""
        self._skip = 0

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        if self._skip >= len(data):
            self._skip -= len(data)
            return
        buffer = self._buffer + data[self._skip :]
        self._skip = 0
        at = 0
        while len(buffer) - at >= 2:
            opcode, size = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
            head = 2
            if size == 126:
                head = 4
                if len(buffer) - at < head:
                    break
                (size,) = struct.unpack_from("!H", buffer, at + 2)
            elif size == 127:
                head = 10
                if len(buffer) - at < head:
                    break
                (size,) = struct.unpack_from("!Q", buffer, at + 2)
            self.frames += opcode != 0x8
            self.closed = self.closed or opcode == 0x8
            end = at + head + size
            if end > len(buffer):
                self._skip = end - len(buffer)
                at = len(buffer)
                break
            at = end
        self._buffer = buffer[at:]


@dataclass
class _Served:
    """One socket's sends: ``sent[k]`` frames had gone out by epoch ms ``at[k]``."""

    sent: list[int] = field(default_factory=list)
    at: list[float] = field(default_factory=list)


class LoadGenerator:
    def __init__(self, config: SimConfig, rendered: Rendered) -> None:
        self.config = config
        self.rendered = rendered
        self.stats = SimStats()
        self.subscribed = trio.Event()
        self.api = SimApi(config, self.stats, on_change=self._changed)
        self.served: list[_Served] = []
        self.port = 0

    def _changed(self) -> None:
        if any(c.topics for c in self.api.channels.values()):
            self.subscribed.set()

    def info(self) -> dict[str, object]:
        return {
            **endpoints(self.config.host, self.port),
            "conversation_ids": self.rendered.conversation_ids,
            "client_id": self.config.client_id,
            "frames": self.rendered.frames,
            "finals": len(self.rendered.finals),
            "stream_bytes": len(self.rendered.stream),
        }

    async def serve(self, *, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        self.port = listeners[0].socket.getsockname()[1]
        self.api.websocket_base = f"ws://{self.config.host}:{self.port}"
        task_status.started(self.info())
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        def handle(
            method: str, target: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, bytes, list[tuple[str, str]]]:
            return self.api.handle(method, target, headers, body, trio.current_time())

        await serve_http(stream, handle, self._websocket)

    async def _websocket(self, stream: trio.SocketStream, head: bytes) -> None:
        request, _, rest = head.partition(b"\r\n\r\n")
        lines = request.decode("latin-1").split("\r\n")
        path = urllib.parse.urlsplit(lines[0].split(" ")[1]).path
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:])
        )
        now = trio.current_time()
        if path.startswith("/channels/"):
            allowed = path.split("/")[2] in self.api.channels
        else:
            allowed = path == FRAGMENT_PATH and self.api.bearer(headers, now) is not None
        if not allowed:
            await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await stream.aclose()
            return
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: "
            + accept_key(headers.get("sec-websocket-key", "")).encode()
            + b"\r\n\r\n"
        )
        served = _Served()
        self.served.append(served)
        lock = trio.Lock()
        finished = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._answer_client, stream, lock, rest, nursery.cancel_scope)
                if path.startswith("/channels/"):
                    await self.subscribed.wait()
                await self._send_stream(stream, lock, served)
                finished = True
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away mid-stream: the next socket gets the whole stream
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(trio.BrokenResourceError):
                if finished:  # a close reply only between frames, never inside one
                    await stream.send_all(CLOSE_NORMAL)
                await stream.aclose()

    async def _send_stream(
        self, stream: trio.SocketStream, lock: trio.Lock, served: _Served
    ) -> None:
        rendered = self.rendered
        view = memoryview(rendered.stream)
        ends = rendered.ends
        sent = 0
        started = trio.current_time()
        while sent < len(ends):
            if self.config.rate > 0:  # one frame a write, at its own time
                await trio.sleep_until(started + sent / self.config.rate)
                due = sent + 1
            else:
                start = ends[sent - 1] if sent else 0
                due = max(sent + 1, bisect.bisect_right(ends, start + SLICE_BYTES))
            if due <= sent:
                continue
            served.sent.append(due)
            served.at.append(time.time() * 1000)
            async with lock:
                await stream.send_all(view[ends[sent - 1] if sent else 0 : ends[due - 1]])
            sent = due

    async def _answer_client(
        self, stream: trio.SocketStream, lock: trio.Lock, pending: bytes, done: trio.CancelScope
    ) -> None:
        """Read the client's masked frames: a close (or the end of the connection) ends the
        socket, an application ping gets the ``channel.metadata`` pong, the rest is dropped.
        The whole stream sent, the close is answered on the way out (``_websocket``)."""
        buffer = bytearray(pending)
        while True:
            for opcode, payload in _client_frames(buffer):
                if opcode == 0x8:
                    done.cancel()
                    return
                async with lock:
                    if opcode == 0x9:
                        await stream.send_all(server_frame(payload, opcode=0xA))
                    elif opcode == 0x1 and b"ping" in payload:
                        await stream.send_all(server_frame(PONG.encode()))
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                done.cancel()
                return
            buffer += data

    def write_truth(self, directory: Path) -> None:
        """One file per socket served: each final sent on it, with when."""
        finals = self.rendered.finals
        for n, served in enumerate(self.served):
            with open(directory / f"truth-{n}.jsonl", "w", encoding="utf-8") as out:
                sent_before = 0
                for sent, at in zip(served.sent, served.at, strict=True):
                    for index in range(sent_before, sent):
                        record = finals.get(index)
                        if record is not None:
                            out.write(json.dumps({**record, "sentAt": at}) + "\n")
                    sent_before = sent


def _client_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Whole masked client frames taken off the front of ``buffer`` (opcode, payload)."""
    frames = []
    while len(buffer) >= 6:
        opcode, size = buffer[0] & 0x0F, buffer[1] & 0x7F
        head = 2
        if size == 126:
            head, size = 4, struct.unpack_from("!H", buffer, 2)[0]
        elif size == 127:
            head, size = 10, struct.unpack_from("!Q", buffer, 2)[0]
        end = head + 4 + size
        if len(buffer) < end:
            break
        mask = buffer[head : head + 4]
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buffer[head + 4 : end]))
        frames.append((opcode, payload))
        del buffer[:end]
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m trio_transcripts.testing.loadgen")
    parser.add_argument("--source", choices=["notifications", "fragments"], default="notifications")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--utterances", type=int, default=80)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="frames/s; 0: as fast as read")
    parser.add_argument("--truth-dir", type=Path, default=None)
    parser.add_argument("--malformed", type=int, default=0, help="bad frames sent first")
    args = parser.parse_args()
    config = SimConfig(
        calls=args.calls,
        utterances=args.utterances,
        seed=args.seed,
        rate=args.rate,
        source=args.source,
    )
    rendered = render(config, args.malformed)
    generator = LoadGenerator(config, rendered)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(generator.serve)
            print(json.dumps(info), flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(serve)
    if args.truth_dir is not None:
        generator.write_truth(args.truth_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
