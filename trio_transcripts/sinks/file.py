"""The embedded default sink: line protocol appended to a local file, fsynced per batch.

Same schema and idempotent timestamps as the InfluxDB sink, so the file can be loaded into
InfluxDB later (``curl --data-binary @transcripts.lp 'http://host:8086/write?db=x'`` on 1.x,
``influx write -f transcripts.lp`` on 2.x) and a line written twice stays one point.

A full disk is an outage (``diskfull.py``): a batch that does not fit is cut off again, so the
file never holds half a line, and the write waits for space, holding the writer (and, once
the ring is full, the socket) as a database that is down does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from ..diskfull import Disk, append_whole, cut_torn_tail
from ..errors import FatalSinkError
from ..lineproto import Schema, encode_batch
from ..model import Utterance
from . import WriteResult

log = logging.getLogger("trio_transcripts.sink")


class FileSink:
    def __init__(
        self, path: str | os.PathLike[str], schema: Schema = Schema(), *, disk: Disk | None = None
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.disk = disk or Disk()
        self._open = False

    def describe(self) -> str:
        return f"file {self.path.resolve()}"

    async def ping(self) -> bool:
        await trio.lowlevel.checkpoint()
        return self._open

    async def open(self) -> None:
        try:
            cut = await self.disk.write(self.path, partial(cut_torn_tail, self.path))
        except OSError as exc:
            raise FatalSinkError(
                f"cannot open {self.path} for appending: {exc} (--output names a file in a "
                f"writable directory)"
            ) from exc
        if cut:
            log.warning(
                "%s: cut %d bytes of a torn last line (a write a crash interrupted, never "
                "acknowledged: the journal has that time as the worker away)",
                self.path,
                cut,
            )
        self._open = True

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        if not self._open:
            raise RuntimeError("FileSink.write before open()")
        body = encode_batch(list(utterances), self.schema)
        try:
            await self.disk.write(self.path, partial(append_whole, self.path, body))
        except OSError as exc:
            raise FatalSinkError(f"cannot append to {self.path}: {exc}", utterances) from exc
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self._open = False
