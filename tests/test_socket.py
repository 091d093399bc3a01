"""The sources' WebSocket loop (``sources/_socket.py``): reads that linger while frames come
densely, the stream trio-websocket gets passed in, and the messages split off under it."""

from __future__ import annotations

import gc
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
import trio_websocket

from fuzz.targets import ACCEPTED
from trio_transcripts.sources._socket import (
    SHORT_READ_FRACTION,
    LingeringStream,
    SocketOptions,
    SplittingStream,
    alone,
    open_socket,
)
from trio_transcripts.testing.loadgen import CLOSE_NORMAL

from .conftest import require
from .rawsocket import accept
from .test_websocket_frames import frame

LINGER_S = 0.010


async def lingering() -> tuple[trio.abc.Stream, LingeringStream]:
    peer, ours = trio.testing.memory_stream_pair()
    return peer, LingeringStream(ours, LINGER_S, 100)


async def test_reads_close_together_linger_and_take_what_gathered_in_one_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, stream = await lingering()

    async def every_quarter_linger() -> None:
        for piece in (b"a", b"b", b"c", b"d"):
            await trio.sleep(LINGER_S / 4)
            await send.send_all(piece)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(every_quarter_linger)
        assert await stream.receive_some(100) == b"a"  # as it came: no wait was due
        asked = trio.current_time()
        # It came soon and short: this read waits the linger, then takes all that came.
        assert await stream.receive_some(100) == b"bcd"
        assert trio.current_time() - asked == pytest.approx(LINGER_S)


async def test_a_read_of_more_than_a_few_frames_never_makes_the_next_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, stream = await lingering()
    await send.send_all(b"x" * (100 // SHORT_READ_FRACTION))
    assert await stream.receive_some(100) == b"x" * (100 // SHORT_READ_FRACTION)
    await send.send_all(b"y")
    asked = trio.current_time()
    assert await stream.receive_some(100) == b"y"
    assert trio.current_time() == asked, "the socket ran dry while the worker was busy"


async def test_after_a_linger_a_read_that_drains_the_socket_lingers_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, stream = await lingering()
    await send.send_all(b"a")
    assert await stream.receive_some(100) == b"a"  # short: the next read lingers
    await send.send_all(b"b" * 50)
    assert await stream.receive_some(100) == b"b" * 50  # after the linger, long but drained
    await send.send_all(b"c")
    asked = trio.current_time()
    assert await stream.receive_some(100) == b"c"
    assert trio.current_time() - asked == pytest.approx(LINGER_S), "a moderate rate, gathered"


async def test_a_read_that_fills_the_buffer_never_lingers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, stream = await lingering()
    await send.send_all(b"0123456789" * 2)
    assert await stream.receive_some(10) == b"0123456789"
    asked = trio.current_time()
    assert await stream.receive_some(10) == b"0123456789"
    assert trio.current_time() == asked, "the socket had more: full speed reads on"


async def test_frames_further_apart_than_the_linger_are_read_as_they_come(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, stream = await lingering()
    arrivals: list[float] = []

    async def sparse() -> None:
        for piece in (b"a", b"b", b"c"):
            await trio.sleep(1.0)
            arrivals.append(trio.current_time())
            await send.send_all(piece)

    read_at: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sparse)
        for _ in range(3):
            await stream.receive_some(100)
            read_at.append(trio.current_time())
    assert read_at == arrivals, "a quiet call's frames are not held back"


async def caught_cancelled() -> trio.Cancelled:
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            return exc
    raise AssertionError("the cancelled scope let the sleep finish")


async def test_a_nurserys_group_gives_the_one_exception_that_ended_it() -> None:
    cancelled = await caught_cancelled()
    rejected = trio_websocket.ConnectionRejected(401, (), None)
    other = ValueError("second")
    assert alone(BaseExceptionGroup("", [cancelled, rejected])) is rejected
    nested = BaseExceptionGroup("", [BaseExceptionGroup("", [cancelled]), rejected])
    assert alone(nested) is rejected
    assert alone(BaseExceptionGroup("", [cancelled])) is cancelled
    two = BaseExceptionGroup("", [rejected, other])
    assert alone(two) is two, "two failures are not hidden behind one"


async def serve(
    handler: Callable[[trio_websocket.WebSocketRequest], Awaitable[None]], nursery: trio.Nursery
) -> str:
    """A trio-websocket server of ``handler`` in ``nursery``; its URL."""
    server = await nursery.start(
        partial(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, ssl_context=None)
    )
    return f"ws://127.0.0.1:{server.port}/"


async def test_messages_wait_together_for_the_reader_and_a_ping_among_them_is_answered() -> None:
    """The splitter takes messages out from under trio-websocket, and leaves it the ping:
    the server's ``ping`` returns only when trio-websocket has sent the pong."""
    pinged = trio.Event()

    async def message_ping_messages(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("first")
        await ws.ping(b"there?")
        pinged.set()
        await ws.send_message("second")
        await ws.send_message("third")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        url = await serve(message_ping_messages, nursery)
        with trio.fail_after(10):  # a missing pong fails here rather than stalling the suite
            async with open_socket(url, SocketOptions(linger_s=0.0)) as socket:
                assert await socket.get_message() == "first"
                await pinged.wait()
                assert await socket.get_message() == "second"
                await trio.testing.wait_all_tasks_blocked()  # "third" was read too
                assert socket.queued() == "third"
                assert socket.queued() is None, "nothing else read"
        nursery.cancel_scope.cancel()


async def test_messages_before_a_close_are_read_then_the_close_with_its_code() -> None:
    async def two_then_close(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("a")
        await ws.send_message(b"b")
        await ws.aclose(4000, "done")

    async with trio.open_nursery() as nursery:
        url = await serve(two_then_close, nursery)
        async with open_socket(url, SocketOptions()) as socket:
            assert [await socket.get_message(), await socket.get_message()] == ["a", b"b"]
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await socket.get_message()
        nursery.cancel_scope.cancel()
    assert closed.value.reason is not None and closed.value.reason.code == 4000


class OneFrameARead(trio.abc.Stream):
    """A socket with a message for every read after the handshake's response, 50 of them,
    then silence (so reads that do not stop are counted, not endless)."""

    def __init__(self) -> None:
        self.reads = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.reads > 50:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        self.reads += 1
        return ACCEPTED if self.reads == 1 else frame(0x1, b"m")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_reads_stop_while_a_message_waits_and_go_on_once_the_reader_took_all() -> None:
    """Backpressure reaches the socket: a reader that stops taking (a full ring) stops the
    reads, within one read."""
    socket = OneFrameARead()
    frames = SplittingStream(socket, SocketOptions())
    assert await frames.receive_some() == ACCEPTED
    async with trio.open_nursery() as nursery:
        nursery.start_soon(frames.receive_some)  # trio-websocket's reader task, waiting
        await trio.testing.wait_all_tasks_blocked()
        assert socket.reads == 1 + 1, "reads stopped while a message waits"
        assert frames.queued() == "m"
        await trio.testing.wait_all_tasks_blocked()
        assert socket.reads == 1 + 2, "taken, and the next read made"
        nursery.cancel_scope.cancel()


async def test_once_the_reader_is_gone_reads_go_on_and_trio_websocket_gets_the_rest() -> None:
    """Our close must read on through to the server's close frame (trio-websocket drops the
    messages before it, as it drops any after a close it started), not wait for room that
    a reader that is gone will never make."""
    socket = OneFrameARead()
    frames = SplittingStream(socket, SocketOptions())
    assert await frames.receive_some() == ACCEPTED
    given: list[bytes | bytearray] = []

    async def read() -> None:
        given.append(await frames.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert given == [], "waiting for room"
        frames.leave_to_wsproto()
        await trio.testing.wait_all_tasks_blocked()
        assert given == [frame(0x1, b"m")]
    assert frames.queued() is None, "what was queued is dropped with the reader"


async def test_a_refused_connect_is_a_handshake_error_and_no_socket_is_left_open() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(trio_websocket.HandshakeError):
        async with open_socket(f"ws://127.0.0.1:{port}/", SocketOptions()):
            raise AssertionError("connected to a closed port")


async def test_a_rejected_handshake_says_so_and_leaves_no_socket_open() -> None:
    async def refuse(request: trio_websocket.WebSocketRequest) -> None:
        await request.reject(401)

    async with trio.open_nursery() as nursery:
        serve = partial(trio_websocket.serve_websocket, refuse, "127.0.0.1", 0)
        server = await nursery.start(partial(serve, ssl_context=None))
        with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
            async with open_socket(f"ws://127.0.0.1:{server.port}/", SocketOptions()):
                raise AssertionError("a refused handshake opened")
        nursery.cancel_scope.cancel()
    assert rejected.value.status_code == 401
    gc.collect()  # a socket left open would fail the test here (filterwarnings = error)


async def test_a_close_frame_without_the_peers_fin_still_ends_the_socket() -> None:
    """The server closes the WebSocket and keeps TCP open: trio-websocket's reader task would
    wait for the FIN for ever, and the connection with it."""
    peer_closed = trio.Event()

    async def close_but_keep_tcp(stream: trio.SocketStream) -> None:
        await accept(stream, CLOSE_NORMAL)
        while await stream.receive_some(4096):  # the client's close reply, then its FIN
            pass
        peer_closed.set()

    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, close_but_keep_tcp, 0, host="127.0.0.1")
        [listener] = await nursery.start(serve)
        port = listener.socket.getsockname()[1]
        with trio.fail_after(10):  # a hang fails here rather than stalling the suite
            async with open_socket(f"ws://127.0.0.1:{port}/", SocketOptions()) as socket:
                with pytest.raises(trio_websocket.ConnectionClosed):
                    await socket.get_message()
            await peer_closed.wait()
        nursery.cancel_scope.cancel()


def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, by the openssl command."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        require("the openssl command (a test certificate)", exc)
    return cert, key


async def test_wss_reads_through_tls_and_a_certificate_it_does_not_trust_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    many = [f"frame {n} " + "x" * 200 for n in range(500)]

    async def send_many(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        for message in many:
            await ws.send_message(message)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        serve = partial(trio_websocket.serve_websocket, send_many, "127.0.0.1", 0)
        server = await nursery.start(partial(serve, ssl_context=server_tls))
        url = f"wss://127.0.0.1:{server.port}/"
        with pytest.raises(trio_websocket.HandshakeError):  # the system's CAs: not ours
            async with open_socket(url, SocketOptions()):
                raise AssertionError("an untrusted certificate was taken")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what create_default_context trusts
        async with open_socket(url, SocketOptions()) as socket:
            assert [await socket.get_message() for _ in many] == many
        nursery.cancel_scope.cancel()
    gc.collect()  # a socket left open would fail the test here


async def test_a_frame_half_read_when_the_reader_went_reaches_trio_websocket_whole() -> None:
    """The first part, held back, and the rest, read after: in order, nothing lost (wsproto
    would read the middle of a frame as a header)."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    frames = SplittingStream(receive, SocketOptions())
    whole = frame(0x1, "é".encode() * 100) + frame(0x8, (1000).to_bytes(2, "big"))
    await send.send_all(ACCEPTED)
    assert await frames.receive_some() == ACCEPTED
    given: list[bytes | bytearray] = []

    async def read() -> None:
        given.append(await frames.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await send.send_all(whole[:100])
        await trio.testing.wait_all_tasks_blocked()  # held: the frame is not whole
        frames.leave_to_wsproto()
        await send.send_all(whole[100:])
    assert b"".join(given) == whole


class SendFails(OneFrameARead):
    """A peer that reset: a send (trio-websocket's pong) fails."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        raise trio.BrokenResourceError("reset by the peer")


async def test_a_failed_send_ends_the_wait_for_a_message() -> None:
    """trio-websocket's reader task ends on a failed send without reading again: the
    source's reader is told there is nothing more here, and asks trio-websocket (which
    raises ConnectionClosed), rather than waiting for ever."""
    frames = SplittingStream(SendFails(), SocketOptions())
    waited: list[str | bytes | None] = []

    async def wait() -> None:
        waited.append(await frames.next_message())

    with trio.fail_after(10):  # a reader left waiting fails here rather than hanging
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BrokenResourceError):
                await frames.send_all(b"pong")
    assert waited == [None]


async def test_a_wait_cancelled_takes_no_message() -> None:
    """A watchdog's deadline that passes as a message is there leaves it for the next read."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    frames = SplittingStream(receive, SocketOptions())
    await send.send_all(ACCEPTED)
    assert await frames.receive_some() == ACCEPTED
    await send.send_all(frame(0x1, b"m"))  # the one message there is
    async with trio.open_nursery() as nursery:
        nursery.start_soon(frames.receive_some)  # reads it, then waits for room
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await frames.next_message()
        assert scope.cancelled_caught
        assert frames.queued() == "m", "the message is still there"
        nursery.cancel_scope.cancel()
