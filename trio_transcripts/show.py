"""``python -m trio_transcripts show``: a stored call read back as a transcript.

From wherever ``run`` persisted it, with the same settings (environment, ``.env``,
``--config``): InfluxDB 1.x through InfluxQL (``/query``), InfluxDB 2.x through
influxdb-client's query API (Flux), or the file sink's line protocol (read with
``lineproto.decode``, the same point written twice counted once, as InfluxDB would).

``show CONVERSATION_ID`` prints its utterances in start order: time, speaker, confidence,
text, partials marked; ``--format jsonl`` one JSON object each. Without an id, ``show --since
1h`` lists the conversations of that window with their utterance counts and first and last
times.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from .config import load_config
from .errors import ConfigError, FatalError
from .lineproto import NS_PER_MS, LineError, decode
from .sinks.influx import Api, InfluxSettings
from .wire.instants import iso_of

DURATION = re.compile(r"^(\d+)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Row:
    time_ns: int
    conversation_id: str
    utterance_id: str
    speaker: str
    text: str
    confidence: float | None
    final: bool

    def as_json(self) -> dict[str, object]:
        return {
            "time": iso_of(self.time_ns // NS_PER_MS),
            "conversationId": self.conversation_id,
            "utteranceId": self.utterance_id,
            "speaker": self.speaker,
            "text": self.text,
            "confidence": self.confidence,
            "final": self.final,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("conversation_id", nargs="?", metavar="CONVERSATION_ID")
    parser.add_argument("--since", metavar="DURATION", help="e.g. 30m, 1h, 7d")
    parser.add_argument("--format", choices=["text", "jsonl"], default="text")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("transcripts.lp"),
        help="the file sink's file, when INFLUX_URL is not set (default: %(default)s)",
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    parser.add_argument("--config", type=Path, metavar="FILE")


def since_ns(text: str | None, now_ns: int) -> int | None:
    if text is None:
        return None
    match = DURATION.match(text.strip())
    if match is None:
        raise ConfigError([f"--since must be a number and s, m, h or d, e.g. 1h (got {text!r})"])
    return now_ns - int(match.group(1)) * UNIT_S[match.group(2)] * 1_000_000_000


def main(args: argparse.Namespace) -> int:
    config = load_config(env_file=args.env_file, config_file=args.config, source_required=False)
    if args.conversation_id is None and args.since is None:
        raise ConfigError(["show needs a CONVERSATION_ID, or --since to list conversations"])
    start = since_ns(args.since, time.time_ns())
    if config.influx is not None:
        rows = read_influx(config.influx, args.conversation_id, start)
    else:
        rows = read_file(args.output, args.conversation_id, start)
    if args.conversation_id is not None:
        print_transcript(rows, args.format)
    else:
        print_conversations(rows, args.format)
    return 0


def print_transcript(rows: Iterable[Row], fmt: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    for row in sorted(rows, key=lambda r: (r.time_ns, r.utterance_id)):
        if fmt == "jsonl":
            print(json.dumps(row.as_json(), ensure_ascii=False), file=stream)
            continue
        confidence = f"{row.confidence:.3f}" if row.confidence is not None else "  n/a"
        partial = "" if row.final else "  [partial]"
        print(
            f"{iso_of(row.time_ns // NS_PER_MS)}  {row.speaker:>8}  ({confidence})  "
            f"{row.text}{partial}",
            file=stream,
        )


def print_conversations(rows: Iterable[Row], fmt: str) -> None:
    calls: dict[str, list[int]] = {}
    for row in rows:
        calls.setdefault(row.conversation_id, []).append(row.time_ns)
    for conversation, times in sorted(calls.items(), key=lambda kv: min(kv[1])):
        first, last = iso_of(min(times) // NS_PER_MS), iso_of(max(times) // NS_PER_MS)
        if fmt == "jsonl":
            entry = {
                "conversationId": conversation,
                "utterances": len(times),
                "first": first,
                "last": last,
            }
            print(json.dumps(entry))
        else:
            print(f"{conversation}  {len(times):>5} utterances  {first} .. {last}")


# --- where run persisted --------------------------------------------------------------


def read_file(path: Path, conversation_id: str | None, start_ns: int | None) -> list[Row]:
    """The file sink's points (the last of a point written twice), filtered."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file (set INFLUX_URL, or --output)"]) from None
    points: dict[tuple[object, ...], Row] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            point = decode(line)
        except LineError as exc:
            raise FatalError(f"{path}:{number}: {exc}") from None
        values = {**point.tags, **point.fields}
        row = _row(point.timestamp_ns, values)
        if _wanted(row, conversation_id, start_ns):
            points[(point.measurement, tuple(sorted(point.tags.items())), point.timestamp_ns)] = row
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
    token, org = settings.token or "", settings.org or ""
    with InfluxDBClient(url=settings.url, token=token, org=org) as client:
        tables = client.query_api().query(flux)
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
    return Row(
        time_ns=time_ns,
        conversation_id=str(values.get("conversationId") or ""),
        utterance_id=str(values.get("utteranceId") or ""),
        speaker=str(values.get("speaker") or "unknown"),
        text=str(values.get("text") or ""),
        confidence=float(confidence) if isinstance(confidence, int | float) else None,
        final=values.get("final") is True,
    )


def _wanted(row: Row, conversation_id: str | None, start_ns: int | None) -> bool:
    if conversation_id is not None and row.conversation_id != conversation_id:
        return False
    return start_ns is None or row.time_ns >= start_ns


def _influxql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _flux_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
