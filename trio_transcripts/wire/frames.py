"""Turning one WebSocket frame into a JSON object, or a :class:`Malformed` saying why not.

Shared by both wire formats. The rules are the strict subset of JSON both servers speak:
UTF-8, an object at the top, finite numbers only (Python's ``json`` would otherwise accept
``NaN`` and ``Infinity``, and turn ``1e999`` into infinity), and a size limit checked before
parsing so a 10 MB frame costs nothing.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from ..model import Malformed, excerpt_of

DEFAULT_MAX_FRAME_BYTES = 1 << 20
"""trio-websocket's own default message limit; a larger frame is refused before parsing."""

JsonObject = dict[str, Any]


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"non-finite number {name} is not JSON")


def _finite_float(text: str) -> float:
    # ``json`` turns a number too large for a double, such as 1e999, into inf without a word.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} overflows a double")
    return value


_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def size_over(frame: str | bytes, max_bytes: int) -> int | None:
    """``frame``'s size in UTF-8 bytes if that is over ``max_bytes``, else ``None``: the one
    rule of both parsers' paths (``schema.decode`` too). A ``str`` is encoded only when its
    characters (up to 4 bytes each) could come to more, so a frame of ordinary size costs
    one ``len``."""
    size = len(frame)
    if isinstance(frame, str) and size > max_bytes // 4:
        size = len(frame.encode("utf-8", "surrogatepass"))
    return size if size > max_bytes else None


def load_object(
    frame: str | bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> JsonObject | Malformed:
    """Parse ``frame`` as a JSON object, or say precisely why it is not one."""
    size = size_over(frame, max_bytes)
    if size is not None:
        return Malformed(
            f"frame of {size:,} bytes exceeds the {max_bytes:,}-byte limit", excerpt_of(frame)
        )
    if isinstance(frame, bytes):
        try:
            text = frame.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Malformed(
                f"frame is not UTF-8 ({exc.reason} at byte {exc.start})", excerpt_of(frame)
            )
    else:
        text = frame
    try:
        value = _decoder.decode(text)
    except (ValueError, RecursionError) as exc:
        reason = (
            "frame nests too deeply"
            if isinstance(exc, RecursionError)
            else (f"invalid JSON: {exc}")
        )
        return Malformed(reason, excerpt_of(text))
    if not isinstance(value, dict):
        return Malformed(f"expected a JSON object, got {type(value).__name__}", excerpt_of(text))
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(value: str) -> str:
    # JSON can spell lone surrogates that no UTF-8 encoder accepts; they would crash the
    # sink much later, so they become U+FFFD here, the one place strings enter.
    return _SURROGATE.sub("\ufffd", value)


class FieldReader:
    """Reads typed fields of one JSON object, tolerating absence but noting wrong types.

    Upstream schemas make every field optional, so an absent (or null) field reads as
    ``None``; a field that is present with the wrong type also reads as ``None`` and is
    recorded in :attr:`errors` (``"where.key: expected int, got str"``), so the caller can
    report the frame as malformed instead of guessing.
    """

    __slots__ = ("errors", "obj", "where")

    def __init__(self, obj: JsonObject, where: str = "") -> None:
        self.obj = obj
        self.where = where
        self.errors: list[str] = []

    def _wrong(self, key: str, expected: str, value: object) -> None:
        path = f"{self.where}.{key}" if self.where else key
        self.errors.append(f"{path}: expected {expected}, got {type(value).__name__}")

    def text(self, key: str) -> str | None:
        """A string, with lone surrogates (``"\\ud800"`` in JSON) replaced by U+FFFD."""
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value if value.isascii() else _valid_unicode(value)
        self._wrong(key, "string", value)
        return None

    def integer(self, key: str) -> int | None:
        """An integer; integral floats count, bools (a subclass of int) do not."""
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self._wrong(key, "integer", value)
        return None

    def number(self, key: str) -> float | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        self._wrong(key, "number", value)
        return None

    def flag(self, key: str) -> bool | None:
        value = self.obj.get(key)
        if value is None or isinstance(value, bool):
            return value
        self._wrong(key, "boolean", value)
        return None

    def mapping(self, key: str) -> JsonObject | None:
        value = self.obj.get(key)
        if value is None or isinstance(value, dict):
            return value
        self._wrong(key, "object", value)
        return None

    def array(self, key: str) -> list[Any] | None:
        value = self.obj.get(key)
        if value is None or isinstance(value, list):
            return value
        self._wrong(key, "array", value)
        return None
