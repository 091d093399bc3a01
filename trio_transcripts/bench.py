"""``python -m trio_transcripts bench``: throughput, latency and footprint, measured.

The load comes from the load generator (``testing/loadgen.py``) in its own process: every
frame of ``--calls`` calls of ``--source`` rendered and encoded before the clock starts, then
written in large slices (with ``--rate``, each frame on its own at its due time, as calls send
them). Each of ``--repeat`` runs (a fresh generator each) has three phases:

1. generator: a raw socket reader that only counts frame headers, the generator's own rate.
   The run fails loudly when that is under 3x the ceiling: the numbers would measure it;
2. ceiling: a bare trio-websocket client, with the worker's queue and buffer sizes, reads
   each frame by the public ``get_message`` and ``json.loads`` it, nothing else: what a
   client that does nothing with the frames costs, at the same rate (at most 10 s);
3. worker: the real pipeline (source, router, ring, writer, sink) for ``--duration`` seconds
   or until the whole stream was read: frames/s, utterances/s and points/s persisted, CPU per
   frame, latency from the generator handing a final to its socket to the sink acknowledging
   its point, peak RSS.

With ``--malformed N`` the stream opens with N distinct frames no parser takes (cut short, or
not JSON; ``testing/loadgen.py``): the flood's rate runs from the first frame read to the
last one's dead-letter record on disk (written and fsynced), beside the ceiling's rate over
the same frames, and every record is read back and counted (each frame once, whole).

Each figure is the median of the runs, with its range (this machine moves by +-30 % from run
to run; compare ratios measured in one run). Then a full 10,000-slot buffer is written into
the sink, timed (the shutdown target).

The sink is InfluxDB when ``INFLUX_URL`` is set (1.x, ``INFLUX_DATABASE`` or ``bench``), else
a throwaway ``influxd`` when one is on PATH, else (or with ``--sink null``) a null sink that
acknowledges at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from .assemble import configured_source, token_manager
from .auth import Credentials, TokenManager
from .config import Config
from .influx_settings import InfluxSettings
from .model import Merge, Utterance
from .sensitive import Kind, describe_kinds, parse_kinds
from .sinks import Sink, WriteResult
from .sinks.deadletter import DeadLetters, read_dead_letters
from .sinks.influx import InfluxSink
from .sources import Emit, Gap, Source, SourceEvent
from .sources._socket import SocketOptions
from .sources.channel_api import ChannelApi
from .sources.fragment_stream import FragmentStreamSettings
from .testing.influxd import InfluxdUnavailable, running_influxd
from .testing.loadgen import FrameCounter, upgrade_request
from .testing.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from .wire.genesys import transcription_topic
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
"""Latency is measured on one utterance in 16 (by the hash of its id, which is stable within
this process: the truth files hold every final), so a soak of 400,000 utterances does not
measure the harness's memory, and the sampling costs the worker's CPU figure nothing."""


def _sampled(utterance_id: str) -> bool:
    return hash(utterance_id) % LATENCY_SAMPLE == 0


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

    def __init__(self, inner: Source, total: int) -> None:
        self.inner = inner
        self.total = total
        self.count = 0
        self.all_read = trio.Event()
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

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async def timed(event: SourceEvent, frame: str | bytes) -> None:
            self.latest = trio.current_time()
            if self.first is None:
                self.first = self.latest
            self.count += 1
            if self.count == self.total:
                self.all_read.set()
            await emit(event, frame)

        await self.inner.run(timed, task_status=task_status)


class _LetterClock(DeadLetters):
    """The worker's dead letters, noting when the last of the ``flood`` frames' records was
    on disk (written and fsynced): the flood's rate is frames in to records on disk."""

    def __init__(self, path: Path, flood: int) -> None:
        super().__init__(path)
        self.flood = flood
        self.flood_on_disk_at = 0.0

    async def flush(self, deadline: float = math.inf) -> None:
        await super().flush(deadline)
        if self.flood and not self.flood_on_disk_at and self.counts.get("frame", 0) >= self.flood:
            self.flood_on_disk_at = trio.current_time()


@dataclass
class _Generator:
    info: dict[str, Any]
    truth_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def frames(self) -> int:
        return int(self.info["frames"])

    def stop(self) -> None:
        """Stop it; it writes its truth files (one a socket) on the way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


@contextlib.contextmanager
def _generator(args: argparse.Namespace, workdir: Path, name: str) -> Iterator[_Generator]:
    """The load generator (``testing/loadgen.py``) in its own process, stream rendered."""
    truth_dir = workdir / name
    truth_dir.mkdir()
    command = [
        sys.executable,
        "-m",
        "trio_transcripts.testing.loadgen",
        "--source",
        args.source,
        "--calls",
        str(args.calls),
        "--utterances",
        str(args.utterances),
        "--rate",
        str(args.rate),
        "--seed",
        str(args.seed),
        "--truth-dir",
        str(truth_dir),
        "--malformed",
        str(args.malformed),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    generator = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise BenchError(f"the load generator exited ({process.wait()}) before it was ready")
        generator = _Generator(json.loads(line), truth_dir, process)
        yield generator
    finally:
        if generator is not None:
            generator.stop()
        else:
            process.kill()
            process.wait()


class BenchError(Exception):
    """The run cannot give a meaningful number (the generator was the limit, say)."""


@dataclass(frozen=True)
class _Stream:
    """Where a client of ``source`` connects, with its headers."""

    url: str
    headers: list[tuple[bytes, bytes]]


async def _open_stream(info: Mapping[str, Any], source: str) -> _Stream:
    """A token, and for the Notifications source a channel subscribed to every call: with
    the worker's own clients (``auth.py``, ``sources/channel_api.py``)."""
    tokens = TokenManager(Credentials(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, info["login_url"]))
    async with trio.open_nursery() as nursery:
        await nursery.start(tokens.run)
        try:
            if source == "fragments":
                token = await tokens.get()
                return _Stream(
                    info["fragment_stream_url"], [(b"Authorization", f"Bearer {token}".encode())]
                )
            api = ChannelApi(info["api_url"], tokens)
            try:
                channel = await api.create_channel()
                topics = [transcription_topic(c) for c in info["conversation_ids"]]
                await api.subscribe(channel.id, "POST", topics)
            finally:
                await api.aclose()
            return _Stream(channel.connect_uri, [])
        finally:
            nursery.cancel_scope.cancel()
            await tokens.aclose()


@dataclass(frozen=True)
class _Reading:
    frames: int
    span_s: float
    cpu_s: float
    flood_s: float = 0.0  # from the first frame to the last of ``--malformed``

    @property
    def per_s(self) -> float:
        return self.frames / self.span_s if self.span_s > 0 else 0.0


def _flood_per_s(flood: int, span_s: float) -> float:
    return flood / span_s if flood and span_s > 0 else 0.0


async def _generator_rate(gen: _Generator, source: str, limit_s: float) -> _Reading:
    """Frames/s a raw socket reader takes off the generator: it only counts frame headers.

    The generator's own rate: the bench's numbers mean something only when this is well
    above what the WebSocket clients read.
    """
    where = await _open_stream(gen.info, source)
    url = urllib.parse.urlsplit(where.url)
    counter = FrameCounter()
    cpu_before = time.process_time()
    stream = await trio.open_tcp_stream(url.hostname or "127.0.0.1", url.port or 80)
    async with stream:
        await stream.send_all(upgrade_request(where.url, where.headers))
        # From the request on: a small stream comes whole with the handshake's answer, in
        # one read, and a span from its first read would be 0 (0 frames/s: a false
        # "generator-limited"). The handshake in the span only understates the generator.
        first = trio.current_time()
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        latest = trio.current_time()
        counter.feed(head.partition(b"\r\n\r\n")[2])
        with trio.move_on_after(limit_s):
            while counter.frames < gen.frames:
                data = await stream.receive_some(1 << 20)
                if not data:
                    break
                latest = trio.current_time()
                counter.feed(data)
    return _Reading(counter.frames, latest - first, time.process_time() - cpu_before)


async def _ceiling(gen: _Generator, source: str, limit_s: float, flood: int) -> _Reading:
    """Frames/s a bare trio-websocket client reads and JSON-decodes (or fails to: the
    ``flood`` first frames are malformed), with the worker's own connect options, through
    the public ``get_message`` (not the worker's read path: a faster path would move the
    ceiling with it, issue 23): what a client that does nothing else costs here."""
    where = await _open_stream(gen.info, source)
    options = FragmentStreamSettings("").socket if source == "fragments" else SocketOptions()
    frames = 0
    first: float | None = None
    latest = flood_at = 0.0
    cpu_before = time.process_time()
    with trio.move_on_after(limit_s):
        async with trio_websocket.open_websocket_url(
            where.url,
            extra_headers=where.headers,
            max_message_size=options.max_message_size,
            message_queue_size=options.message_queue_size,
            receive_buffer_size=options.receive_buffer_size,
        ) as ws:
            while frames < gen.frames:
                message = await ws.get_message()
                with contextlib.suppress(ValueError):
                    json.loads(message)
                frames += 1
                latest = trio.current_time()
                if first is None:
                    first = latest
                if frames == flood:
                    flood_at = latest
    span = latest - first if first is not None else 0.0
    flood_s = flood_at - first if first is not None and flood_at else 0.0
    return _Reading(frames, span, time.process_time() - cpu_before, flood_s)


async def _worker_phase(
    gen: _Generator,
    source: str,
    sink: Sink,
    duration: float,
    flood: int,
    redact: frozenset[Kind],
) -> dict[str, Any]:
    info = gen.info
    stream_url = info["fragment_stream_url"] if source == "fragments" else None
    config = Config(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        login_url=info["login_url"],
        api_url=info["api_url"],
        stream_url=stream_url,
        conversation_ids=() if stream_url else tuple(info["conversation_ids"]),
        dead_letter_path=gen.truth_dir / "dead.jsonl",
        status_interval_s=3600,
        redact=redact,
    )
    tokens = token_manager(config)
    clock = _FrameClock(configured_source(config, tokens), gen.frames)
    letters = _LetterClock(config.dead_letter_path, flood)
    tap = _AckTimes(sink)
    worker = Worker(
        source=clock,
        sink=tap,
        dead_letters=letters,
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
        # The window ends when the whole stream was read: idle time would only dilute it.
        with trio.move_on_after(duration):
            await clock.all_read.wait()
        sampler.cancel()
        ended_early = clock.all_read.is_set()
        end = clock.latest if ended_early else trio.current_time()
        window = end - (clock.first if clock.first is not None else started)
        frames = worker.account.frames
        cpu_reading = time.process_time() - cpu_before
        peak_buffer = worker.snapshot().ring_peak
        stop_at = trio.current_time()
        worker.stop()
    shutdown_s = trio.current_time() - stop_at
    first = clock.first if clock.first is not None else started
    set_aside = await trio.to_thread.run_sync(_frames_set_aside, config.dead_letter_path)
    return {
        "flood_s": letters.flood_on_disk_at - first if letters.flood_on_disk_at else 0.0,
        "malformed_set_aside": len(set_aside),
        "malformed_distinct": len(set(set_aside)),
        "frames": frames,
        "window_s": window,
        "stream_ended_early": ended_early,
        "persisted": worker.account.persisted,
        "cpu_s": cpu_reading,
        "peak_buffer": peak_buffer,
        "shutdown_s": shutdown_s,
        "account": worker.account.summary(),
        "rss_samples": rss_samples,
        "acked": tap.acked,
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


def _frames_set_aside(path: Path) -> list[str]:
    """Every frame the dead-letter file holds, whole, in the order they were set aside."""
    if not path.exists():
        return []
    return [r["frame"] for r in read_dead_letters(path) if r["kind"] == "frame"]


def _latencies(truth_dir: Path, acked: dict[tuple[str, str], float]) -> tuple[list[float], int]:
    """Final sent -> acknowledged, in ms, for the sampled utterances, and how many finals the
    generator sent to the worker (its sockets after the raw reader's and the ceiling's)."""
    latencies = []
    sent = 0
    for path in sorted(truth_dir.glob("truth-*.jsonl")):
        if int(path.stem.removeprefix("truth-")) < WORKER_SOCKETS_FROM:
            continue
        with open(path, encoding="utf-8") as truth:
            for line in truth:
                sent += 1
                record = json.loads(line)
                when = acked.get((record["conversationId"], record["utteranceId"]))
                if when is not None:
                    latencies.append(when - record["sentAt"])
    return latencies, sent


WORKER_SOCKETS_FROM = 2
"""Each run's generator serves the raw reader (socket 0), the ceiling (1), then the worker."""


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


async def _one_run(
    args: argparse.Namespace, workdir: Path, n: int, make_sink: Callable[[], Sink]
) -> dict[str, Any]:
    """One repeat: a fresh generator; its own rate, the ceiling, then the worker."""
    with _generator(args, workdir, f"run-{n}") as gen:
        limit = min(args.duration, CEILING_S)
        raw = await _generator_rate(gen, args.source, limit)
        ceiling = await _ceiling(gen, args.source, limit, args.malformed)
        run = await _worker_phase(
            gen, args.source, make_sink(), args.duration, args.malformed, args.redact
        )
        gen.stop()
        latencies, sent = await trio.to_thread.run_sync(_latencies, gen.truth_dir, run["acked"])
    frames_per_s = run["frames"] / run["window_s"] if run["window_s"] > 0 else 0.0
    persisted_per_s = run["persisted"] / run["window_s"] if run["window_s"] > 0 else 0.0
    malformed_per_s = _flood_per_s(args.malformed, run["flood_s"])
    ceiling_malformed_per_s = _flood_per_s(args.malformed, ceiling.flood_s)
    return {
        "malformed_per_s": malformed_per_s,
        "ceiling_malformed_per_s": ceiling_malformed_per_s,
        "malformed_ratio": malformed_per_s / ceiling_malformed_per_s
        if ceiling_malformed_per_s
        else 0.0,
        "malformed_set_aside": run["malformed_set_aside"],
        "malformed_distinct": run["malformed_distinct"],
        "frames": run["frames"],
        "window_s": run["window_s"],
        "stream_ended_early": run["stream_ended_early"],
        "frames_per_s": frames_per_s,
        "utterances_per_s": persisted_per_s,
        "generator_frames_per_s": raw.per_s,
        "ceiling_frames_per_s": ceiling.per_s,
        "ratio_to_ceiling": frames_per_s / ceiling.per_s if ceiling.per_s else 0.0,
        "cpu_us_per_frame": run["cpu_s"] / run["frames"] * 1e6 if run["frames"] else 0.0,
        "ceiling_cpu_us_per_frame": ceiling.cpu_s / ceiling.frames * 1e6 if ceiling.frames else 0.0,
        "latencies": latencies,
        "finals_sent": sent,
        "persisted": run["persisted"],
        "cpu_s": run["cpu_s"],
        "peak_buffer": run["peak_buffer"],
        "shutdown_s": run["shutdown_s"],
        "account": run["account"],
        "rss_samples": run["rss_samples"],
    }


MEDIANS = (
    "frames_per_s",
    "utterances_per_s",
    "generator_frames_per_s",
    "ceiling_frames_per_s",
    "ratio_to_ceiling",
    "cpu_us_per_frame",
    "ceiling_cpu_us_per_frame",
    "malformed_per_s",
    "ceiling_malformed_per_s",
    "malformed_ratio",
)
"""The figures reported as the median of the repeats, with their range."""


def _median_and_range(runs: list[dict[str, Any]], key: str) -> tuple[float, list[float]]:
    values = [run[key] for run in runs]
    return statistics.median(values), [min(values), max(values)]


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trio-transcripts-bench-") as tmp:
        workdir = Path(tmp)
        async with _influx_url(args) as (url, sink_name):
            database = os.environ.get("INFLUX_DATABASE", "bench")

            def make_sink() -> Sink:
                if url is None:
                    return NullSink()
                return InfluxSink(InfluxSettings(url=url, database=database))

            runs = [await _one_run(args, workdir, n, make_sink) for n in range(args.repeat)]
            drain_s = await _drain_phase(make_sink)
    result: dict[str, Any] = {
        "source": args.source,
        "sink": sink_name,
        "rate": args.rate or "max",
        "redact": describe_kinds(args.redact),
        "calls": args.calls,
        "repeat": args.repeat,
    }
    ranges: dict[str, list[float]] = {}
    for key in MEDIANS:
        digits = 3 if key in ("ratio_to_ceiling", "malformed_ratio") else 1
        median, (low, high) = _median_and_range(runs, key)
        result[key] = round(median, digits)
        ranges[key] = [round(low, digits), round(high, digits)]
    result["points_per_s"] = result["utterances_per_s"]
    latencies = [value for run in runs for value in run["latencies"]]
    last = runs[-1]
    result.update(
        {
            "range": ranges,
            "duration_s": round(statistics.median(run["window_s"] for run in runs), 2),
            "stream_ended_early": all(run["stream_ended_early"] for run in runs),
            "latency_ms": {
                "p50": round(_percentile(latencies, 50), 1),
                "p95": round(_percentile(latencies, 95), 1),
                "p99": round(_percentile(latencies, 99), 1),
                "mean": round(statistics.fmean(latencies), 1) if latencies else None,
                "samples": len(latencies),
            },
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_mb_first_last": [
                round(last["rss_samples"][0], 1),
                round(last["rss_samples"][-1], 1),
            ]
            if last["rss_samples"]
            else None,
            "rss_mb_max_worker": round(max(last["rss_samples"]), 1)
            if last["rss_samples"]
            else None,
            "cpu_s": round(last["cpu_s"], 2),
            "peak_buffer": max(run["peak_buffer"] for run in runs),
            "shutdown_s": round(max(run["shutdown_s"] for run in runs), 3),
            "drain_10k_s": round(drain_s, 3),
            "finals_sent": [run["finals_sent"] for run in runs],
            "malformed": args.malformed,
            "malformed_set_aside": [run["malformed_set_aside"] for run in runs],
            "malformed_distinct": [run["malformed_distinct"] for run in runs],
            "persisted": [run["persisted"] for run in runs],
            "account": last["account"],
        }
    )
    generator, ceiling = ranges["generator_frames_per_s"], ranges["ceiling_frames_per_s"]
    result["generator_to_ceiling"] = round(generator[0] / ceiling[1], 2) if ceiling[1] else None
    return result


GENERATOR_MARGIN = 3.0
"""The generator must outrun the ceiling by this much, or the numbers measure the generator."""


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench.description = __doc__
    bench.formatter_class = argparse.RawDescriptionHelpFormatter
    bench.add_argument("--source", choices=["notifications", "fragments"], default="notifications")
    bench.add_argument("--duration", type=float, default=10.0, metavar="SECONDS")
    bench.add_argument("--rate", type=float, default=0.0, help="frames/s; 0: as fast as possible")
    bench.add_argument("--calls", type=int, default=1000, help="concurrent conversations")
    bench.add_argument("--utterances", type=int, default=80, help="per call")
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--repeat", type=int, default=3, metavar="N", help="runs; medians reported")
    bench.add_argument("--sink", choices=["auto", "null"], default="auto")
    bench.add_argument("--json", action="store_true", help="one JSON object on stdout")
    bench.add_argument(
        "--redact",
        type=parse_kinds,
        default=Config.redact,
        metavar="KINDS",
        help="what the worker redacts (as run's --redact; default: run's default)",
    )
    bench.add_argument(
        "--malformed",
        type=int,
        default=0,
        metavar="N",
        help="N distinct malformed frames first (truncated or not JSON): the flood's rate",
    )


def main(args: argparse.Namespace) -> int:
    result = trio.run(_bench, args)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    problem = generator_limited(result)
    if problem is not None:
        print(f"bench: FAILED: {problem}", file=sys.stderr)
        return 1
    return 0


def generator_limited(result: Mapping[str, Any]) -> str | None:
    """Why the run measured the load generator rather than the client, if it did: unpaced,
    its slowest run must outpace the fastest ceiling by ``GENERATOR_MARGIN``."""
    if result["rate"] != "max":
        return None
    generator, ceiling = (
        result["range"]["generator_frames_per_s"],
        result["range"]["ceiling_frames_per_s"],
    )
    if generator[0] >= GENERATOR_MARGIN * ceiling[1]:
        return None
    return (
        f"the load generator gave {generator[0]:,.0f} frames/s, less than "
        f"{GENERATOR_MARGIN:.0f}x the ceiling's {ceiling[1]:,.0f}: these numbers measure the "
        "generator, not the client"
    )


def _print(result: dict[str, Any]) -> None:
    ranges = result["range"]

    def figure(key: str, unit: str) -> str:
        low, high = ranges[key]
        return f"{result[key]:>9,} {unit} ({low:,.0f}-{high:,.0f})"

    latency = result["latency_ms"]
    print(
        f"source: {result['source']}; sink: {result['sink']}; {result['calls']} conversations; "
        f"rate {result['rate']}; medians of {result['repeat']} runs (range)"
    )
    print(f"generator:  {figure('generator_frames_per_s', 'frames/s')} raw socket reader")
    print(f"ceiling:    {figure('ceiling_frames_per_s', 'frames/s')} trio-websocket + json")
    print(
        f"read:       {figure('frames_per_s', 'frames/s')}, {result['ratio_to_ceiling']} of the "
        f"ceiling ({ranges['ratio_to_ceiling'][0]:.3f}-{ranges['ratio_to_ceiling'][1]:.3f})"
    )
    print(f"persisted:  {figure('utterances_per_s', 'utterances/s')} = points/s")
    print(
        f"cpu:        {result['cpu_us_per_frame']} us/frame worker, "
        f"{result['ceiling_cpu_us_per_frame']} us/frame ceiling"
    )
    print(
        f"latency:    p50 {latency['p50']} ms, p95 {latency['p95']} ms, p99 {latency['p99']} ms "
        f"({latency['samples']} finals, generator send -> sink acknowledgement)"
    )
    print(f"footprint:  peak RSS {result['peak_rss_mb']} MB, peak buffer {result['peak_buffer']}")
    print(
        f"shutdown:   {result['shutdown_s']} s; a full 10,000-slot buffer drains in "
        f"{result['drain_10k_s']} s"
    )
    print(f"finals:     sent {result['finals_sent']}, persisted {result['persisted']}")
    if result["malformed"]:
        low, high = ranges["malformed_ratio"]
        print(
            f"malformed:  {figure('malformed_per_s', 'frames/s')} set aside, "
            f"{result['malformed_ratio']} of the ceiling's "
            f"{result['ceiling_malformed_per_s']:,} ({low:.3f}-{high:.3f}); of "
            f"{result['malformed']:,} sent, on disk {result['malformed_set_aside']} "
            f"({result['malformed_distinct']} distinct)"
        )
    print(f"account:    {result['account']}")
    if not result["stream_ended_early"]:
        print(
            f"note:       the stream outlasted --duration ({result['duration_s']} s); rates are "
            "over that window"
        )
