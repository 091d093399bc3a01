"""Running the pipeline inside a Trio application: :func:`run_worker` and
:func:`open_transcript_stream`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from .assemble import assemble
from .config import Config
from .model import Utterance
from .sinks import Rejected, Sink, WriteResult
from .worker import Worker


async def run_worker(
    config: Config,
    *,
    sink: Sink | None = None,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a worker: ``worker = await nursery.start(run_worker, config)``.

    ``sink`` replaces the configured store. Runs until cancelled (or ``worker.stop()``);
    cancellation performs the same ordered drain, shielded and bounded by
    ``config.shutdown_timeout_s``.
    """
    await assemble(config, store=sink).run(task_status=task_status)


class ChannelSink:
    """Hands utterances to the application through a memory channel (no buffer), so the
    application's pace is the backpressure. What it no longer reads is returned as rejected
    (and so dead-lettered)."""

    def __init__(self, send: trio.MemorySendChannel[Utterance]) -> None:
        self._send = send

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        for i, utterance in enumerate(utterances):
            try:
                await self._send.send(utterance)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                reason = "the application stopped reading the stream"
                return WriteResult(
                    acknowledged=i,
                    rejected=tuple(Rejected(u, reason) for u in utterances[i:]),
                )
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        await self._send.aclose()

    def describe(self) -> str:
        return "the application (open_transcript_stream)"


@asynccontextmanager
async def open_transcript_stream(
    config: Config,
) -> AsyncIterator[trio.MemoryReceiveChannel[Utterance]]:
    """Coalesced utterances for the application itself, with no sink::

        async with open_transcript_stream(config) as utterances:
            async for utterance in utterances:
                ...

    With ``config.spool_dir`` set, what the application does not take within
    ``spool_after_s`` is spooled and handed over later, as for any sink. Leaving the block
    shuts the worker down in order; partials it flushes then, which the application no longer
    reads, go to the dead-letter file. Everything the worker opened is closed on the way out.
    """
    send, receive = trio.open_memory_channel[Utterance](0)
    async with trio.open_nursery() as nursery:
        worker: Worker = await nursery.start(assemble(config, store=ChannelSink(send)).run)
        try:
            async with receive:
                yield receive
        finally:
            worker.stop()
