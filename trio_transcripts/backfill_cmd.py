"""``python -m trio_transcripts backfill``: store what the worker never saw live.

``backfill CONVERSATION_ID...`` writes every phrase of those calls' post-call transcripts that
is not stored yet (no gap windows: a phrase covered by a stored live final of its speaker, or
backfilled before, is skipped; ``gapfill.py``), into the store ``run`` uses, with the same
settings (environment, ``.env``, ``--config``). ``backfill --queue ID --since T [--until T]``
first finds the calls of a queue in that window through the analytics conversation details
query, page by page. A line per call shows progress; a transcript not available yet is
reported and left for a later run. Running it twice writes nothing the second time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import trio

from .absence import interval, queue_calls
from .assemble import configured_sink, stored_lookup, token_manager
from .backfill import BackfillCounts, Failed, InProgress, fetch_transcripts, fill
from .config import Config, load_config
from .errors import ConfigError, FatalError
from .logthrottle import Repeats
from .postcall import NotYet, PostCallClient, Refused
from .settings import given
from .show import DURATION, UNIT_S, add_store_arguments
from .sinks import Sink
from .sinks.deadletter import DeadLetters
from .wire.instants import parse_instant

log = logging.getLogger("trio_transcripts.backfill")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("conversation_ids", nargs="*", metavar="CONVERSATION_ID")
    parser.add_argument("--queue", metavar="ID", help="the calls of this queue in the window")
    parser.add_argument(
        "--since", metavar="T", help="window start: ISO-8601, epoch ms, or an age such as 2h"
    )
    parser.add_argument("--until", metavar="T", help="window end (default: now)")
    add_store_arguments(parser, "backfill")


def instant_ms(text: str, now_ms: int) -> int:
    """``--since``/``--until``: an age (``90m``, ``2h``, ``1d``) or an instant."""
    age = DURATION.match(text)
    if age is not None:
        return now_ms - int(age.group(1)) * UNIT_S[age.group(2)] * 1000
    parsed = parse_instant(text)
    if isinstance(parsed, str):
        raise ConfigError([f"{text!r} is neither an age such as 2h nor an instant: {parsed}"])
    return parsed


def main(args: argparse.Namespace) -> int:
    config = load_config(
        given(args), env_file=args.env_file, config_file=args.config, source_required=False
    )
    if not args.conversation_ids and args.queue is None:
        raise ConfigError(["backfill needs CONVERSATION_IDs, or --queue ID --since T"])
    if args.queue is not None and args.since is None:
        raise ConfigError(["--queue needs --since (and optionally --until)"])
    return trio.run(backfill, config, args)


async def backfill(config: Config, args: argparse.Namespace) -> int:
    tokens = token_manager(config)
    if tokens is None or not config.api_url:
        raise ConfigError(["backfill needs GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET and a region"])
    repeats = Repeats()  # a store's retries and refusals: counted, and said at the end
    sink = configured_sink(config, repeats=repeats)
    client = PostCallClient(config.api_url, tokens)
    counts = BackfillCounts()
    waiting: list[str] = []
    failed: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(tokens.run)
            await sink.open()
            calls: list[tuple[str, tuple[str, ...]]] = [(c, ()) for c in args.conversation_ids]
            if args.queue is not None:
                calls += await queue_window(client, args)
            for number, (conversation, communications) in enumerate(calls, 1):
                outcome = await one_call(config, client, sink, conversation, communications, counts)
                print(f"[{number}/{len(calls)}] {conversation}: {outcome}", file=sys.stderr)
                if outcome.startswith("not available"):
                    waiting.append(conversation)
                elif outcome.startswith("refused"):
                    failed.append(conversation)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            try:
                await client.aclose()
                await sink.aclose()
                await tokens.aclose()
            finally:
                repeats.flush()
    print(
        f"backfill: {counts.conversations} call(s) done, {counts.written} utterance(s) written, "
        f"{counts.covered} already stored live, {counts.repeated} backfilled before; "
        f"{len(waiting)} not available yet, {len(failed)} refused",
        file=sys.stderr,
    )
    return 1 if failed else 0


async def queue_window(
    client: PostCallClient, args: argparse.Namespace
) -> list[tuple[str, tuple[str, ...]]]:
    """The calls of ``--queue`` in ``--since``..``--until``, through the details query."""
    now = int(time.time() * 1000)
    start = instant_ms(args.since, now)
    end = instant_ms(args.until, now) if args.until else now
    window = interval(start, end)

    def progress(found: int, total: int) -> None:
        print(f"queue {args.queue}: {found} of {total} call(s) in {window}", file=sys.stderr)

    found = await queue_calls(client, args.queue, start, end, on_page=progress)
    if not isinstance(found, list):
        raise FatalError(f"the details query for queue {args.queue} failed: {found.reason}")
    return [(c.conversation_id, c.communications) for c in found]


async def one_call(
    config: Config,
    client: PostCallClient,
    sink: Sink,
    conversation: str,
    communications: tuple[str, ...],
    counts: BackfillCounts,
) -> str:
    decorated = config.text == "decorated"
    fetched = await fetch_transcripts(client, conversation, communications, decorated=decorated)
    if isinstance(fetched, NotYet | InProgress):
        return f"not available yet ({fetched.reason}); run again later"
    if isinstance(fetched, Refused):
        return f"refused: {fetched.reason}"
    counts.expired_urls += fetched.expired_urls
    filled = await fill(fetched.transcripts, None, stored_lookup(config), conversation, sink.write)
    if isinstance(filled, Failed):
        return f"refused: {filled.reason}"
    counts.add(filled)
    plans, result = filled.plans, filled.result
    if result.rejected:
        dead = DeadLetters(config.dead_letter_path, schema=config.schema)
        for rejected in result.rejected:
            dead.utterances_nowait([rejected.utterance], rejected.reason)
        await dead.flush()
    covered = sum(p.covered_live for p in plans)
    before = sum(p.already_backfilled for p in plans)
    refused = f", {len(result.rejected)} refused by the store" if result.rejected else ""
    return (
        f"{result.acknowledged} written, {covered} already stored live, "
        f"{before} backfilled before{refused}"
    )
