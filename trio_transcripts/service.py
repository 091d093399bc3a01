"""``python -m trio_transcripts run``: the worker as a service, under SIGINT and SIGTERM.

The first signal starts the ordered shutdown (at any moment, startup included); a second
SIGINT skips the wait for the sink and dead-letters what is left. The flags are
``settings.py``'s table.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .assemble import assemble
from .config import Config, add_flags, load_config
from .errors import ConfigError
from .settings import given
from .worker import Worker

if TYPE_CHECKING:
    from .ops import Ops

log = logging.getLogger("trio_transcripts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read transcripts from Genesys Cloud and persist them. Settings come from the "
        "environment and .env (see README)."
    )
    add_flags(parser, "run")
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


def config_of(args: argparse.Namespace, **flags: Any) -> Config:
    """The settings ``run``'s parsed command line and its environment give (``flags``: more,
    by setting name)."""
    return load_config({**given(args), **flags}, env_file=args.env_file, config_file=args.config)


def main(args: argparse.Namespace) -> int:
    if args.workers != 1:
        return _supervise(args)
    run_config(config_of(args))
    return 0


def _supervise(args: argparse.Namespace) -> int:
    """``--workers N``: load and check the settings once here, then run N shard processes,
    each with its own settings made from these (``supervisor.child_configs``)."""
    from .supervisor import Supervisor, child_configs

    if args.workers < 1:
        raise ConfigError([f"--workers must be at least 1 (got {args.workers})"])
    if getattr(args, "SHARD", None) or os.environ.get("SHARD"):
        raise ConfigError(["--workers N makes its own shards: drop --shard / SHARD"])
    config = config_of(args, SHARD=f"0/{args.workers}")
    supervisor = Supervisor(
        child_configs(config, args.workers),
        log_format=args.log_format,
        debug=args.debug,
        status_interval_s=config.status_interval_s,
    )
    return trio.run(supervisor.run)
