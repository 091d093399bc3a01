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
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from .config import add_flags, load_config
from .errors import ConfigError
from .lineproto import NS_PER_MS
from .model import BACKFILL
from .settings import given
from .stored import Row, read_file, read_influx
from .wire.instants import iso_of

DURATION = re.compile(r"^(\d+)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("conversation_id", nargs="?", metavar="CONVERSATION_ID")
    parser.add_argument("--since", metavar="DURATION", help="e.g. 30m, 1h, 7d")
    parser.add_argument("--format", choices=["text", "jsonl"], default="text")
    add_store_arguments(parser, "show")


def add_store_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Where ``run`` stored, as ``run`` is told (``show`` and ``backfill`` read it back)."""
    add_flags(parser, command)
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
    config = load_config(
        given(args), env_file=args.env_file, config_file=args.config, source_required=False
    )
    if args.conversation_id is None and args.since is None:
        raise ConfigError(["show needs a CONVERSATION_ID, or --since to list conversations"])
    start = since_ns(args.since, time.time_ns())
    if config.influx is not None:
        rows = read_influx(config.influx, args.conversation_id, start)
    else:
        rows = read_file(config.output_path, args.conversation_id, start)
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
        partial += "  [backfilled]" if row.origin == BACKFILL else ""
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
