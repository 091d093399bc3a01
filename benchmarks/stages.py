"""Microseconds of CPU per frame, stage by stage, on the bench's own frames.

    python benchmarks/stages.py [--source notifications|fragments] [--calls 1000] [--repeat 5]

Renders the load generator's stream (``testing/loadgen.py``: the same calls and frames as
``bench``) and runs each stage of the worker's per-frame path on all of it, alone, in this
process, timed with ``time.process_time``:

* wsproto: the stream's bytes through wsproto's frame parser and UTF-8 decoding (what
  trio-websocket's reader task does for each message, without the task and the channel);
* json: ``json.loads`` of each frame (what the ceiling does);
* decode: the worker's parser, frame -> typed event;
* route: the router and coalescer, event -> actions;
* redact: each final through the default screen (``sensitive.py``: card numbers, security
  codes), which the worker's router runs on its way out;
* ring: each utterance through the backpressure queue (put, then taken in batches of 500);
* encode: the line protocol of each utterance, in batches of 500;
* http: ``InfluxSink.write`` of those batches into a throwaway influxd (client CPU only,
  when one is on PATH), less the encode stage it includes: gzip and httpx.

Per frame: a stage's CPU over the number of frames. Medians of ``--repeat`` rounds, with the
range. What ``bench`` measures on top of the sum (trio-websocket's task and channel, the
scheduler, the writer's task) is the difference to its ``cpu_us_per_frame``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import trio
from wsproto.frame_protocol import FrameProtocol

from trio_transcripts.backpressure import BackpressureQueue
from trio_transcripts.coalesce import Coalescer
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import encode_batch
from trio_transcripts.model import Merge, Utterance
from trio_transcripts.router import Enqueue, Router
from trio_transcripts.sensitive import Screen
from trio_transcripts.sinks.influx import InfluxSink
from trio_transcripts.testing.influxd import InfluxdUnavailable, running_influxd
from trio_transcripts.testing.loadgen import render
from trio_transcripts.testing.simulator import SimConfig
from trio_transcripts.wire.fragments import parse_fragment
from trio_transcripts.wire.genesys import parse_notification

BATCH = 500


CHUNK = 1_000
"""Frames are taken through the stages a thousand at a time, so that, as in the worker, only a
few objects are alive at once (a quarter of a million would make the collector the cost)."""


def _round(source: str, stream: bytes, ends: list[int], influx_url: str | None) -> dict[str, float]:
    times = dict.fromkeys(("wsproto", "json", "decode", "route", "redact", "ring", "encode"), 0.0)
    clock = time.process_time
    protocol = FrameProtocol(client=True, extensions=[])
    merge = Merge.APPEND if source == "fragments" else Merge.REVISE
    router = Router(Coalescer(merge), Screen(frozenset()))  # redaction apart: its own stage
    screen = Screen()  # the default redaction (card, cvv), as a worker has it
    queue: BackpressureQueue[Utterance] = BackpressureQueue(10_000)  # the worker's
    batches: list[list[Utterance]] = []
    frames = 0
    for first in range(0, len(ends), CHUNK):
        last = min(first + CHUNK, len(ends)) - 1
        at = clock()
        protocol.receive_bytes(stream[ends[first - 1] if first else 0 : ends[last]])
        texts = [frame.payload for frame in protocol.received_frames()]
        times["wsproto"] += clock() - at
        frames += len(texts)
        at = clock()
        for text in texts:
            json.loads(text)
        times["json"] += clock() - at
        at = clock()
        if source == "fragments":
            events: list[Any] = [parse_fragment(t, conversation_id="unknown") for t in texts]
        else:
            events = [parse_notification(t) for t in texts]
        times["decode"] += clock() - at
        at = clock()
        utterances = [
            action.utterance
            for event in events
            for action in router.route(event, 0, 0)
            if isinstance(action, Enqueue)
        ]
        times["route"] += clock() - at
        at = clock()
        utterances = [out for u in utterances for out in screen.final(u, 0)]
        times["redact"] += clock() - at
        at = clock()
        taken = []
        for u in utterances:
            queue.put_nowait(u)
            if len(queue) == BATCH:
                taken.append(queue.take_nowait(BATCH))
        times["ring"] += clock() - at
        at = clock()
        for batch in taken:
            encode_batch(batch)
        times["encode"] += clock() - at
        if influx_url is not None:  # kept for the sink, after the loop
            batches.extend(taken)
    if influx_url is not None:
        # InfluxSink.write encodes too: the rest is gzip (bodies above 32 KiB) and httpx.
        times["http"] = trio.run(_http_cpu, influx_url, batches) - times["encode"]
    return {stage: seconds / frames * 1e6 for stage, seconds in times.items()}


async def _http_cpu(url: str, batches: list[list[Utterance]]) -> float:
    sink = InfluxSink(InfluxSettings(url=url, database="stages"))
    await sink.open()
    cpu = 0.0
    for batch in batches:
        started = time.process_time()
        await sink.write(batch)
        cpu += time.process_time() - started
    await sink.aclose()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", choices=["notifications", "fragments"], default="notifications")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--utterances", type=int, default=80)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-influxd", action="store_true")
    args = parser.parse_args()
    rendered = render(
        SimConfig(calls=args.calls, utterances=args.utterances, seed=1, source=args.source)
    )
    frames = rendered.frames
    rendered.finals.clear()  # the truth: 80,000 records the collector would walk, not needed
    rounds: list[dict[str, float]] = []

    def run(url: str | None) -> None:
        for _ in range(args.repeat):
            rounds.append(_round(args.source, rendered.stream, rendered.ends, url))

    if args.no_influxd:
        run(None)
    else:
        try:
            with running_influxd() as server:
                run(server.url)
        except InfluxdUnavailable:
            run(None)
    print(f"{args.source}: {frames:,} frames; us of CPU per frame, median (range)")
    total = 0.0
    for stage in rounds[0]:
        values = [r[stage] for r in rounds]
        median = statistics.median(values)
        if stage != "json":
            total += median
        print(f"  {stage:<8} {median:6.2f} ({min(values):.2f}-{max(values):.2f})")
    print(f"  {'sum':<8} {total:6.2f} (without json, which the worker's decode replaces)")


if __name__ == "__main__":
    main()
