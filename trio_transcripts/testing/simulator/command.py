"""``python -m trio_transcripts simulate``: the simulator on its own, with faults.

Prints one JSON line with its URLs, then serves until SIGINT/SIGTERM (or, with
``--exit-when-done``, until every frame was sent). Each flag is a field of
:class:`~.config.SimConfig` or :class:`~.config.Faults`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal

import trio

from .config import Faults, SimConfig, add_flags, from_args
from .server import Simulator

log = logging.getLogger("trio_transcripts.simulator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "A Genesys Cloud simulator speaking the real wire formats. Prints one JSON line with "
        "its URLs, then serves."
    )
    add_flags(parser, SimConfig)
    add_flags(parser.add_argument_group("faults"), Faults)


def main(args: argparse.Namespace) -> int:
    config = from_args(SimConfig, args, faults=from_args(Faults, args))

    async def serve() -> None:
        sim = Simulator(config)

        async def run_then_stop(task_status: trio.TaskStatus[dict[str, object]]) -> None:
            await sim.run(task_status=task_status)
            nursery.cancel_scope.cancel()  # --exit-when-done: the simulator ended by itself

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            info = await nursery.start(run_then_stop)
            print(json.dumps(info), flush=True)
        log.info("simulator stopped: %s", sim.stats)

    trio.run(serve)
    return 0


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return
