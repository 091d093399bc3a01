"""A server's WebSocket bytes split into its data messages and what trio-websocket must see.

trio-websocket hands its reader one message a turn of trio's scheduler (an awaited ``send``
on a memory channel each), and wsproto parses every frame through generators and an
incremental UTF-8 decoder: at the rates a contact centre sends, those two were most of what
a frame cost the worker beyond a bare client (``benchmarks/README.md``, issue 23). So the
source's socket reads through :class:`FrameSplitter`: every data frame it is sure of (final,
no extension bits, unmasked, within the size limit, a text frame valid UTF-8) becomes a
message here, many from one read; everything else goes on to wsproto byte for byte: the
handshake's response, control frames (ping, pong and close, which trio-websocket answers),
and, from the first frame the splitter is not sure of (a fragment, a bad frame, the close),
all the rest. wsproto then gives its own verdict (1002, 1007, 1009) on exactly the bytes it
would have seen, and messages keep their order: whatever wsproto delivers came after every
message split off here.

Pure and synchronous (RFC 6455 section 5.2); ``tests/test_websocket_frames.py`` holds it to
wsproto itself on any stream cut anywhere.
"""

from __future__ import annotations

import re

_BLANK_LINE = re.compile(rb"\n\r?\n")
"""Where the response's head ends, as h11 (wsproto's HTTP) finds it: bare newlines too."""

HEAD_LIMIT = 64 << 10
"""A handshake response longer than this is left to wsproto (which refuses it)."""

_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_EXTENDED = {126: (4, 126), 127: (10, 0x10000)}
"""A length byte of 126 or 127: the frame's header size, and the least length that form may
carry."""
_FINAL_PLAIN = 0x80  # FIN set, RSV1-3 clear: the first byte's high nibble of a whole frame


class FrameSplitter:
    """Feed it what the socket read; it returns the messages complete so far and the bytes
    for wsproto. Once :attr:`passing`, everything goes to wsproto."""

    def __init__(self, max_message_size: int) -> None:
        self._max = max_message_size
        self._head: bytes | None = b""  # the handshake response so far; None once past it
        self._chunks: list[bytes] = []  # an incomplete frame's bytes
        self._have = 0
        self._need = 2  # bytes the next parse needs before it can go further
        self.passing = False

    def feed(self, data: bytes) -> tuple[list[str | bytes], bytes]:
        """The messages ``data`` completed, in order, and the bytes wsproto must see."""
        if self.passing:
            return [], data
        forward = b""
        if self._head is not None:
            head = self._head + data
            blank = _BLANK_LINE.search(head)
            if blank is None:
                if len(head) > HEAD_LIMIT:
                    self.passing = True
                self._head = None if self.passing else head
                return [], data
            self._head = None
            status = head.split(b"\n", 1)[0].split(b" ", 2)
            if len(status) < 2 or status[1] != b"101":
                self.passing = True  # a refusal and its body: wsproto's to read
                return [], data
            rest = len(head) - blank.end()
            forward, data = data[: len(data) - rest], data[len(data) - rest :]
        self._chunks.append(data)
        self._have += len(data)
        if self._have < self._need:
            return [], forward
        buffer = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        messages, through, used = self._split(buffer)
        rest_of = buffer[used:]
        self._chunks = [rest_of] if rest_of else []
        self._have = len(rest_of)
        if forward or len(through) != 1:
            through.insert(0, forward)
            return messages, b"".join(through)
        return messages, through[0]

    def pass_rest(self) -> bytes:
        """From now on, everything to wsproto; what was held back for a frame not yet whole."""
        self.passing = True
        self._head = None  # its bytes went on as they came
        held = b"".join(self._chunks)
        self._chunks = []
        self._have = 0
        return held

    def _split(self, buffer: bytes) -> tuple[list[str | bytes], list[bytes], int]:
        """Whole frames from the start of ``buffer``: the messages, the bytes for wsproto,
        and how much of ``buffer`` they used (the rest is a frame not yet whole)."""
        messages: list[str | bytes] = []
        through: list[bytes] = []
        size = len(buffer)
        i = 0
        while True:
            if size - i < 2:
                self._need = 2
                return messages, through, i
            first = buffer[i]
            length = buffer[i + 1]
            opcode = first & 0x0F
            # Judged on the first two bytes, as wsproto judges them: a fragment, an
            # extension's bits, a masked frame (a server must not, RFC 6455 5.1).
            if first & 0xF0 != _FINAL_PLAIN or length & 0x80:
                break
            if opcode in (_CLOSE, _PING, _PONG):
                if length > 125:
                    break  # a control frame too long: wsproto refuses it
                end = i + 2 + length
                if end > size:
                    self._need = end - i
                    return messages, through, i
                through.append(buffer[i:end])
                if opcode == _CLOSE:  # the rest is the close's aftermath: wsproto's
                    i = end
                    break
                i = end
                continue
            if opcode != _TEXT and opcode != _BINARY:
                break  # a continuation without a start, a reserved opcode: wsproto refuses
            start = i + 2
            if length >= 126:  # a 16-bit length follows (126), or a 64-bit one (127)
                head, least = _EXTENDED[length]
                start = i + head
                if size < start:
                    self._need = head
                    return messages, through, i
                length = int.from_bytes(buffer[i + 2 : start], "big")
                if length < least:
                    break  # not the shortest form: RFC 6455 5.2 forbids it, wsproto refuses
            if length > self._max:
                break  # trio-websocket closes with 1009, as it would have
            end = start + length
            if end > size:
                self._need = end - i
                return messages, through, i
            if opcode == _TEXT:
                try:
                    messages.append(buffer[start:end].decode("utf-8"))
                except UnicodeDecodeError:
                    break  # wsproto closes with 1007, as it would have
            else:
                messages.append(buffer[start:end])
            i = end
        self.passing = True
        through.append(buffer[i:])
        return messages, through, size
