"""The Genesys Cloud simulator: one Trio server, one port, the real wire formats.

Endpoints (all on one port):

* ``POST /oauth/token``: client credentials (Basic auth checked; others get 401
  ``invalid_client``), ``expires_in`` configurable.
* ``POST /api/v2/notifications/channels``, ``HEAD .../channels/{id}``,
  ``GET|POST|PUT|DELETE .../channels/{id}/subscriptions``: Bearer token required.
* ``GET /channels/{id}`` (WebSocket): the channel's ``connectUri``. A second socket on the same
  channel replaces the first, which is closed (1000) after what was sent to it, as on the
  platform. ``{"message":"ping"}`` gets the ``channel.metadata`` pong; heartbeats every 30 s.
* ``GET /api/v2/media/conversations/transcripts`` (WebSocket, Bearer): the reference design's
  fragment stream.

Delivery: one dispatcher sends the frames of all calls in an interleaved order, each only to
sockets subscribed to its topic (``channel.metadata`` and ``v2.system.*`` need none). A frame
that no socket can take waits (up to ``subscribe_wait_s``, then it is skipped and logged); a
frame a socket failed to take (dropped, too slow) is sent again on the next one. So every final
in the truth file was sent at least once; the platform itself would not resend, and the worker
logs and counts each gap it sees either way. A truth record is written when a final first goes
out.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import random
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import h11
import trio
import trio_websocket

from .calls import (
    Call,
    SimFrame,
    fragment_frames,
    genesys_frames,
    interleave,
    iso_ms,
    make_calls,
    truth_record,
)

log = logging.getLogger("trio_transcripts.simulator")

DEFAULT_CLIENT_ID = "sim-client"
DEFAULT_CLIENT_SECRET = "sim-secret"
FRAGMENT_PATH = "/api/v2/media/conversations/transcripts"
MAX_TOPICS = 1000


@dataclass
class Faults:
    handshake_401: int = 0  # reject the first N WebSocket handshakes with 401
    token_429: int = 0  # answer the first N token requests 429 (Retry-After: 1)
    token_500: int = 0  # answer the next N token requests 500
    drop_every: int = 0  # drop a socket (no close frame) after every N frames sent on it
    socket_closing_after: int = 0  # send v2.system.socket_closing after N frames, once
    socket_closing_grace_s: float = 60.0
    silent: bool = False  # no heartbeats and no pongs
    slow_reader_s: float = 0.0  # drop a socket whose send blocks longer than this
    malformed_every: int = 0  # an invalid-JSON frame after every N frames
    oversized_every: int = 0  # a 2 MiB frame after every N frames
    duplicate_finals: bool = False  # every final is sent twice
    deny_transcription: bool = False  # transcription topics rejected: missing permission


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    calls: int = 3
    utterances: int = 6
    seed: int = 0
    rate: float = 0.0  # frames per second across all calls; 0: as fast as sockets take them
    source: str = "notifications"  # or "fragments"
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    token_lifetime_s: int = 86_400
    channel_ttl_s: float = 86_400.0
    heartbeat_s: float = 30.0
    subscribe_wait_s: float = 10.0
    queue_id: str | None = None
    epoch_ms: int | None = None
    truth_path: Path | None = None
    replay_path: Path | None = None
    exit_when_done: bool = False
    faults: Faults = field(default_factory=Faults)


@dataclass
class SimStats:
    frames_sent: int = 0
    finals_sent: int = 0
    frames_skipped: int = 0
    resent: int = 0
    drops: int = 0
    handshakes: int = 0
    rejected_handshakes: int = 0
    tokens_issued: int = 0
    channels_created: int = 0
    pings: int = 0


@dataclass
class _Socket:
    ws: trio_websocket.WebSocketConnection
    raw: _ReplayStream
    frames: int = 0
    dead: bool = False


@dataclass
class _Channel:
    id: str
    token: str
    expires_at: float
    topics: set[str] = field(default_factory=set)
    socket: _Socket | None = None


@dataclass
class _FragmentClient:
    socket: _Socket
    conversation_id: str | None


class _ReplayStream(trio.abc.HalfCloseableStream):
    """Gives trio-websocket the bytes h11 already read, then the socket itself."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self.stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            await trio.lowlevel.checkpoint()
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


class Simulator:
    """Run with ``await nursery.start(sim.run)``; the start value is :meth:`info`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = SimStats()
        self.truth: list[dict[str, object]] = []
        self.done = trio.Event()
        self.port = 0
        epoch = config.epoch_ms if config.epoch_ms is not None else int(time.time() * 1000)
        self.calls: list[Call] = make_calls(config.calls, config.utterances, config.seed, epoch)
        self._tokens: dict[str, float] = {}
        self._channels: dict[str, _Channel] = {}
        self._fragment_clients: list[_FragmentClient] = []
        self._changed = trio.Event()
        self._faults = config.faults
        self._token_requests = 0
        self._truth_file: TextIO | None = None
        self._sent_finals: set[tuple[str, str]] = set()
        self._closing_sent = False

    # --- public -------------------------------------------------------------------------

    def info(self) -> dict[str, object]:
        base = f"http://{self.config.host}:{self.port}"
        return {
            "login_url": base,
            "api_url": base,
            "fragment_stream_url": f"ws://{self.config.host}:{self.port}{FRAGMENT_PATH}",
            "conversation_ids": [c.conversation_id for c in self.calls],
            "client_id": self.config.client_id,
        }

    async def run(
        self, *, task_status: trio.TaskStatus[dict[str, object]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.config.truth_path is not None:
            path = self.config.truth_path
            self._truth_file = await trio.to_thread.run_sync(
                lambda: open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
            )
        try:
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(
                    functools.partial(trio.serve_tcp, host=self.config.host),
                    self._serve_connection,
                    self.config.port,
                )
                self.port = listeners[0].socket.getsockname()[1]
                nursery.start_soon(self._dispatch, nursery)
                nursery.start_soon(self._expire_channels)
                task_status.started(self.info())
                if self.config.exit_when_done:
                    await self.done.wait()
                    await self._close_all()
                    nursery.cancel_scope.cancel()
        finally:
            if self._truth_file is not None:
                self._truth_file.close()

    # --- HTTP ---------------------------------------------------------------------------

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        received = bytearray()
        first = True
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    if first:
                        received += data
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    continue
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                target = event.target.decode()
                if headers.get("upgrade", "").lower() == "websocket":
                    if first:
                        await self._serve_websocket(stream, bytes(received))
                    return
                first = False
                body = bytearray()
                while True:
                    part = conn.next_event()
                    if part is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(part, h11.Data):
                        body += part.data
                    elif isinstance(part, h11.EndOfMessage):
                        break
                    else:
                        return
                status, payload, extra = self._handle_http(
                    event.method.decode(), target, headers, bytes(body)
                )
                out_headers = [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(payload))),
                    *extra,
                ]
                data = conn.send(h11.Response(status_code=status, headers=out_headers)) or b""
                if event.method != b"HEAD":
                    data += conn.send(h11.Data(data=payload)) or b""
                data += conn.send(h11.EndOfMessage()) or b""
                await stream.send_all(data)
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await stream.aclose()

    def _bearer(self, headers: dict[str, str]) -> str | None:
        value = headers.get("authorization", "")
        if not value.lower().startswith("bearer "):
            return None
        token = value[7:].strip()
        expires = self._tokens.get(token)
        return token if expires is not None and trio.current_time() < expires else None

    def _handle_http(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        path = urllib.parse.urlsplit(target).path
        if path == "/oauth/token" and method == "POST":
            return self._token(headers, body)
        if not path.startswith("/api/v2/notifications/channels"):
            return _json(404, {"message": f"no route {method} {path}", "code": "not.found"})
        token = self._bearer(headers)
        if token is None:
            return _json(401, {"message": "authentication required", "code": "bad.credentials"})
        parts = path.rstrip("/").split("/")[5:]  # after /api/v2/notifications/channels
        if not parts:
            if method == "POST":
                return self._create_channel(token)
            return _json(200, {"entities": [{"id": c.id} for c in self._channels.values()]})
        channel = self._channels.get(parts[0])
        if channel is None:
            return _json(404, {"message": f"channel {parts[0]} not found", "code": "not.found"})
        if len(parts) == 1 and method == "HEAD":
            return 200, b"", []
        if len(parts) == 2 and parts[1] == "subscriptions":
            return self._subscriptions(channel, method, body)
        return _json(404, {"message": f"no route {method} {path}", "code": "not.found"})

    def _token(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        self._token_requests += 1
        if self._token_requests <= self._faults.token_429:
            return _json(429, {"message": "rate limit exceeded"}, [("Retry-After", "1")])
        if self._token_requests <= self._faults.token_429 + self._faults.token_500:
            return _json(500, {"message": "internal server error"})
        expected = base64.b64encode(
            f"{self.config.client_id}:{self.config.client_secret}".encode()
        ).decode()
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        if headers.get("authorization", "") != f"Basic {expected}":
            return _json(
                401, {"error": "invalid_client", "description": "client authentication failed"}
            )
        if form.get("grant_type") != ["client_credentials"]:
            return _json(400, {"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = trio.current_time() + self.config.token_lifetime_s
        self.stats.tokens_issued += 1
        return _json(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.config.token_lifetime_s,
            },
        )

    def _create_channel(self, token: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        channel_id = f"streaming-0-{uuid.uuid4().hex[:20]}"
        ttl = self.config.channel_ttl_s
        self._channels[channel_id] = _Channel(channel_id, token, trio.current_time() + ttl)
        self.stats.channels_created += 1
        expires = iso_ms(int((time.time() + ttl) * 1000))
        connect_uri = f"ws://{self.config.host}:{self.port}/channels/{channel_id}"
        return _json(200, {"id": channel_id, "connectUri": connect_uri, "expires": expires})

    def _subscriptions(
        self, channel: _Channel, method: str, body: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        if method == "GET":
            return _json(200, {"entities": [{"id": t} for t in sorted(channel.topics)]})
        if method == "DELETE":
            channel.topics.clear()
            self._notify()
            return 200, b"", []
        try:
            requested = [item["id"] for item in json.loads(body)]
        except (ValueError, TypeError, KeyError):
            return _json(
                400, {"message": 'body must be a list of {"id": topic}', "code": "bad.request"}
            )
        topics = set(requested) if method == "PUT" else channel.topics | set(requested)
        if len(topics) > MAX_TOPICS:
            return _json(
                400,
                {
                    "message": f"channel would have {len(topics)} topics; the limit "
                    f"is {MAX_TOPICS}",
                    "code": "too.many.topics",
                },
            )
        entities: list[dict[str, object]] = []
        accepted = set()
        for topic in topics:
            if self._faults.deny_transcription and topic.endswith(".transcription"):
                entities.append(
                    {
                        "id": topic,
                        "state": "Rejected",
                        "rejectionReason": "MissingPermissions",
                        "missingPermissions": ["conversation:transcription:view"],
                    }
                )
            else:
                accepted.add(topic)
                entities.append({"id": topic, "state": "Subscribed"})
        channel.topics = accepted
        self._notify()
        return _json(200, {"entities": entities})

    # --- WebSockets ---------------------------------------------------------------------

    async def _serve_websocket(self, stream: trio.SocketStream, head: bytes) -> None:
        raw = _ReplayStream(stream, head)
        async with trio.open_nursery() as nursery:
            request = await trio_websocket.wrap_server_stream(
                nursery, cast(trio.SocketStream, raw), message_queue_size=16
            )
            path = urllib.parse.urlsplit(request.path).path
            self.stats.handshakes += 1
            if path.startswith("/channels/"):
                await self._serve_channel_socket(request, raw, path.split("/")[2])
            elif path == FRAGMENT_PATH:
                await self._serve_fragment_socket(request, raw)
            else:
                await request.reject(404, body=b"no such stream")
            nursery.cancel_scope.cancel()

    async def _serve_channel_socket(
        self, request: trio_websocket.WebSocketRequest, raw: _ReplayStream, channel_id: str
    ) -> None:
        channel = self._channels.get(channel_id)
        if channel is None:
            await request.reject(404, body=b'{"message":"channel not found"}')
            return
        if self.stats.rejected_handshakes < self._faults.handshake_401:
            self.stats.rejected_handshakes += 1
            await request.reject(401, body=b'{"message":"token expired"}')
            return
        ws = await request.accept()
        sock = _Socket(ws, raw)
        previous, channel.socket = channel.socket, sock
        self._notify()
        async with trio.open_nursery() as nursery:
            if previous is not None:  # one socket per channel: the first one disconnects
                nursery.start_soon(self._retire, previous)
            nursery.start_soon(self._heartbeats, sock)
            try:
                while True:
                    message = await ws.get_message()
                    if _is_ping(message):
                        self.stats.pings += 1
                        if not self._faults.silent:
                            await self._send(
                                sock,
                                '{"topicName":"channel.metadata","eventBody":{"message":"pong"}}',
                            )
            except trio_websocket.ConnectionClosed:
                pass
            finally:
                sock.dead = True
                if channel.socket is sock:
                    channel.socket = None
                nursery.cancel_scope.cancel()

    async def _serve_fragment_socket(
        self, request: trio_websocket.WebSocketRequest, raw: _ReplayStream
    ) -> None:
        auth = dict((k.decode().lower(), v.decode()) for k, v in request.headers)
        if self._bearer(auth) is None:
            await request.reject(401, body=b'{"message":"bearer token required"}')
            return
        if self.stats.rejected_handshakes < self._faults.handshake_401:
            self.stats.rejected_handshakes += 1
            await request.reject(401, body=b'{"message":"token expired"}')
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        ws = await request.accept()
        wanted = query.get("conversationId")
        client = _FragmentClient(_Socket(ws, raw), wanted[0] if wanted else None)
        self._fragment_clients.append(client)
        self._notify()
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            client.socket.dead = True
            self._fragment_clients.remove(client)

    async def _retire(self, sock: _Socket) -> None:
        sock.dead = True
        with trio.move_on_after(5):
            await sock.ws.aclose(1000, "replaced by a newer socket on this channel")

    async def _heartbeats(self, sock: _Socket) -> None:
        while not self._faults.silent:
            await trio.sleep(self.config.heartbeat_s)
            await self._send(
                sock,
                '{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}',
            )

    async def _send(self, sock: _Socket, text: str) -> bool:
        if sock.dead:
            return False
        try:
            if self._faults.slow_reader_s:
                with trio.move_on_after(self._faults.slow_reader_s) as scope:
                    await sock.ws.send_message(text)
                if scope.cancelled_caught:
                    log.warning(
                        "slow reader: send blocked %.1f s; dropping the socket",
                        self._faults.slow_reader_s,
                    )
                    await self._drop(sock)
                    return False
            else:
                await sock.ws.send_message(text)
        except (
            trio_websocket.ConnectionClosed,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ):
            sock.dead = True
            return False
        return True

    async def _drop(self, sock: _Socket) -> None:
        """Drop without a close frame: FIN after what was sent, so it still arrives."""
        sock.dead = True
        self.stats.drops += 1
        self._notify()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await sock.raw.send_eof()

    async def _close_all(self) -> None:
        for channel in self._channels.values():
            if channel.socket is not None:
                with trio.move_on_after(2):
                    await channel.socket.ws.aclose(1000, "simulator done")
        for client in list(self._fragment_clients):
            with trio.move_on_after(2):
                await client.socket.ws.aclose(1000, "simulator done")

    async def _expire_channels(self) -> None:
        while True:
            await trio.sleep(1)
            now = trio.current_time()
            for channel in [c for c in self._channels.values() if c.expires_at <= now]:
                del self._channels[channel.id]
                if channel.socket is not None:
                    sock = channel.socket
                    await self._send(sock, '{"result":"404","message":"channel expired"}')
                    with trio.move_on_after(2):
                        await sock.ws.aclose(1001, "channel expired")
                self._notify()

    # --- dispatch -----------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _targets(self, frame: SimFrame) -> list[_Socket]:
        if self.config.source == "fragments":
            return [
                c.socket
                for c in self._fragment_clients
                if not c.socket.dead and c.conversation_id in (None, frame.conversation_id)
            ]
        free = (
            not frame.topic
            or frame.topic == "channel.metadata"
            or frame.topic.startswith("v2.system.")
        )
        return [
            c.socket
            for c in self._channels.values()
            if c.socket is not None and not c.socket.dead and (free or frame.topic in c.topics)
        ]

    def _frames(self) -> Iterator[SimFrame]:
        rng = random.Random(self.config.seed + 1)
        if self.config.replay_path is not None:
            yield from _replay_frames(self.config.replay_path)
            return
        make = fragment_frames if self.config.source == "fragments" else genesys_frames
        streams = [self._call_frames(call, make, rng) for call in self.calls]
        yield from interleave(streams, rng)

    def _call_frames(self, call: Call, make: Any, rng: random.Random) -> Iterator[SimFrame]:
        if self.config.queue_id and self.config.source == "notifications":
            topic = f"v2.routing.queues.{self.config.queue_id}.conversations"
            body = {"id": call.conversation_id, "participants": []}
            yield SimFrame(
                topic, json.dumps({"topicName": topic, "eventBody": body}), call.conversation_id
            )
        yield from make(call, random.Random(rng.random()))

    async def _dispatch(self, nursery: trio.Nursery) -> None:
        interval = 1.0 / self.config.rate if self.config.rate > 0 else 0.0
        next_at = trio.current_time()
        sent = 0
        for frame in self._frames():
            if interval:
                next_at = max(next_at + interval, trio.current_time() - 1.0)
                await trio.sleep_until(next_at)
            if not await self._deliver(frame):
                continue
            sent += 1
            faults = self._faults
            if frame.final is not None and faults.duplicate_finals:
                await self._deliver(frame)
            if faults.malformed_every and sent % faults.malformed_every == 0:
                await self._deliver(SimFrame("", '{"topicName": "v2.conversations.x', ""))
            if faults.oversized_every and sent % faults.oversized_every == 0:
                await self._deliver(
                    SimFrame(
                        "",
                        json.dumps(
                            {"topicName": "channel.metadata", "eventBody": {"pad": "x" * (2 << 20)}}
                        ),
                        "",
                    )
                )
            if faults.socket_closing_after and sent == faults.socket_closing_after:
                nursery.start_soon(self._socket_closing)
        self.done.set()

    async def _deliver(self, frame: SimFrame) -> bool:
        """Send ``frame`` to every socket that should get it; wait, resend, or skip."""
        deadline = trio.current_time() + self.config.subscribe_wait_s
        while True:
            targets = self._targets(frame)
            if not targets:
                changed = self._changed
                with trio.move_on_at(deadline):
                    await changed.wait()
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
                if await self._send(sock, frame.text):
                    delivered = True
                    sock.frames += 1
                    if self._faults.drop_every and sock.frames % self._faults.drop_every == 0:
                        await self._drop(sock)
            if delivered:
                self.stats.frames_sent += 1
                if frame.final is not None:
                    self._record_final(frame)
                return True
            self.stats.resent += 1

    def _record_final(self, frame: SimFrame) -> None:
        u = frame.final
        assert u is not None
        key = (u.conversation_id, u.utterance_id)
        if key in self._sent_finals:
            return
        self._sent_finals.add(key)
        self.stats.finals_sent += 1
        call = next(c for c in self.calls if c.conversation_id == u.conversation_id)
        record = truth_record(frame, call.session_start_ms)
        record["sentAt"] = time.time() * 1000  # for latency: final sent -> point acknowledged
        self.truth.append(record)
        if self._truth_file is not None:
            self._truth_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._truth_file.flush()

    async def _socket_closing(self) -> None:
        message = json.dumps(
            {
                "topicName": "v2.system.socket_closing",
                "eventBody": {
                    "message": "Maintenance: reconnect within one minute",
                    "systemTopicType": None,
                },
            }
        )
        sockets = [c.socket for c in self._channels.values() if c.socket is not None]
        for sock in sockets:
            await self._send(sock, message)
        await trio.sleep(self._faults.socket_closing_grace_s)
        for sock in sockets:
            if not sock.dead:
                await self._retire(sock)


def _is_ping(message: str | bytes) -> bool:
    try:
        value = json.loads(message)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("message") == "ping"


def _json(
    status: int, value: object, headers: list[tuple[str, str]] | None = None
) -> tuple[int, bytes, list[tuple[str, str]]]:
    return status, json.dumps(value).encode(), headers or []


def _replay_frames(path: Path) -> Iterator[SimFrame]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\n")
            if not text:
                continue
            topic = ""
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if isinstance(value, dict) and isinstance(value.get("topicName"), str):
                topic = value["topicName"]
            conversation = topic.split(".")[2] if topic.startswith("v2.conversations.") else ""
            yield SimFrame(topic, text, conversation)
