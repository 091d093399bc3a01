"""Metrics, liveness and readiness of a running worker, served over HTTP inside its nursery.

With ``--metrics-address HOST:PORT`` (``METRICS_ADDRESS``), one ASGI app, served by Hypercorn
under Trio, answers:

* ``/metrics``: Prometheus text, by ``prometheus-client``. The counters and gauges are read
  from one snapshot of the worker taken at scrape time (``snapshot.py``; one source of
  truth: ``utterances_persisted_total`` is what the store acknowledged); the histograms are
  observed after each write.
* ``/healthz``: 200 while the Trio loop serves requests.
* ``/readyz``: 200 with a JSON body of its checks when the token is valid, every socket is
  connected and was heard from recently, and the sink acknowledged a write or a ping within
  ``ready_sink_s``; 503 with the failing checks otherwise, and from the moment shutdown begins.

``prometheus-client`` gives the metric types and the exposition format; Hypercorn is an ASGI
server that runs under Trio, so the endpoints live in the worker's nursery and stop with it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry, Histogram, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .account import SetAside
from .coverage import Why
from .errors import ConfigError
from .model import Utterance
from .sinks import WriteResult
from .snapshot import Snapshot, readiness

log = logging.getLogger("trio_transcripts.ops")

PREFIX = "trio_transcripts_"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Snapshots = Callable[[], Snapshot]  # a running worker's ``snapshot``


class Metrics:
    """The worker's metrics: pass it as the worker's ``observer``, then :meth:`watch` it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.write_seconds = Histogram(
            PREFIX + "write_seconds",
            "Time one batch took the sink, retries included.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.batch_points = Histogram(
            PREFIX + "batch_points",
            "Utterances per batch written.",
            registry=self.registry,
            buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000),
        )
        self.persist_lag_seconds = Histogram(
            PREFIX + "persist_lag_seconds",
            "From an utterance's end to the store acknowledging it.",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def written(self, seconds: float, batch: Sequence[Utterance], result: WriteResult) -> None:
        self.write_seconds.observe(seconds)
        self.batch_points.observe(len(batch))
        if result.acknowledged and not result.spooled:
            now_ms = int(time.time() * 1000)
            refused = {id(r.utterance) for r in result.rejected}
            for u in batch:
                if id(u) not in refused:
                    self.persist_lag_seconds.observe(max(0, now_ms - u.end_ms) / 1000)

    def watch(self, snapshots: Snapshots) -> None:
        """Read a worker's snapshot at every scrape."""
        self.registry.register(_WorkerCollector(snapshots))


class _WorkerCollector(Collector):
    def __init__(self, snapshots: Snapshots) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        w = self.snapshots()
        a = w.account

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        def by_kind(name: str, doc: str, counts: dict[str, int]) -> CounterMetricFamily:
            family = CounterMetricFamily(PREFIX + name, doc, labels=["kind"])
            for kind, count in sorted(counts.items()):
                family.add_metric([kind], count)
            return family

        frames = CounterMetricFamily(PREFIX + "frames", "Frames read.", labels=["source"])
        frames.add_metric([w.source], a.frames)
        yield frames
        yield counter("malformed_frames", "Frames set aside unread.", a.malformed)
        yield counter("fragments", "Transcript fragments read.", a.fragments)
        yield counter("duplicates", "Re-delivered finals ignored.", a.duplicates)
        utterances = CounterMetricFamily(
            PREFIX + "utterances", "Utterances put in the ring.", labels=["final"]
        )
        utterances.add_metric(["true"], a.finals)
        utterances.add_metric(["false"], a.partials)
        yield utterances
        yield counter("utterances_persisted", "Utterances the store acknowledged.", a.persisted)
        yield counter(
            "utterances_backfilled",
            "Of those persisted, the ones filled in from post-call transcripts.",
            a.backfilled,
        )
        dead = CounterMetricFamily(
            PREFIX + "utterances_dead_lettered",
            "Utterances set aside for the dead-letter file, by why (records_not_kept says "
            "which it did not take).",
            labels=["reason"],
        )
        for why in SetAside:
            dead.add_metric([why.value], w.set_aside_by.get(why.value, 0))
        yield dead
        yield counter("utterances_spooled", "Utterances written to the spool.", a.spooled)
        yield counter("utterances_replayed", "Utterances replayed from the spool.", a.replayed)
        yield counter("gaps", "Times without a live socket.", a.gaps)
        yield counter("gap_seconds", "Seconds without a live socket.", a.gap_ms / 1000)
        queued = CounterMetricFamily(
            PREFIX + "gaps_queued",
            "Conversation gaps queued for backfill, by why.",
            labels=["reason"],
        )
        for gap_why in Why:
            queued.add_metric([gap_why.value], a.gaps_by_reason.get(gap_why.value, 0))
        yield queued
        yield gauge(
            "backfill_enabled",
            "1 while gaps are filled from post-call transcripts (0: off, or not permitted).",
            w.backfill == "on",
        )
        yield gauge(
            "absences_uncovered",
            "Queue absences no catch-up could look at (no analytics permission).",
            len(a.absences_uncovered),
        )
        reconnects = CounterMetricFamily(
            PREFIX + "reconnects", "Sockets replaced, by why.", labels=["reason"]
        )
        for reason, count in sorted(w.reconnects.items()):
            reconnects.add_metric([reason], count)
        yield reconnects
        yield counter("token_renewals", "Tokens fetched.", w.token_renewals)
        yield gauge("ring_occupancy", "Utterances in the ring.", w.ring_count)
        yield gauge("ring_capacity", "The ring's capacity.", w.ring_capacity)
        yield gauge(
            "ring_paused", "1 while the reader is held at the high-water mark.", w.ring_paused
        )
        yield counter(
            "ring_pauses", "Times the reader was held at the high-water mark.", w.ring_pauses
        )
        yield gauge("coalescer_pending", "Utterances awaiting their final.", w.pending)
        yield gauge("channels", "Sockets the source holds (channels).", w.sockets)
        yield gauge("subscribed_topics", "Topics subscribed.", w.topics)
        yield gauge("spool_bytes", "Bytes in the spool.", w.spool_bytes)
        yield gauge(
            "disk_full", "Files a full disk refuses now (their writes wait).", len(w.disk_full)
        )
        yield counter(
            "disk_full_waits", "Times a write waited for space on a full disk.", w.disk_full_waits
        )
        yield by_kind(
            "records_not_kept",
            "Records no file took (the dead-letter file's disk full at shutdown), by kind.",
            a.not_kept,
        )
        yield by_kind(
            "redactions",
            "Matches taken out of texts before they were written, by kind (sensitive.py).",
            a.redacted,
        )
        since = w.since_last_frame_s if w.since_last_frame_s is not None else math.nan
        yield gauge("seconds_since_last_frame", "Seconds since a frame was read.", since)


def app(
    snapshots: Snapshots, metrics: Metrics, ready_sink_s: float
) -> Callable[..., Awaitable[None]]:
    """The ASGI app: ``/metrics``, ``/healthz``, ``/readyz``."""
    exposition = make_asgi_app(metrics.registry)

    async def respond(send: Send, status: int, body: bytes, content_type: str) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope.get("path", "")
        if path == "/metrics":
            await exposition(scope, receive, send)
        elif path == "/healthz":
            await respond(send, 200, b"ok\n", "text/plain")
        elif path == "/readyz":
            checks = readiness(snapshots(), ready_sink_s)
            ready = all(bool(c["ok"]) for c in checks.values())
            body = json.dumps({"ready": ready, "checks": checks}).encode()
            await respond(send, 200 if ready else 503, body, "application/json")
        else:
            await respond(send, 404, b"not found: /metrics, /healthz, /readyz\n", "text/plain")

    return asgi


class Ops:
    """The metrics and health endpoints of one worker, on ``address`` (``HOST:PORT``)."""

    def __init__(self, address: str, ready_sink_s: float) -> None:
        self.address = address
        self.ready_sink_s = ready_sink_s
        self.metrics = Metrics()

    async def serve(
        self,
        snapshots: Snapshots,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; the start value is the URLs it listens on."""
        config = HypercornConfig()
        config.bind = [self.address]
        config.accesslog = None
        config.errorlog = logging.getLogger("trio_transcripts.ops.http")
        config.graceful_timeout = 0.5
        self.metrics.watch(snapshots)
        endpoints = app(snapshots, self.metrics, self.ready_sink_s)
        try:
            await serve(endpoints, config, task_status=task_status, mode="asgi")
        except OSError as exc:
            raise ConfigError(
                [f"METRICS_ADDRESS {self.address}: cannot listen there ({exc.strerror or exc})"]
            ) from exc
