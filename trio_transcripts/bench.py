"""``python -m trio_transcripts bench``: throughput, latency and footprint, measured.

Three phases in one run, each against a fresh simulator in its own process (so the worker's
core is its own):

1. ceiling: a bare trio-websocket client reads the channel and parses each frame, nothing
   else: the most any worker could read from this simulator on this machine (at most 10 s);
2. worker: the real pipeline (parser, coalescer, ring, writer, sink) for ``--duration``
   seconds; frames/s, utterances/s and points/s persisted, latency from the simulator
   sending a final to the sink acknowledging its point, peak RSS and CPU seconds;
3. drain: a full 10,000-slot buffer written into the sink, timed (the shutdown target).

The sink is InfluxDB when ``INFLUX_URL`` is set (1.x, ``INFLUX_DATABASE`` or ``bench``), else
a throwaway ``influxd`` when one is on PATH, else (or with ``--sink null``) a null sink that
acknowledges at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_websocket

from .assemble import configured_source, token_manager
from .config import Config
from .lineproto import tiebreak
from .model import Merge, Utterance
from .sinks import Sink, WriteResult
from .sinks.deadletter import DeadLetters
from .sinks.influx import InfluxSettings, InfluxSink
from .sources import Emit, Gap, Source, SourceEvent, SourceHealth
from .sources._socket import SocketOptions, queued_message
from .testing.influxd import InfluxdUnavailable, running_influxd
from .wire.genesys import parse_notification
from .worker import Worker

CEILING_S = 10.0
"""The ceiling phase runs at most this long: a soak needs no 10-minute ceiling."""


class NullSink:
    """Acknowledges everything at once: the pipeline's own cost, without a database."""

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        await trio.lowlevel.checkpoint()
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def describe(self) -> str:
        return "null sink"


LATENCY_SAMPLE = 16
"""Latency is measured on one utterance in 16 (chosen by utteranceId, so the same in the
simulator's truth): a soak of 400,000 utterances must not measure the harness's memory."""


def _sampled(utterance_id: str) -> bool:
    return tiebreak(utterance_id) % LATENCY_SAMPLE == 0


class _AckTimes:
    """Wraps a sink; records when sampled final utterances were acknowledged (epoch ms)."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.acked: dict[tuple[str, str], float] = {}

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        result = await self.inner.write(utterances)
        now = time.time() * 1000
        for u in utterances:
            if u.final and _sampled(u.utterance_id):
                self.acked.setdefault(u.key, now)
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()

    def describe(self) -> str:
        return self.inner.describe()


class _FrameClock:
    """Wraps a source; notes when the first and the latest frame arrived.

    The rate is taken over that span, so neither the worker's start (token, channel, 1,000
    subscriptions) nor idle time after a stream that ended early dilutes it.
    """

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.first: float | None = None
        self.latest = 0.0

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def merge(self) -> Merge:
        return self.inner.merge

    @property
    def gaps(self) -> Sequence[Gap]:
        return self.inner.gaps

    def waiting_for(self) -> str | None:
        return self.inner.waiting_for()

    def health(self, now: float) -> SourceHealth:
        return self.inner.health(now)

    def reconnects(self) -> Mapping[str, int]:
        return self.inner.reconnects()

    def add_conversation(self, conversation_id: str) -> None:
        self.inner.add_conversation(conversation_id)

    def remove_conversation(self, conversation_id: str) -> None:
        self.inner.remove_conversation(conversation_id)

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async def timed(event: SourceEvent, frame: str | bytes) -> None:
            self.latest = trio.current_time()
            if self.first is None:
                self.first = self.latest
            await emit(event, frame)

        await self.inner.run(timed, task_status=task_status)


@dataclass
class _Simulator:
    info: dict[str, Any]
    truth_path: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def _simulator(args: argparse.Namespace, workdir: Path, name: str) -> Iterator[_Simulator]:
    truth = workdir / f"truth-{name}.jsonl"
    command = [
        sys.executable,
        "-m",
        "trio_transcripts",
        "simulate",
        "--calls",
        str(args.calls),
        "--utterances",
        str(args.utterances),
        "--rate",
        str(args.rate),
        "--seed",
        str(args.seed),
        "--truth",
        str(truth),
        "--exit-when-done",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        yield _Simulator(info, truth, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _ceiling(sim: _Simulator, duration: float) -> float:
    """Frames/s a bare client reads and parses from one channel (no ping, no emit, no ring)."""
    api = sim.info["api_url"]
    async with httpx.AsyncClient(base_url=api) as client:
        token = (
            await client.post(
                "/oauth/token",
                auth=("sim-client", "sim-secret"),
                data={"grant_type": "client_credentials"},
            )
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        channel = (await client.post("/api/v2/notifications/channels", headers=headers)).json()
        topics = [
            {"id": f"v2.conversations.{c}.transcription"} for c in sim.info["conversation_ids"]
        ]
        await client.put(
            f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
            json=topics,
            headers=headers,
        )
    frames = 0
    first: float | None = None
    latest = 0.0
    with trio.move_on_after(duration) as budget:
        async with trio_websocket.open_websocket_url(
            channel["connectUri"],
            max_message_size=16 << 20,
            message_queue_size=SocketOptions.message_queue_size,
        ) as ws:
            try:
                while True:
                    # The worker's own read path, so the ceiling stays a ceiling.
                    message = queued_message(ws)
                    if message is None:
                        message = await ws.get_message()
                    parse_notification(message)
                    frames += 1
                    latest = trio.current_time()
                    if first is None:
                        first = latest
            except trio_websocket.ConnectionClosed:
                pass
    # Over the same span as the worker's rate: first frame to last, or to the time limit.
    end = trio.current_time() if budget.cancelled_caught else latest
    return frames / (end - first) if first is not None and end > first else 0.0


async def _worker_phase(
    sim: _Simulator, sink: Sink, duration: float, workdir: Path
) -> dict[str, Any]:
    info = sim.info
    config = Config(
        client_id="sim-client",
        client_secret="sim-secret",
        login_url=info["login_url"],
        api_url=info["api_url"],
        conversation_ids=tuple(info["conversation_ids"]),
        dead_letter_path=workdir / "dead.jsonl",
        status_interval_s=3600,
    )
    tokens = token_manager(config)
    clock = _FrameClock(configured_source(config, tokens))
    tap = _AckTimes(sink)
    worker = Worker(
        source=clock,
        sink=tap,
        dead_letters=DeadLetters(config.dead_letter_path),
        tokens=tokens,
        settings=config,
    )
    cpu_before = time.process_time()
    rss_samples: list[float] = []
    sampler = trio.CancelScope()

    async def sample_rss() -> None:
        with sampler:
            while True:
                rss_samples.append(_current_rss_mb())
                await trio.sleep(max(duration / 20, 0.5))

    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        started = trio.current_time()
        nursery.start_soon(sample_rss)
        # The window ends early when the simulator has sent its whole stream and exited:
        # idle seconds after that would only dilute the rate.
        with trio.move_on_after(duration):
            await trio.to_thread.run_sync(sim.process.wait, abandon_on_cancel=True)
        sampler.cancel()
        ended_early = trio.current_time() - started < duration
        end = clock.latest if ended_early else trio.current_time()
        window = end - (clock.first if clock.first is not None else started)
        frames = worker.account.frames
        peak_buffer = worker.queue.statistics().peak
        stop_at = trio.current_time()
        worker.stop()
    shutdown_s = trio.current_time() - stop_at
    cpu = time.process_time() - cpu_before
    latencies = await trio.to_thread.run_sync(_latencies, sim.truth_path, tap.acked)
    return {
        "frames": frames,
        "window_s": window,
        "stream_ended_early": ended_early,
        "persisted": worker.account.persisted,
        "latencies": latencies,
        "cpu_s": cpu,
        "peak_buffer": peak_buffer,
        "shutdown_s": shutdown_s,
        "account": worker.account.summary(),
        "rss_samples": rss_samples,
    }


async def _drain_phase(make_sink: Callable[[], Sink]) -> float:
    """Seconds to write a full 10,000-slot buffer into the sink, in 5,000-point batches."""
    now = int(time.time() * 1000)
    batch = [
        Utterance(
            f"drain-{i % 100}",
            f"drain-{now}-{i}",
            ("agent", "customer")[i % 2],
            "a full buffer drained at shutdown",
            0.9,
            now + i,
            now + i + 900,
            True,
            3,
        )
        for i in range(10_000)
    ]
    sink = make_sink()
    await sink.open()
    started = time.perf_counter()
    await sink.write(batch[:5_000])
    await sink.write(batch[5_000:])
    elapsed = time.perf_counter() - started
    await sink.aclose()
    return elapsed


def _latencies(truth_path: Path, acked: dict[tuple[str, str], float]) -> list[float]:
    """Final sent -> acknowledged, in ms, for the sampled utterances (streams the truth)."""
    latencies = []
    with open(truth_path, encoding="utf-8") as truth:
        for line in truth:
            record = json.loads(line)
            when = acked.get((record["conversationId"], record["utteranceId"]))
            if when is not None:
                latencies.append(when - record["sentAt"])
    return latencies


def _current_rss_mb() -> float:
    """Resident memory now (Linux ``/proc``), for the flatness of a soak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@contextlib.asynccontextmanager
async def _influx_url(args: argparse.Namespace) -> AsyncIterator[tuple[str | None, str]]:
    if args.sink == "null":
        yield None, "null sink"
        return
    url = os.environ.get("INFLUX_URL")
    if url:
        yield url, f"InfluxDB at {url}"
        return
    try:
        with running_influxd() as server:
            yield server.url, "local influxd 1.6 (temp dir)"
    except InfluxdUnavailable:
        yield None, "null sink (no INFLUX_URL and no influxd on PATH)"


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trio-transcripts-bench-") as tmp:
        workdir = Path(tmp)
        async with _influx_url(args) as (url, sink_name):
            database = os.environ.get("INFLUX_DATABASE", "bench")

            def make_sink() -> Sink:
                if url is None:
                    return NullSink()
                return InfluxSink(InfluxSettings(url=url, database=database))

            with _simulator(args, workdir, "ceiling") as sim:
                ceiling = await _ceiling(sim, min(args.duration, CEILING_S))
            with _simulator(args, workdir, "worker") as sim:
                run = await _worker_phase(sim, make_sink(), args.duration, workdir)
            drain_s = await _drain_phase(make_sink)
    frames_per_s = run["frames"] / run["window_s"]
    persisted_per_s = run["persisted"] / run["window_s"]
    latencies = run["latencies"]
    return {
        "sink": sink_name,
        "rate": args.rate or "max",
        "calls": args.calls,
        "duration_s": round(run["window_s"], 2),
        "stream_ended_early": run["stream_ended_early"],
        "frames_per_s": round(frames_per_s),
        "utterances_per_s": round(persisted_per_s),
        "points_per_s": round(persisted_per_s),
        "latency_ms": {
            "p50": round(_percentile(latencies, 50), 1),
            "p95": round(_percentile(latencies, 95), 1),
            "p99": round(_percentile(latencies, 99), 1),
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
            "samples": len(latencies),
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_mb_first_last": [round(run["rss_samples"][0], 1), round(run["rss_samples"][-1], 1)]
        if run["rss_samples"]
        else None,
        "rss_mb_max_worker": round(max(run["rss_samples"]), 1) if run["rss_samples"] else None,
        "cpu_s": round(run["cpu_s"], 2),
        "ceiling_frames_per_s": round(ceiling),
        "ratio_to_ceiling": round(frames_per_s / ceiling, 3) if ceiling else None,
        "peak_buffer": run["peak_buffer"],
        "shutdown_s": round(run["shutdown_s"], 3),
        "drain_10k_s": round(drain_s, 3),
        "account": run["account"],
    }


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench.description = __doc__
    bench.formatter_class = argparse.RawDescriptionHelpFormatter
    bench.add_argument("--duration", type=float, default=10.0, metavar="SECONDS")
    bench.add_argument("--rate", type=float, default=0.0, help="frames/s; 0: as fast as possible")
    bench.add_argument("--calls", type=int, default=1000, help="concurrent conversations")
    bench.add_argument("--utterances", type=int, default=80, help="per call")
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--sink", choices=["auto", "null"], default="auto")
    bench.add_argument("--json", action="store_true", help="one JSON object on stdout")


def main(args: argparse.Namespace) -> int:
    result = trio.run(_bench, args)
    if args.json:
        print(json.dumps(result))
        return 0
    latency = result["latency_ms"]
    print(f"sink: {result['sink']}; {result['calls']} conversations; rate {result['rate']}")
    print(
        f"read:       {result['frames_per_s']:>9,} frames/s "
        f"({result['ratio_to_ceiling']} of the transport ceiling, "
        f"{result['ceiling_frames_per_s']:,} frames/s)"
    )
    print(f"persisted:  {result['utterances_per_s']:>9,} utterances/s = points/s")
    print(
        f"latency:    p50 {latency['p50']} ms, p95 {latency['p95']} ms, p99 {latency['p99']} ms "
        f"({latency['samples']} finals, simulator send -> sink acknowledgement)"
    )
    print(
        f"footprint:  peak RSS {result['peak_rss_mb']} MB, {result['cpu_s']} CPU s, "
        f"peak buffer {result['peak_buffer']}"
    )
    print(
        f"shutdown:   {result['shutdown_s']} s; a full 10,000-slot buffer drains in "
        f"{result['drain_10k_s']} s"
    )
    print(f"account:    {result['account']}")
    if result["stream_ended_early"]:
        print(
            f"note:       the simulator's stream ended after {result['duration_s']} s; rates "
            "are over that window (raise --utterances for a longer run)"
        )
    return 0
