"""The simulator's plumbing: HTTP over h11 and the WebSocket endpoints, on one port.

* Any HTTP request is answered by the REST core (``api.py``), except a WebSocket upgrade:
* ``GET /channels/{id}``: the channel's ``connectUri``. A second socket on the same channel
  replaces the first, which is closed (1000) after what was sent to it, as on the platform.
  ``{"message":"ping"}`` gets the ``channel.metadata`` pong; heartbeats every 30 s.
* ``GET /api/v2/media/conversations/transcripts`` (Bearer): the reference design's fragment
  stream, optionally ``?conversationId=``.

:class:`SocketHub` knows the live sockets and sends on them, with the socket faults (drop
without a close frame, a slow reader dropped, silence, rejected handshakes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import h11
import trio
import trio_websocket

from ...pulse import Pulse
from .api import Response, SimApi
from .calls import SimFrame
from .config import SimConfig, SimStats

log = logging.getLogger("trio_transcripts.simulator")

FRAGMENT_PATH = "/api/v2/media/conversations/transcripts"


def endpoints(host: str, port: int) -> dict[str, str]:
    """The URLs a client of a simulator (or the load generator) on ``host:port`` is given."""
    base = f"http://{host}:{port}"
    return {
        "login_url": base,
        "api_url": base,
        "fragment_stream_url": f"ws://{host}:{port}{FRAGMENT_PATH}",
    }


PONG = '{"topicName":"channel.metadata","eventBody":{"message":"pong"}}'
HEARTBEAT = '{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}'


class ReplayStream(trio.abc.HalfCloseableStream):
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


Handle = Callable[[str, str, dict[str, str], bytes], Response]
Upgrade = Callable[[trio.SocketStream, bytes], Awaitable[None]]


async def serve_http(stream: trio.SocketStream, handle: Handle, upgrade: Upgrade) -> None:
    """One connection: requests answered by ``handle``, or handed to ``upgrade`` (WebSocket)
    with the bytes read so far."""
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
            if headers.get("upgrade", "").lower() == "websocket":
                if first:
                    await upgrade(stream, bytes(received))
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
            status, payload, extra = handle(
                event.method.decode(), event.target.decode(), headers, bytes(body)
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


@dataclass
class SimSocket:
    ws: trio_websocket.WebSocketConnection
    raw: ReplayStream
    frames: int = 0
    dead: bool = False


@dataclass
class FragmentClient:
    socket: SimSocket
    conversation_id: str | None


class SocketHub:
    """The live sockets: which frame goes to which, sending, dropping, closing."""

    def __init__(self, config: SimConfig, stats: SimStats, api: SimApi) -> None:
        self.config = config
        self.stats = stats
        self.api = api
        self.faults = config.faults
        self.channel_sockets: dict[str, SimSocket] = {}
        self.fragment_clients: list[FragmentClient] = []
        self.down_until = -math.inf  # the outage fault: channel sockets refused until then
        self._changed = Pulse()

    def connected(self, channel_id: str) -> bool:
        sock = self.channel_sockets.get(channel_id)
        return sock is not None and not sock.dead

    def notify(self) -> None:
        """Something changed (a socket, a subscription): a waiting frame may now go out."""
        self._changed.fire()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def targets(self, frame: SimFrame) -> list[SimSocket]:
        if self.config.source == "fragments":
            return [
                c.socket
                for c in self.fragment_clients
                if not c.socket.dead and c.conversation_id in (None, frame.conversation_id)
            ]
        free = (
            not frame.topic
            or frame.topic == "channel.metadata"
            or frame.topic.startswith("v2.system.")
        )
        sockets = []
        for channel_id, sock in self.channel_sockets.items():
            channel = self.api.channels.get(channel_id)
            if channel is not None and not sock.dead and (free or frame.topic in channel.topics):
                sockets.append(sock)
        return sockets

    # --- endpoints ----------------------------------------------------------------------

    async def serve_websocket(self, stream: trio.SocketStream, head: bytes) -> None:
        raw = ReplayStream(stream, head)
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

    async def _reject_401_fault(self, request: trio_websocket.WebSocketRequest) -> bool:
        if self.stats.rejected_handshakes < self.faults.handshake_401:
            self.stats.rejected_handshakes += 1
            await request.reject(401, body=b'{"message":"token expired"}')
            return True
        return False

    async def _serve_channel_socket(
        self, request: trio_websocket.WebSocketRequest, raw: ReplayStream, channel_id: str
    ) -> None:
        if channel_id not in self.api.channels:
            await request.reject(404, body=b'{"message":"channel not found"}')
            return
        if await self._reject_401_fault(request):
            return
        if trio.current_time() < self.down_until:
            self.stats.rejected_handshakes += 1
            await request.reject(503, body=b'{"message":"service unavailable"}')
            return
        ws = await request.accept()
        sock = SimSocket(ws, raw)
        previous = self.channel_sockets.get(channel_id)
        self.channel_sockets[channel_id] = sock
        self.notify()
        async with trio.open_nursery() as nursery:
            if previous is not None:  # one socket per channel: the first one disconnects
                nursery.start_soon(self.retire, previous)
            nursery.start_soon(self._heartbeats, sock)
            try:
                while True:
                    message = await ws.get_message()
                    if _is_ping(message):
                        self.stats.pings += 1
                        if not self.faults.silent:
                            await self.send(sock, PONG)
            except trio_websocket.ConnectionClosed:
                pass
            finally:
                sock.dead = True
                if self.channel_sockets.get(channel_id) is sock:
                    del self.channel_sockets[channel_id]
                nursery.cancel_scope.cancel()

    async def _serve_fragment_socket(
        self, request: trio_websocket.WebSocketRequest, raw: ReplayStream
    ) -> None:
        auth = {k.decode().lower(): v.decode() for k, v in request.headers}
        if self.api.bearer(auth, trio.current_time()) is None:
            await request.reject(401, body=b'{"message":"bearer token required"}')
            return
        if await self._reject_401_fault(request):
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        ws = await request.accept()
        wanted = query.get("conversationId")
        client = FragmentClient(SimSocket(ws, raw), wanted[0] if wanted else None)
        self.fragment_clients.append(client)
        self.notify()
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            client.socket.dead = True
            self.fragment_clients.remove(client)

    async def _heartbeats(self, sock: SimSocket) -> None:
        while not self.faults.silent:
            await trio.sleep(self.config.heartbeat_s)
            await self.send(sock, HEARTBEAT)

    # --- sending and closing --------------------------------------------------------------

    async def send(self, sock: SimSocket, text: str) -> bool:
        """Send ``text``; False when the socket is (or just went) dead."""
        if sock.dead:
            return False
        try:
            if self.faults.slow_reader_s:
                with trio.move_on_after(self.faults.slow_reader_s) as scope:
                    await sock.ws.send_message(text)
                if scope.cancelled_caught:
                    log.warning(
                        "slow reader: send blocked %.1f s; dropping the socket",
                        self.faults.slow_reader_s,
                    )
                    await self.drop(sock)
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

    async def drop(self, sock: SimSocket) -> None:
        """Drop without a close frame: FIN after what was sent, so it still arrives."""
        sock.dead = True
        self.stats.drops += 1
        if self.faults.outage_s:
            self.down_until = trio.current_time() + self.faults.outage_s
        self.notify()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await sock.raw.send_eof()

    async def retire(self, sock: SimSocket) -> None:
        sock.dead = True
        with trio.move_on_after(5):
            await sock.ws.aclose(1000, "replaced by a newer socket on this channel")

    async def close_channel(self, channel_id: str) -> None:
        """The channel expired: tell its socket (404) and close it."""
        sock = self.channel_sockets.get(channel_id)
        if sock is not None:
            await self.send(sock, '{"result":"404","message":"channel expired"}')
            with trio.move_on_after(2):
                await sock.ws.aclose(1001, "channel expired")
        self.notify()

    async def close_all(self) -> None:
        for sock in list(self.channel_sockets.values()):
            with trio.move_on_after(2):
                await sock.ws.aclose(1000, "simulator done")
        for client in list(self.fragment_clients):
            with trio.move_on_after(2):
                await client.socket.ws.aclose(1000, "simulator done")


def _is_ping(message: str | bytes) -> bool:
    try:
        value = json.loads(message)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("message") == "ping"
