"""The embedded default sink: line protocol appended to a local file, fsynced per batch.

Same schema and idempotent timestamps as the InfluxDB sink, so the file can be loaded into
InfluxDB later (``curl --data-binary @transcripts.lp 'http://host:8086/write?db=x'`` on 1.x,
``influx write -f transcripts.lp`` on 2.x) and a line written twice stays one point.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import trio

from ..errors import FatalSinkError
from ..lineproto import Schema, encode_batch
from ..model import Utterance
from . import WriteResult


class FileSink:
    def __init__(self, path: str | os.PathLike[str], schema: Schema = Schema()) -> None:
        self.path = Path(path)
        self.schema = schema
        self._file: BinaryIO | None = None

    def describe(self) -> str:
        return f"file {self.path.resolve()}"

    async def ping(self) -> bool:
        await trio.lowlevel.checkpoint()
        return self._file is not None and not self._file.closed

    async def open(self) -> None:
        def _open() -> BinaryIO:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.path, "ab", buffering=0)  # no buffer to fail again on close

        self._file = await trio.to_thread.run_sync(_open)

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        if self._file is None:
            raise RuntimeError("FileSink.write before open()")
        body = encode_batch(list(utterances), self.schema)
        file = self._file

        def _append() -> None:
            remaining = memoryview(body)
            while remaining:  # an unbuffered write may be short
                remaining = remaining[file.write(remaining) :]
            os.fsync(file.fileno())

        try:
            await trio.to_thread.run_sync(_append)
        except OSError as exc:
            raise FatalSinkError(f"cannot append to {self.path}: {exc}", utterances) from exc
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
