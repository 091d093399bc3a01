"""The WebSocket loop both sources share: connect, read, close, and why it ended.

:func:`read_socket` opens one socket with the sources' options, hands it to the source's own
reader until that returns a :class:`~trio_transcripts.channels.SocketEnd`, and closes it (1001,
then the transport underneath) however the reading ended. A refused handshake, a close and a
lost connection become ``SocketEnd`` values too, logged, so each source's reconnect loop only
decides what to do next. :func:`queued_message` is the read fast path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio
import trio_websocket

from ..channels import SocketEnd
from ..logthrottle import Repeated, Repeats

log = logging.getLogger("trio_transcripts.source")

REFUSED_BY_US = {
    1002: "a frame that breaks the WebSocket protocol",
    1007: "a text frame that is not valid UTF-8",
    1009: "a frame over the 16 MiB transport limit",
}
"""Close codes of trio-websocket's own (wsproto's verdict on a frame), and what they mean."""

SOCKETS_LOST = Repeated(
    "socket lost", "{count:,} more sockets lost in the last {seconds:.0f} s; first: {first}"
)

SOCKET_LOST = (
    trio_websocket.HandshakeError,
    trio_websocket.ConnectionClosed,
    OSError,
    trio.BrokenResourceError,
)
"""What a lost or refused WebSocket raises: each is an ordinary reconnect."""

Reader = Callable[[trio_websocket.WebSocketConnection], Awaitable[SocketEnd]]


@dataclass(frozen=True)
class SocketOptions:
    """trio-websocket's knobs, as the sources use them.

    ``message_queue_size`` is small on purpose: the ring buffer is the real buffer, and a
    full queue is what stops trio-websocket reading (TCP backpressure). Frames above 1 MiB
    are set aside as malformed by the parsers; the transport limit is larger so they arrive
    whole and are set aside with their content rather than closing the socket (1009).

    ``receive_buffer_size`` is what trio-websocket's reader task asks the socket for at a
    time: its default, 4 KiB, is four transcription frames, so at full rate that task and
    the source's reader took turns every four frames; 64 KiB lets each turn carry ~60
    (``benchmarks/README.md``).
    """

    message_queue_size: int = 64
    receive_buffer_size: int = 64 << 10
    max_message_size: int = 16 << 20
    connect_timeout_s: float = 10.0
    disconnect_timeout_s: float = 5.0


async def read_socket(
    url: str,
    options: SocketOptions,
    read: Reader,
    *,
    where: str,
    repeats: Repeats,
    headers: Sequence[tuple[bytes, bytes]] = (),
    opened: Callable[[], None] = lambda: None,
) -> SocketEnd:
    """Connect to ``url``, call ``opened()``, and ``read(ws)`` until it says why it stopped.
    A storm of losses logs one line an interval (``repeats``)."""
    try:
        async with trio_websocket.open_websocket_url(
            url,
            extra_headers=list(headers),
            message_queue_size=options.message_queue_size,
            receive_buffer_size=options.receive_buffer_size,
            max_message_size=options.max_message_size,
            connect_timeout=options.connect_timeout_s,
            disconnect_timeout=options.disconnect_timeout_s,
        ) as ws:
            opened()
            try:
                return await read(ws)
            finally:
                with trio.move_on_after(1, shield=True):
                    await ws.aclose(1001, "going away")
                await close_transport(ws)
    except trio_websocket.ConnectionRejected as exc:
        log.warning("%s: handshake rejected: HTTP %d", where, exc.status_code)
        if exc.status_code in (401, 403):
            return SocketEnd.UNAUTHORIZED
        return SocketEnd.REJECTED
    except trio_websocket.ConnectionClosed as exc:
        code = exc.reason.code if exc.reason is not None else None
        if code in REFUSED_BY_US:
            # trio-websocket closed it for a frame it would not take: that frame is lost with
            # the socket, as in any drop, and its gap is recorded like theirs (``coverage.py``).
            log.warning(
                "%s: socket closed: %s: the server sent %s; that frame and any queued "
                "behind it are lost, and the gap is recorded",
                where,
                describe(exc),
                REFUSED_BY_US[code],
            )
        else:
            log.info("%s: socket closed: %s", where, describe(exc))
        return SocketEnd.CLOSED
    except SOCKET_LOST as exc:
        repeats.log(log, logging.WARNING, SOCKETS_LOST, f"{where}: socket lost: {describe(exc)}")
        return SocketEnd.LOST


def describe(exc: BaseException) -> str:
    if isinstance(exc, trio_websocket.ConnectionClosed) and exc.reason is not None:
        return f"close code {exc.reason.code} ({exc.reason.name}) {exc.reason.reason or ''}"
    return f"{type(exc).__name__}: {exc}"


async def close_transport(ws: object) -> None:
    """Close the TCP stream under a finished trio-websocket connection.

    trio-websocket 0.12.2 leaves it open when the peer vanished without a close frame (1006):
    its ``_abort_web_socket`` never closes the stream, and ``aclose()`` then returns early.
    Without this, every drop leaks a socket until garbage collection.
    """
    stream = getattr(ws, "_stream", None)
    if isinstance(stream, trio.abc.AsyncResource):
        with (
            trio.CancelScope(shield=True),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
        ):
            await stream.aclose()


def queued_message(ws: trio_websocket.WebSocketConnection) -> str | bytes | None:
    """A message trio-websocket has already received, taken without waiting, else ``None``.

    trio-websocket has no public ``get_message_nowait``: its reader task puts each message on
    a memory channel (``_recv_channel`` in 0.12.2, the pinned version) that ``get_message``
    awaits. Taking a queued message directly skips the watchdog's cancel scope and a trip
    through the scheduler, about 10 us of the ~86 us a frame costs at full rate. Anything
    else (nothing queued, the channel closed, another layout) gives ``None``, and the caller
    takes the ordinary ``await ws.get_message()``, which raises the proper ConnectionClosed.
    """
    channel = getattr(ws, "_recv_channel", None)
    if not isinstance(channel, trio.MemoryReceiveChannel):
        return None
    try:
        message: str | bytes = channel.receive_nowait()
    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
        return None
    return message
