"""The InfluxDB sink: batched, idempotent, retrying writes over httpx (native under Trio).

Why not influxdb-client's WriteApi: its batching mode swallows errors and its ``flush()`` does
nothing, its async client is asyncio-only, and it writes only to ``/api/v2/write``, which
InfluxDB 1.6 does not serve (its HTTP API has ``/write`` only). We speak HTTP ourselves:

* 2.x (and 3.x, Cloud): ``POST /api/v2/write?org&bucket&precision=ns``, ``Authorization: Token``.
* 1.x: ``POST /write?db&rp&precision=ns``, with optional user and password (Basic auth).

What each answer means here, and what we do:

====================  ==================================================================
204 (or 200)          persisted; counted only now
400, 422              some or all points rejected (partial write, type conflict, parse
                      error, retention...): the batch is split in halves and resent until
                      each rejected point stands alone; those are returned as rejected,
                      with the server's reason (the worker dead-letters them). Resending
                      good points is safe: timestamps are idempotent. Bounded: at most
                      2n-1 requests for n points.
413                   split and resend; a single point too large is rejected
401, 403              fatal: credentials or permissions; nothing is dropped
404                   1.x: create the database (unless disabled) and resend; 2.x: fatal
429, 5xx, timeouts,   retry forever with capped exponential backoff and full jitter,
refused connections   honouring ``Retry-After``; the writer stops draining meanwhile, so
                      backpressure reaches the reader
====================  ==================================================================
"""

from __future__ import annotations

import gzip
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import trio

from ..errors import FatalSinkError
from ..influx_settings import Api, InfluxSettings
from ..lineproto import encode
from ..logthrottle import Repeated, Repeats
from ..model import Utterance
from ..outcomes import outcome_of, outcome_of_error
from ..retry import Action, Decision, Service, classify
from ..retrying import Tries, retrying
from . import Rejected, WriteResult

log = logging.getLogger("trio_transcripts.sink")

WRITE_RETRIES = Repeated(
    "influx write retry",
    "{count:,} more InfluxDB write retries in the last {seconds:.0f} s; first: {first}",
)
POINTS_REJECTED = Repeated(
    "influx point rejected",
    "InfluxDB rejected {count:,} more utterances in the last {seconds:.0f} s; first: {first}",
)


@dataclass(slots=True)
class SinkStatistics:
    persisted: int = 0
    requests: int = 0
    retries: int = 0
    dead_lettered: int = 0
    splits: int = 0


class InfluxSink:
    """Implements :class:`~trio_transcripts.sinks.Sink` for InfluxDB 1.x and 2.x."""

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        repeats: Repeats | None = None,
    ) -> None:
        """``repeats`` rate-limits the lines an outage repeats (``logthrottle.py``)."""
        self.settings = settings
        self._repeats = repeats or Repeats()
        self.api = settings.api()
        self._service = {
            Api.V1: Service.INFLUX_V1,
            Api.V2: Service.INFLUX_V2,
            Api.V3: Service.INFLUX_V3,
        }[self.api]
        self.stats = SinkStatistics()
        self._rng = rng or random.Random()
        auth = None
        if self.api is Api.V1 and settings.username:
            auth = httpx.BasicAuth(settings.username, settings.password or "")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.api is Api.V2:
            headers["Authorization"] = f"Token {settings.token}"
        elif self.api is Api.V3:
            headers["Authorization"] = f"Bearer {settings.token}"
        self._client = httpx.AsyncClient(
            base_url=settings.url.rstrip("/"),
            auth=auth,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s),
            transport=transport,
        )
        if self.api is Api.V1:
            params = {"db": settings.database or "", "precision": "ns"}
            if settings.retention_policy:
                params["rp"] = settings.retention_policy
            self._write_path, self._params = "/write", params
        elif self.api is Api.V3:
            # accept_partial=false: a bad point fails its batch, and splitting decides which
            # points to set aside, as on 1.x and 2.x.
            self._write_path = "/api/v3/write_lp"
            self._params = {
                "db": settings.database or "",
                "precision": "nanosecond",
                "accept_partial": "false",
                "no_sync": "true" if settings.no_sync else "false",
            }
        else:
            self._write_path = "/api/v2/write"
            self._params = {
                "org": settings.org or "",
                "bucket": settings.bucket or "",
                "precision": "ns",
            }

    def describe(self) -> str:
        return self.settings.describe()

    async def open(self) -> None:
        """Wait for ``/ping`` (bounded by ``startup_timeout_s``); on 1.x create the database."""

        async def ping() -> tuple[Decision, None]:
            try:
                response = await self._client.get("/ping")
            except httpx.TransportError as exc:
                return Decision(Action.RETRY, f"{type(exc).__name__}: {exc}"), None
            if response.status_code in (200, 204):
                return Decision(Action.DONE, "ready"), None
            return Decision(
                Action.RETRY, f"HTTP {response.status_code} {response.text[:200]}"
            ), None

        def say(decision: Decision, _retry: int, delay: float) -> None:
            log.warning(
                "InfluxDB at %s not ready (%s); retrying in %.1f s",
                self.settings.where,
                decision.detail,
                delay,
            )

        def fail(decision: Decision) -> FatalSinkError:
            return FatalSinkError(
                f"InfluxDB at {self.settings.where} is not answering /ping ({decision.detail}) "
                f"after {self.settings.startup_timeout_s:.0f} s: check INFLUX_URL and that "
                f"the server is running"
            )

        await retrying(
            ping,
            Tries(self.settings.backoff, self._rng),
            say=say,
            fail=fail,
            deadline=trio.current_time() + self.settings.startup_timeout_s,
        )
        if self.api is Api.V1 and self.settings.create_database:
            await self._create_database()

    async def ping(self) -> bool:
        """``/ping`` answered 2xx (readiness while no data flows)."""
        try:
            response = await self._client.get("/ping")
        except httpx.TransportError:
            return False
        return response.is_success

    async def _create_database(self) -> None:
        name = (self.settings.database or "").replace("\\", "\\\\").replace('"', '\\"')
        response = await self._client.post("/query", params={"q": f'CREATE DATABASE "{name}"'})
        if response.status_code in (401, 403):
            raise FatalSinkError(self._auth_message(outcome_of(response).describe()))
        body = response.text
        if response.status_code != 200 or '"error"' in body:
            raise FatalSinkError(
                f"could not create database {self.settings.database!r} on {self.settings.where}: "
                f"HTTP {response.status_code} {body[:200]}"
            )
        log.info("database %r ready on %s", self.settings.database, self.settings.where)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> InfluxSink:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        """Persist ``utterances`` in requests of at most ``max_points`` and ``max_bytes``."""
        result = WriteResult()
        chunk: list[tuple[Utterance, bytes]] = []
        size = 0
        for u in utterances:
            line = (encode(u, self.settings.schema) + "\n").encode("utf-8")
            if chunk and (
                len(chunk) >= self.settings.max_points or size + len(line) > self.settings.max_bytes
            ):
                result += await self._deliver(chunk)
                chunk, size = [], 0
            chunk.append((u, line))
            size += len(line)
        if chunk:
            result += await self._deliver(chunk)
        return result

    async def _deliver(self, items: list[tuple[Utterance, bytes]]) -> WriteResult:
        body = b"".join(line for _, line in items)

        async def post() -> tuple[Decision, None]:
            return await self._post(body), None

        async def create(_decision: Decision) -> None:
            log.warning("database %r missing; creating it", self.settings.database)
            await self._create_database()

        def say(decision: Decision, retry: int, delay: float) -> None:
            self.stats.retries += 1
            self._repeats.log(
                log,
                logging.WARNING,
                WRITE_RETRIES,
                f"InfluxDB write of {len(items)} points failed ({decision.detail}); "
                f"retry {retry} in {delay:.2f} s",
            )

        decision, _ = await retrying(
            post,
            Tries(self.settings.backoff, self._rng),
            say=say,
            fail=lambda d: FatalSinkError(self._fatal_message(d), [u for u, _ in items]),
            until=(Action.DONE, Action.SPLIT),
            at_once={Action.CREATE_DATABASE: create} if self.settings.create_database else None,
        )
        if decision.action is Action.DONE:
            self.stats.persisted += len(items)
            return WriteResult(acknowledged=len(items))
        if len(items) == 1:  # SPLIT: a batch of one is the point refused
            utterance = items[0][0]
            self._repeats.log(
                log,
                logging.ERROR,
                POINTS_REJECTED,
                f"InfluxDB rejected utterance {utterance.conversation_id}/"
                f"{utterance.utterance_id}: {decision.detail}",
            )
            self.stats.dead_lettered += 1
            return WriteResult(rejected=(Rejected(utterance, decision.detail),))
        self.stats.splits += 1
        half = len(items) // 2
        log.warning(
            "InfluxDB refused a batch of %d (%s); splitting to isolate it",
            len(items),
            decision.detail,
        )
        return await self._deliver(items[:half]) + await self._deliver(items[half:])

    async def _post(self, body: bytes) -> Decision:
        headers = {}
        if len(body) >= self.settings.gzip_threshold:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.stats.requests += 1
        try:
            response = await self._client.post(
                self._write_path, params=self._params, content=body, headers=headers
            )
        except httpx.TransportError as exc:
            return classify(self._service, outcome_of_error(exc), time.time())
        return classify(self._service, outcome_of(response), time.time())

    def _fatal_message(self, decision: Decision) -> str:
        """What to check, for an answer retrying cannot fix."""
        detail = decision.detail
        if detail.startswith(("HTTP 401", "HTTP 403")):
            return self._auth_message(detail)
        if decision.action is Action.CREATE_DATABASE:
            return (
                f"database {self.settings.database!r} not found on {self.settings.where}; "
                f"create it or allow creation (no --no-create-database)"
            )
        if "database is required" in detail:
            return "InfluxDB says a database is required: set INFLUX_DATABASE"
        if detail.startswith("HTTP 404"):
            what, check = {
                Api.V1: ("the /write endpoint", "INFLUX_URL"),
                Api.V2: (
                    f"org {self.settings.org!r} or bucket {self.settings.bucket!r}",
                    "INFLUX_URL, INFLUX_ORG and INFLUX_BUCKET",
                ),
                Api.V3: (
                    f"database {self.settings.database!r}",
                    "INFLUX_URL and INFLUX_DATABASE (and that the database exists)",
                ),
            }[self.api]
            return (
                f"InfluxDB at {self.settings.where} answered 404 for {what}: {detail}; check "
                f"{check}"
            )
        return f"InfluxDB at {self.settings.where} answered an unexpected {detail}"

    def _auth_message(self, detail: str) -> str:
        who = (
            f"user {self.settings.username!r}"
            if self.api is Api.V1 and self.settings.username
            else "INFLUX_TOKEN"
            if self.api in (Api.V2, Api.V3)
            else "no credentials"
        )
        return (
            f"InfluxDB at {self.settings.where} refused to let us write ({detail}) with {who}: "
            f"check INFLUX_TOKEN, or INFLUX_USERNAME and INFLUX_PASSWORD, and their "
            f"write permission"
        )
