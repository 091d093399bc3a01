"""What ``run`` stored, read back: InfluxDB 1.x (InfluxQL), 2.x (Flux) or the file sink.

``show`` prints it; the backfill (``backfill.py``) asks it which utterances of a conversation
are already stored before it writes any (``gapfill.py``). Blocking (httpx's and
influxdb-client's synchronous clients): the worker calls it in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import ConfigError, FatalError
from .gapfill import StoredUtterance
from .influx_settings import Api, InfluxSettings
from .lineproto import NS_PER_MS, LineError, decode
from .model import LIVE
from .wire.instants import iso_of

log = logging.getLogger("trio_transcripts.stored")


@dataclass(frozen=True, slots=True)
class Row:
    time_ns: int
    conversation_id: str
    utterance_id: str
    speaker: str
    text: str
    confidence: float | None
    final: bool
    duration_ms: int = 0
    origin: str = LIVE

    def as_json(self) -> dict[str, object]:
        return {
            "time": iso_of(self.time_ns // NS_PER_MS),
            "conversationId": self.conversation_id,
            "utteranceId": self.utterance_id,
            "speaker": self.speaker,
            "text": self.text,
            "confidence": self.confidence,
            "final": self.final,
            "origin": self.origin,
        }

    def stored(self) -> StoredUtterance:
        start = self.time_ns // NS_PER_MS
        end = start + self.duration_ms
        return StoredUtterance(self.utterance_id, self.speaker, start, end, self.final, self.origin)


def read_file(path: Path, conversation_id: str | None, start_ns: int | None) -> list[Row]:
    """The file sink's points (the last of a point written twice), filtered.

    Lines end at ``\n`` alone: text keeps the other line breaks Unicode has (``\x85``,
    U+2028, ...), which ``str.splitlines`` would cut at. A line that cannot be read (a
    record torn by a crash before ``diskfull.append_whole`` rolled writes back, or a file
    edited by hand) is skipped and said, once for the file, as is a last line with no
    newline yet (an append in progress, which ``append_whole`` completes or cuts back):
    the backfill then finds that utterance missing and writes it again, the same point
    (``gapfill.py``)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file (set INFLUX_URL, or --output)"]) from None
    points: dict[tuple[object, ...], Row] = {}
    skipped: list[str] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines[:-1], 1):
        if not raw.strip():
            continue
        try:
            point = decode(raw.decode("utf-8"))
        except (UnicodeDecodeError, LineError) as exc:
            skipped.append(f"line {number}: {exc}")
            continue
        values = {**point.tags, **point.fields}
        row = _row(point.timestamp_ns, values)
        if _wanted(row, conversation_id, start_ns):
            points[(point.measurement, tuple(sorted(point.tags.items())), point.timestamp_ns)] = row
    if lines[-1].strip():  # no newline yet: being appended now, or torn by a crash
        skipped.append(f"line {len(lines)}: no newline at its end")
    if skipped:
        log.warning(
            "%s: %d unreadable line(s) skipped (first: %s)", path, len(skipped), skipped[0][:200]
        )
    return list(points.values())


def read_influx(
    settings: InfluxSettings, conversation_id: str | None, start_ns: int | None
) -> list[Row]:
    api = settings.api()
    if api is Api.V1:
        return _read_v1(settings, conversation_id, start_ns)
    if api is Api.V3:
        raise FatalError(
            f"show does not read InfluxDB 3.x yet: query {settings.where} with SQL, e.g. "
            f"SELECT time, speaker, text FROM transcriptions WHERE \"conversationId\" = '...'"
        )
    return _read_v2(settings, conversation_id, start_ns)


def _read_v1(
    settings: InfluxSettings, conversation_id: str | None, start_ns: int | None
) -> list[Row]:
    where = []
    if conversation_id is not None:
        where.append(f""""conversationId" = '{_influxql_string(conversation_id)}'""")
    if start_ns is not None:
        where.append(f"time >= {start_ns}")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    measurement = settings.schema.measurement.replace('"', '\\"')
    params = {
        "db": settings.database or "",
        "q": f'SELECT * FROM "{measurement}"{clause}',
        "epoch": "ns",
    }
    if settings.retention_policy:
        params["rp"] = settings.retention_policy
    auth = (
        httpx.BasicAuth(settings.username, settings.password or "") if settings.username else None
    )
    try:
        response = httpx.get(
            f"{settings.url.rstrip('/')}/query", params=params, auth=auth, timeout=60
        )
    except httpx.TransportError as exc:
        raise FatalError(f"InfluxDB at {settings.where} did not answer: {exc}") from None
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    results = body.get("results") or [{}]
    error = body.get("error") or results[0].get("error")
    if response.status_code != 200 or error:
        raise FatalError(
            f"InfluxDB at {settings.where} refused the query: HTTP {response.status_code} "
            f"{error or response.text[:200]}"
        )
    rows = []
    for series in results[0].get("series", []):
        columns = series["columns"]
        for values in series["values"]:
            record = dict(zip(columns, values, strict=True))
            rows.append(_row(int(record["time"]), record))
    return rows


def _read_v2(
    settings: InfluxSettings, conversation_id: str | None, start_ns: int | None
) -> list[Row]:
    from influxdb_client.client.influxdb_client import InfluxDBClient  # show alone uses it

    start = f"time(v: {start_ns})" if start_ns is not None else "0"
    match = f' and r.conversationId == "{_flux_string(conversation_id)}"' if conversation_id else ""
    bucket = _flux_string(settings.bucket or "")
    measurement = _flux_string(settings.schema.measurement)
    flux = (
        f'from(bucket: "{bucket}") |> range(start: {start}) '
        f'|> filter(fn: (r) => r._measurement == "{measurement}"{match}) '
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
    )
    from influxdb_client.rest import ApiException

    token, org = settings.token or "", settings.org or ""
    try:
        with InfluxDBClient(url=settings.url, token=token, org=org) as client:
            tables = client.query_api().query(flux)
    except ApiException as exc:  # an answer, but not rows: the caller says what it means
        raise FatalError(
            f"InfluxDB at {settings.where} refused the query: HTTP {exc.status} {exc.reason}"
        ) from None
    rows = []
    for table in tables:
        for record in table.records:
            values = dict(record.values)
            when = values["_time"]
            values.setdefault("time", 0)
            rows.append(_row(int(when.timestamp() * 1_000_000) * 1000, values))
    return rows


def _row(time_ns: int, values: Mapping[str, object]) -> Row:
    confidence = values.get("confidence")
    duration = values.get("duration_ms")
    return Row(
        time_ns=time_ns,
        conversation_id=str(values.get("conversationId") or ""),
        utterance_id=str(values.get("utteranceId") or ""),
        speaker=str(values.get("speaker") or "unknown"),
        text=str(values.get("text") or ""),
        confidence=float(confidence) if isinstance(confidence, int | float) else None,
        final=values.get("final") is True,
        duration_ms=duration if isinstance(duration, int) else 0,
        origin=str(values.get("origin") or LIVE),
    )


def _wanted(row: Row, conversation_id: str | None, start_ns: int | None) -> bool:
    if conversation_id is not None and row.conversation_id != conversation_id:
        return False
    return start_ns is None or row.time_ns >= start_ns


def _influxql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _flux_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
