"""Metrics, liveness and readiness of a running worker, served over HTTP inside its nursery.

With ``--metrics-address HOST:PORT`` (``METRICS_ADDRESS``), one ASGI app, served by Hypercorn
under Trio, answers:

* ``/metrics``: Prometheus text, by ``prometheus-client``. The counters are read from the
  worker's account at scrape time (one source of truth: ``utterances_persisted_total`` is
  what the store acknowledged), the gauges from the ring, the coalescer, the source and the
  spool; the histograms are observed after each write.
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
from .spool import SpoolingSink
from .worker import Worker

log = logging.getLogger("trio_transcripts.ops")

PREFIX = "trio_transcripts_"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


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

    def watch(self, worker: Worker) -> None:
        """Read the account and gauges of ``worker`` at every scrape."""
        self.registry.register(_WorkerCollector(worker))


class _WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        w = self.worker
        a = w.account
        now = trio.current_time()

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        frames = CounterMetricFamily(PREFIX + "frames", "Frames read.", labels=["source"])
        frames.add_metric([w.source.kind], a.frames)
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
            "Utterances written to the dead-letter file.",
            labels=["reason"],
        )
        for why in SetAside:
            dead.add_metric([why.value], w.ledger.set_aside_by[why])
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
            "absences_uncovered",
            "Queue absences no catch-up could look at (no analytics permission).",
            len(a.absences_uncovered),
        )
        reconnects = CounterMetricFamily(
            PREFIX + "reconnects", "Sockets replaced, by why.", labels=["reason"]
        )
        for reason, count in sorted(w.source.reconnects().items()):
            reconnects.add_metric([reason], count)
        yield reconnects
        renewals = w.tokens.renewals if w.tokens is not None else 0
        yield counter("token_renewals", "Tokens fetched.", renewals)
        stats = w.queue.statistics()
        yield gauge("ring_occupancy", "Utterances in the ring.", stats.count)
        yield gauge("ring_capacity", "The ring's capacity.", stats.capacity)
        yield gauge(
            "ring_paused", "1 while the reader is held at the high-water mark.", stats.paused
        )
        yield gauge(
            "coalescer_pending", "Utterances awaiting their final.", w.router.coalescer.pending
        )
        health = w.source.health(now)
        yield gauge("channels", "Sockets the source holds (channels).", health.sockets)
        yield gauge("subscribed_topics", "Topics subscribed.", health.topics)
        spool = w.sink.spool.size() if isinstance(w.sink, SpoolingSink) else 0
        yield gauge("spool_bytes", "Bytes in the spool.", spool)
        since = now - w.last_frame_at if w.last_frame_at is not None else math.nan
        yield gauge("seconds_since_last_frame", "Seconds since a frame was read.", since)


def readiness(worker: Worker, ready_sink_s: float) -> tuple[bool, dict[str, dict[str, object]]]:
    """The checks of ``/readyz``: each ``{"ok": bool, "detail": str}``."""
    now = trio.current_time()
    checks: dict[str, dict[str, object]] = {}
    tokens = worker.tokens
    checks["token"] = {
        "ok": tokens is None or tokens.valid(),
        "detail": "not needed" if tokens is None else ("valid" if tokens.valid() else "none valid"),
    }
    health = worker.source.health(now)
    checks["source"] = {
        "ok": health.sockets > 0 and health.live == health.sockets,
        "detail": f"{health.live} of {health.sockets} sockets connected and heard from",
    }
    ok_at = worker.sink_ok_at
    age = now - ok_at if ok_at is not None else math.inf
    checks["sink"] = {
        "ok": age <= ready_sink_s,
        "detail": f"{worker.sink.describe()}: last acknowledged {age:.0f} s ago"
        if ok_at is not None
        else f"{worker.sink.describe()}: not ready yet",
    }
    checks["running"] = {
        "ok": not worker.stopping,
        "detail": "shutting down" if worker.stopping else "running",
    }
    return all(bool(c["ok"]) for c in checks.values()), checks


def app(worker: Worker, metrics: Metrics, ready_sink_s: float) -> Callable[..., Awaitable[None]]:
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
            ready, checks = readiness(worker, ready_sink_s)
            body = json.dumps({"ready": ready, "checks": checks}).encode()
            await respond(send, 200 if ready else 503, body, "application/json")
        else:
            await respond(send, 404, b"not found: /metrics, /healthz, /readyz\n", "text/plain")

    return asgi


class Ops:
    """The metrics and health endpoints of one worker, on ``address`` (``HOST:PORT``)."""

    def __init__(self, address: str, ready_sink_s: float = 60.0) -> None:
        self.address = address
        self.ready_sink_s = ready_sink_s
        self.metrics = Metrics()

    async def serve(
        self, worker: Worker, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; the start value is the URLs it listens on."""
        config = HypercornConfig()
        config.bind = [self.address]
        config.accesslog = None
        config.errorlog = logging.getLogger("trio_transcripts.ops.http")
        config.graceful_timeout = 0.5
        self.metrics.watch(worker)
        endpoints = app(worker, self.metrics, self.ready_sink_s)
        try:
            await serve(endpoints, config, task_status=task_status, mode="asgi")
        except OSError as exc:
            raise ConfigError(
                [f"METRICS_ADDRESS {self.address}: cannot listen there ({exc.strerror or exc})"]
            ) from exc
