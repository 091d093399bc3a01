"""A raw WebSocket server's side of the handshake, for tests that then send bytes no
WebSocket library would (a bad frame, a close without a FIN)."""

from __future__ import annotations

import trio

from trio_transcripts.testing.loadgen import accept_key


async def accept(stream: trio.SocketStream, after: bytes = b"") -> None:
    """Read a client's handshake from ``stream`` and accept it, ``after`` in the same write."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(4096)
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
        + after
    )
