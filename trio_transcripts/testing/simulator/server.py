"""The Genesys Cloud simulator: one Trio server, one port, the real wire formats.

Three parts, wired here: the REST core, sans I/O (``api.py``: tokens, channels,
subscriptions); the HTTP and WebSocket plumbing (``sockets.py``: h11, the channel and
fragment-stream sockets, heartbeats, socket faults); and the dispatcher (``dispatch.py``: the
calls' frames, paced, with the stream's faults, and the truth file). Calls are made by
``calls.py``; settings and fault switches are in ``config.py``.
"""

from __future__ import annotations

import functools
import time

import trio

from .api import Response, SimApi
from .calls import Call, make_calls
from .config import SimConfig, SimStats
from .dispatch import Dispatcher
from .sockets import SocketHub, endpoints, serve_http


class Simulator:
    """Run with ``await nursery.start(sim.run)``; the start value is :meth:`info`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = SimStats()
        self.port = 0
        epoch = config.epoch_ms if config.epoch_ms is not None else int(time.time() * 1000)
        spacing = int(config.call_spacing_s * 1000)
        self.calls: list[Call] = make_calls(
            config.calls, config.utterances, config.seed, epoch, spacing, card=config.card_call
        )
        self.hub: SocketHub
        self.api = SimApi(config, self.stats, lambda: self.hub.notify(), self.calls)
        self.hub = SocketHub(config, self.stats, self.api)
        self.api.connected = self.hub.connected
        self.dispatcher = Dispatcher(config, self.stats, self.calls, self.hub)

    @property
    def truth(self) -> list[dict[str, object]]:
        """Every final sent so far, as the truth file has it."""
        return self.dispatcher.truth

    @property
    def done(self) -> trio.Event:
        """Set once every frame was sent."""
        return self.dispatcher.done

    def info(self) -> dict[str, object]:
        return {
            **endpoints(self.config.host, self.port),
            "conversation_ids": [c.conversation_id for c in self.calls],
            "client_id": self.config.client_id,
        }

    def handle_http(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Response:
        """One REST request, answered on the Trio clock (tests call it without sockets)."""
        return self.api.handle(method, target, headers, body, trio.current_time())

    async def run(
        self, *, task_status: trio.TaskStatus[dict[str, object]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.config.truth_path is not None:
            path = self.config.truth_path
            self.dispatcher.truth_file = await trio.to_thread.run_sync(
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
                self.api.websocket_base = f"ws://{self.config.host}:{self.port}"
                self.api.port = self.port
                nursery.start_soon(self.dispatcher.run, nursery)
                nursery.start_soon(self._expire_channels)
                task_status.started(self.info())
                if self.config.exit_when_done:
                    await self.done.wait()
                    await self.hub.close_all()
                    nursery.cancel_scope.cancel()
        finally:
            if self.dispatcher.truth_file is not None:
                self.dispatcher.truth_file.close()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        await serve_http(stream, self.handle_http, self.hub.serve_websocket)

    async def _expire_channels(self) -> None:
        while True:
            await trio.sleep(1)
            for channel in self.api.expire_channels(trio.current_time()):
                await self.hub.close_channel(channel.id)
