"""``python -m trio_transcripts run``: the worker as a service, under SIGINT and SIGTERM.

The first signal starts the ordered shutdown (at any moment, startup included); a second
SIGINT skips the wait for the sink and dead-letters what is left. Also the flags the worker
shares with ``demo``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .assemble import assemble
from .config import Config, load_config
from .errors import ConfigError
from .lineproto import Schema
from .worker import Worker

if TYPE_CHECKING:
    from .ops import Ops

log = logging.getLogger("trio_transcripts")

OVERRIDES = {
    "--conversation-id": "CONVERSATION_ID",
    "--queue-id": "GENESYS_QUEUE_ID",
    "--region": "GENESYS_REGION",
    "--stream-url": "GENESYS_STREAM_URL",
    "--influx-url": "INFLUX_URL",
    "--influx-database": "INFLUX_DATABASE",
    "--influx-org": "INFLUX_ORG",
    "--influx-bucket": "INFLUX_BUCKET",
    "--influx-api": "INFLUX_API",
    "--metrics-address": "METRICS_ADDRESS",
    "--shard": "SHARD",
}


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    """Paths, buffer, batch, spool and schema flags: the worker's, for ``run`` and ``demo``."""
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("transcripts.lp"),
        help="file sink path when INFLUX_URL is not set (default: %(default)s)",
    )
    parser.add_argument(
        "--dead-letter",
        type=Path,
        default=Path("deadletter.jsonl"),
        help="where rejected and unflushable data goes (default: %(default)s)",
    )
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--buffer-capacity", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--batch-wait-ms", type=int, default=100)
    parser.add_argument("--status-interval", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument(
        "--ready-sink-s",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="/readyz fails when the sink acknowledged no write or ping for this long",
    )
    parser.add_argument(
        "--spool",
        type=Path,
        metavar="DIR",
        help="keep batches the sink cannot take on disk here (fsynced) and replay them",
    )
    parser.add_argument("--spool-max-mb", type=int, default=1024)
    parser.add_argument(
        "--spool-after",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a batch may wait on the sink before it is spooled",
    )
    parser.add_argument(
        "--backfill",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fill the gaps of the live stream from post-call transcripts (Genesys "
        "Notifications only; off with one log line when the OAuth client lacks the "
        "permission) (default: on)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="gap records and the journal of what is followed (default: a state directory "
        "next to the spool's)",
    )
    parser.add_argument(
        "--queue-lookback",
        type=float,
        default=Config.queue_lookback_s,
        metavar="SECONDS",
        help="at start, look for a followed queue's calls from this long before the worker "
        "was last alive (or before now, on a first start) (default: 1 h)",
    )
    parser.add_argument(
        "--backfill-give-up",
        type=float,
        default=86_400.0,
        metavar="SECONDS",
        help="stop asking for a post-call transcript this long after its gap (default: 24 h)",
    )
    parser.add_argument(
        "--text",
        choices=["raw", "decorated"],
        default="raw",
        help="which text to store: the recognised words (raw), or the platform's decorated "
        "form where it gives one (see the README's schema) (default: %(default)s)",
    )
    parser.add_argument(
        "--utterance-id-as-tag",
        action="store_true",
        help="the reference design's layout: one series per utterance (risky "
        "on InfluxDB 1.x: max-series-per-database)",
    )


def tuning(args: argparse.Namespace) -> dict[str, object]:
    """The :class:`~trio_transcripts.config.Config` fields the worker flags set."""
    return {
        "output_path": args.output,
        "dead_letter_path": args.dead_letter,
        "shutdown_timeout_s": args.shutdown_timeout,
        "buffer_capacity": args.buffer_capacity,
        "batch_size": args.batch_size,
        "batch_wait_ms": args.batch_wait_ms,
        "status_interval_s": args.status_interval,
        "ready_sink_s": args.ready_sink_s,
        "schema": Schema(utterance_id_as_tag=args.utterance_id_as_tag),
        "spool_dir": args.spool,
        "spool_max_bytes": args.spool_max_mb << 20,
        "spool_after_s": args.spool_after,
        "backfill": args.backfill,
        "state_dir": args.state_dir,
        "backfill_give_up_s": args.backfill_give_up,
        "text": args.text,
        "queue_lookback_s": args.queue_lookback,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read transcripts from Genesys Cloud and persist them. Settings come from the "
        "environment and .env (see README)."
    )
    add_worker_flags(parser)
    for flag, var in OVERRIDES.items():
        parser.add_argument(flag, dest=var, help=f"overrides {var}")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N shard processes (--shard 0/N ... N-1/N) under one supervisor",
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML file of settings: the variable names in lower case (see README)",
    )
    parser.add_argument(
        "--influx-no-sync",
        action="store_true",
        help="InfluxDB 3.x: acknowledged before the WAL is persisted (faster, less durable)",
    )
    parser.add_argument(
        "--no-create-database",
        action="store_true",
        help="InfluxDB 1.x: fail instead of creating a missing database",
    )


async def watch_signals(worker: Worker) -> None:
    """SIGINT/SIGTERM: the ordered shutdown; a second SIGINT: hurry."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if worker.stopping and signum == signal.SIGINT:
                log.warning("second SIGINT: not waiting for the sink; dead-lettering the rest")
                worker.hurry()
            else:
                log.warning("%s: shutting down in order", signal.Signals(signum).name)
                worker.stop()


async def run_until_signalled(
    worker: Worker,
    ops: Ops | None = None,
    beside: Callable[[Worker], Awaitable[None]] | None = None,
) -> None:
    """Run ``worker`` under SIGINT/SIGTERM, with its metrics and health endpoints if any, and
    ``beside(worker)`` (a shard process's reports) until it ends."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals, worker)
        if ops is not None:
            await nursery.start(ops.serve, worker.snapshot)
        if beside is not None:
            nursery.start_soon(beside, worker)
        try:
            await worker.run()
        finally:
            nursery.cancel_scope.cancel()


def run_config(config: Config, beside: Callable[[Worker], Awaitable[None]] | None = None) -> Worker:
    """``run`` with settings already loaded: the worker, its endpoints, until signalled."""
    if config.shard is not None:
        log.info(
            "shard %s: following %d of the %d conversations given, and queue announcements "
            "of its own",
            config.shard,
            sum(1 for c in config.conversation_ids if config.shard.owns(c)),
            len(config.conversation_ids),
        )
    ops = None
    if config.metrics_address is not None:
        from .ops import Ops  # prometheus-client and Hypercorn load only when asked for

        ops = Ops(config.metrics_address, config.ready_sink_s)
    worker = assemble(config, observer=ops.metrics if ops is not None else None)
    trio.run(run_until_signalled, worker, ops, beside)
    print(f"account: {worker.account.summary()}", file=sys.stderr)
    return worker


def _patched(config: Config, args: argparse.Namespace) -> Config:
    if config.influx is not None and (args.no_create_database or args.influx_no_sync):
        influx = dataclasses.replace(
            config.influx,
            create_database=not args.no_create_database,
            no_sync=args.influx_no_sync,
        )
        config = dataclasses.replace(config, influx=influx)
    return config


def config_of(args: argparse.Namespace) -> Config:
    """The settings ``run``'s parsed command line and its environment give."""
    overrides = {var: getattr(args, var) for var in OVERRIDES.values()}
    return _patched(
        load_config(
            overrides, env_file=args.env_file, tuning=tuning(args), config_file=args.config
        ),
        args,
    )


def main(args: argparse.Namespace) -> int:
    if args.workers != 1:
        overrides = {var: getattr(args, var) for var in OVERRIDES.values()}
        return _supervise(args, overrides)
    run_config(config_of(args))
    return 0


def _supervise(args: argparse.Namespace, overrides: dict[str, str | None]) -> int:
    """``--workers N``: load and check the settings once here, then run N shard processes,
    each with its own settings made from these (``supervisor.child_configs``)."""
    from .supervisor import Supervisor, child_configs

    if args.workers < 1:
        raise ConfigError([f"--workers must be at least 1 (got {args.workers})"])
    if overrides.get("SHARD") or os.environ.get("SHARD"):
        raise ConfigError(["--workers N makes its own shards: drop --shard / SHARD"])
    config = _patched(
        load_config(
            {**overrides, "SHARD": f"0/{args.workers}"},
            env_file=args.env_file,
            tuning=tuning(args),
            config_file=args.config,
        ),
        args,
    )
    supervisor = Supervisor(
        child_configs(config, args.workers),
        log_format=args.log_format,
        debug=args.debug,
        status_interval_s=config.status_interval_s,
    )
    return trio.run(supervisor.run)
