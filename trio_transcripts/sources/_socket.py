"""The WebSocket loop both sources share: connect, read, close, and why it ended.

:func:`read_socket` opens one socket with the sources' options, hands it to the source's own
reader until that returns a :class:`~trio_transcripts.channels.SocketEnd`, and closes it (1001,
then the transport underneath) however the reading ended. A refused handshake, a close and a
lost connection become ``SocketEnd`` values too, logged, so each source's reconnect loop only
decides what to do next.

The connection is trio-websocket's (handshake, close, ping/pong), over a TCP or TLS stream we
open and pass in through its public ``wrap_client_stream``. At the rates a contact centre
sends, frames arrive one at a time, and reading each as it came cost a full trip through
trio's scheduler a frame, then trio-websocket's hand-over of each message, another
(``benchmarks/README.md``, issue 23). So the stream under it is layered: a
:class:`LingeringStream` on the TCP stream lets frames gather for a bounded moment, and a
:class:`SplittingStream` just under trio-websocket takes the data messages out of what it
reads (``wire/websocket.py``), all of them a read at once, for the source's reader
(:class:`Socket`); trio-websocket sees the handshake, the control frames it answers, and
anything the splitter is not sure of. Nothing here reaches below trio-websocket's public API:
it is given a stream, as its ``wrap_client_stream`` allows.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio
import trio_websocket

from ..channels import SocketEnd
from ..logthrottle import Repeated, Repeats
from ..wire.websocket import FrameSplitter

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

Reader = Callable[["Socket"], Awaitable[SocketEnd]]


@dataclass(frozen=True)
class SocketOptions:
    """trio-websocket's knobs, as the sources use them.

    ``message_queue_size`` is small on purpose: the ring buffer is the real buffer, and a
    full queue is what stops trio-websocket reading (TCP backpressure) while it delivers
    messages itself (after a frame the splitter left to it); the splitter's own queue is
    one read (:class:`SplittingStream`). Frames above 1 MiB
    are set aside as malformed by the parsers; the transport limit is larger so they arrive
    whole and are set aside with their content rather than closing the socket (1009).

    ``receive_buffer_size`` is what a read asks the socket for: trio-websocket's default,
    4 KiB, is four transcription frames, so at full rate its reader task and the source's
    took turns every four frames; 64 KiB lets each turn carry ~100 (``benchmarks/README.md``).

    ``linger_s`` is how long frames may gather in the kernel before a read, once they come
    faster than one a ``linger_s`` (:class:`LingeringStream`): it bounds the latency added to
    a frame, against the 250 ms p99 of final-to-acknowledged at 2,000 frames/s (issue 23).
    """

    message_queue_size: int = 64
    receive_buffer_size: int = 64 << 10
    linger_s: float = 0.025
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
    """Connect to ``url``, call ``opened()``, and ``read(socket)`` until it says why it stopped.
    A storm of losses logs one line an interval (``repeats``)."""
    try:
        async with open_socket(url, options, headers) as socket:
            opened()
            return await read(socket)
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


@contextlib.asynccontextmanager
async def open_socket(
    url: str, options: SocketOptions, headers: Sequence[tuple[bytes, bytes]] = ()
) -> AsyncIterator[Socket]:
    """A trio-websocket client connection to ``url``, its data messages split off below it.

    What ``trio_websocket.open_websocket_url`` does, with the stream passed in: the same
    exceptions (``HandshakeError`` for a connect that fails or times out,
    ``ConnectionRejected``, ``ConnectionClosed``, each alone, not in a group), then a close
    (1001, at most ``disconnect_timeout_s``) and the TCP stream closed however it ended.
    Holding the stream ourselves closes the two sockets trio-websocket 0.12.2 leaves open:
    after a rejected handshake, and after a peer that vanished without a close frame (1006),
    where its ``aclose()`` returns early. Under ``wss`` the TLS handshake is done here,
    under the connect deadline, so an untrusted certificate is a ``HandshakeError`` at once.
    """
    parts = urllib.parse.urlsplit(url)
    tls = parts.scheme == "wss"
    hostname = parts.hostname
    if parts.scheme not in ("ws", "wss") or hostname is None:
        raise ValueError(f"not a WebSocket URL: {url}")
    port = parts.port if parts.port is not None else (443 if tls else 80)
    named = f"[{hostname}]" if ":" in hostname else hostname  # an IPv6 address
    host = named if port in (80, 443) else f"{named}:{port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = trio.current_time() + options.connect_timeout_s  # connect and handshake
    try:
        with trio.fail_at(deadline):
            tcp = await trio.open_tcp_stream(hostname, port)
    except trio.TooSlowError:
        raise trio_websocket.ConnectionTimeout from None
    except OSError as exc:
        raise trio_websocket.HandshakeError from exc
    # The linger is under TLS: it gathers the kernel's bytes, and TLS then hands over one
    # record a read, which would look like an endless run of short reads from above.
    stream: trio.abc.Stream = LingeringStream(tcp, options.linger_s, options.receive_buffer_size)
    body_error: BaseException | None = None
    try:
        if tls:
            stream = trio.SSLStream(
                stream,
                ssl.create_default_context(),
                server_hostname=hostname,
                https_compatible=True,
            )
            try:
                with trio.fail_at(deadline):
                    await stream.do_handshake()  # a bad certificate now, not a timeout later
            except trio.TooSlowError:
                raise trio_websocket.ConnectionTimeout from None
            except trio.BrokenResourceError as exc:
                raise trio_websocket.HandshakeError from exc
        frames = stream = SplittingStream(stream, options)
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_at(deadline):
                    ws = await trio_websocket.wrap_client_stream(
                        nursery,
                        # wrap_client_stream takes any trio Stream (its docstring); its
                        # annotation names the two it opens itself.
                        stream,  # type: ignore[arg-type]
                        host,
                        resource,
                        extra_headers=list(headers),
                        message_queue_size=options.message_queue_size,
                        max_message_size=options.max_message_size,
                        receive_buffer_size=options.receive_buffer_size,
                    )
            except trio.TooSlowError:
                raise trio_websocket.ConnectionTimeout from None
            try:
                yield Socket(ws, frames)
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                frames.leave_to_wsproto()  # which drops what comes after our close, as ever
                with trio.move_on_after(options.disconnect_timeout_s, shield=True):
                    await ws.aclose(1001, "going away")
                # After the server's close frame aclose() returns at once, and the reader
                # task waits for a FIN the peer may never send: closing ends it.
                await _close(stream)
    except BaseExceptionGroup as group:
        ended = alone(group, body_error)
        context = ended.__context__
        try:
            raise ended  # as it was raised: keep its own context, not the group's
        finally:
            ended.__context__ = context
            del ended, context
    finally:
        await _close(stream)  # a failed handshake's too (trio-websocket left those open)


async def _close(stream: trio.abc.Stream) -> None:
    with (
        trio.CancelScope(shield=True),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
    ):
        await stream.aclose()


def alone(group: BaseExceptionGroup, body_error: BaseException | None = None) -> BaseException:
    """The one exception that ended a socket's nursery (trio-websocket's reader task or the
    reading inside it), as ``open_websocket_url`` raises it: a cancellation only when
    nothing else went wrong; when two things did, a ``KeyboardInterrupt`` first, then what
    the body raised, else the group itself."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(reversed(exc.exceptions))
        else:
            leaves.append(exc)
    real = [exc for exc in leaves if not isinstance(exc, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    if not real:
        return leaves[0]
    interrupted = [exc for exc in real if isinstance(exc, KeyboardInterrupt)]
    if interrupted:
        return interrupted[0]
    return body_error if body_error in real else group


SHORT_READ_FRACTION = 8
"""A read under ``1 / SHORT_READ_FRACTION`` of the buffer is a few frames: worth a linger."""


class LingeringStream(trio.abc.Stream):
    """A stream whose reads wait ``linger_s`` first while frames come densely.

    Read as they come, frames at 2,400 a second (a contact centre's rate) each woke trio's
    I/O loop, trio-websocket's reader task, and the source's reader: most of what a frame
    cost (``benchmarks/README.md``, issue 23). So a short read (under an eighth of the
    buffer: a few frames) that came within ``linger_s`` of asking makes the next one wait
    ``linger_s`` first and take everything that gathered in one read; after a wait, any read
    that drains the socket waits again (that is the linger gathering a moderate rate). A
    longer read with no wait before it never makes the next wait: at full speed the socket
    runs dry now and then while the worker works through a buffer, and a wait there idled
    the worker while the generator had more (a flat 10 ms after every drained read cost the
    fragment stream a fifth of its rate).
    Once frames come further apart than ``linger_s``, reads go back to waking at each one,
    so a quiet call costs nothing extra. A full ring still stops reads: trio-websocket
    stops calling this when its queue is full.
    """

    def __init__(self, stream: trio.abc.Stream, linger_s: float, read_bytes: int) -> None:
        self._stream = stream
        self._linger_s = linger_s
        self._read_bytes = read_bytes  # what a read asks for when its caller does not say
        self._linger = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        asking = self._read_bytes if max_bytes is None else max_bytes  # TLS does not say
        lingered = self._linger
        if lingered:
            await trio.sleep(self._linger_s)
        asked = trio.current_time()
        data = await self._stream.receive_some(asking)
        self._linger = (
            0 < len(data) < asking
            and (lingered or len(data) < asking // SHORT_READ_FRACTION)
            and trio.current_time() - asked < self._linger_s
        )
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


def describe(exc: BaseException) -> str:
    if isinstance(exc, trio_websocket.ConnectionClosed) and exc.reason is not None:
        return f"close code {exc.reason.code} ({exc.reason.name}) {exc.reason.reason or ''}"
    return f"{type(exc).__name__}: {exc}"


class SplittingStream(trio.abc.Stream):
    """The stream under trio-websocket: what it reads, less the data messages, which wait
    here for the source's reader (:class:`Socket`), every one a read gave at once.

    trio-websocket's reader task is what calls :meth:`receive_some`, so it is also what
    reads the socket for the splitter: a read that gives only messages wakes the source's
    reader and, once it has taken them, reads on; one that gives bytes for wsproto (a ping,
    a close, anything the splitter leaves to it, ``wire/websocket.py``) returns them.

    While a message waits, no read is made: the next read comes once the reader has taken
    the last, so it gathers what came meanwhile. Reading again as soon as one was taken
    made small reads, each of which the linger then waited after (at 12,000 frames/s the
    worker read 9,800/s, idle a third of the time: ``benchmarks/README.md``). So the queue
    holds at most one read's messages, and a full ring (the reader parked in ``put``) stops
    reads within one read.
    """

    def __init__(self, stream: trio.abc.Stream, options: SocketOptions) -> None:
        self._stream = stream
        self._splitter = FrameSplitter(options.max_message_size)
        self._read_bytes = options.receive_buffer_size
        self._messages: deque[str | bytes] = deque()
        self._through = b""  # read, for trio-websocket, not yet given
        self._done = False  # no message will come here again: wsproto delivers any more
        self._waiting = trio.lowlevel.ParkingLot()  # the source's reader, for a message
        self._full = trio.lowlevel.ParkingLot()  # the reads, for room

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            while not self._through:
                if self._messages and not self._done:
                    await self._full.park()
                    continue  # leave_to_wsproto may have given it bytes meanwhile
                data = await self._stream.receive_some(self._read_bytes)
                if not data:
                    self._finish()
                    return b""
                messages, through = self._splitter.feed(bytes(data))  # TLS: bytearray
                # Added, not set: a frame's first part that leave_to_wsproto gave while
                # this read waited comes before the rest (a helper's review, issue 23).
                self._through += through
                if messages:
                    self._messages.extend(messages)
                    self._waiting.unpark_all()
                if self._splitter.passing:
                    self._finish()
        except BaseException:
            self._finish()  # a lost or closed stream: the reader hears it from trio-websocket
            raise
        if max_bytes is None or max_bytes >= len(self._through):
            data, self._through = self._through, b""
        else:
            data, self._through = self._through[:max_bytes], self._through[max_bytes:]
        return data

    def queued(self) -> str | bytes | None:
        """A message already split off, taken without waiting, else ``None``."""
        if not self._messages:
            return None
        message = self._messages.popleft()
        if not self._messages and self._full:
            self._full.unpark_all()
        return message

    async def next_message(self) -> str | bytes | None:
        """The next message split off here, waiting for one; ``None`` once none will come
        (the stream ended, or wsproto has the rest: ask trio-websocket)."""
        while True:
            if self._messages or self._done:
                # Cancelled before a message is taken, never after: a watchdog's deadline
                # must not drop one (trio's memory channels promise the same).
                await trio.lowlevel.checkpoint_if_cancelled()
                message = self.queued()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return message
            await self._waiting.park()

    def leave_to_wsproto(self) -> None:
        """Split nothing more: the source's reader is gone, and what is still read (until
        the close handshake ends) is trio-websocket's to drop, as it drops messages after a
        close it started."""
        self._through += self._splitter.pass_rest()
        self._messages.clear()
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._waiting.unpark_all()
        self._full.unpark_all()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        # A send that fails (a pong to a peer that reset) ends trio-websocket's reader task
        # without another read here: the source's reader must not wait for one.
        try:
            await self._stream.send_all(data)
        except BaseException:
            self._finish()
            raise

    async def wait_send_all_might_not_block(self) -> None:
        try:
            await self._stream.wait_send_all_might_not_block()
        except BaseException:
            self._finish()
            raise

    async def aclose(self) -> None:
        self._finish()
        await self._stream.aclose()


@dataclass(frozen=True)
class Socket:
    """An open WebSocket as a source reads it: messages from the splitter while it has
    them, then from trio-websocket (which raises ``ConnectionClosed`` at the end); sends and
    the close are trio-websocket's (``ws``)."""

    ws: trio_websocket.WebSocketConnection
    frames: SplittingStream

    def queued(self) -> str | bytes | None:
        """A message already read, taken without waiting (one a frame, no scheduler trip),
        else ``None``: then :meth:`get_message`."""
        return self.frames.queued()

    async def get_message(self) -> str | bytes:
        message = await self.frames.next_message()
        return message if message is not None else await self.ws.get_message()
