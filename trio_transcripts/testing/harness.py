"""Run a worker against the simulator until everything the simulator sent is accounted for."""

from __future__ import annotations

import trio

from ..worker import Worker
from .simulator import Simulator


async def run_until_accounted(worker: Worker, sim: Simulator) -> None:
    """Run ``worker`` until the simulator has sent everything and each final it sent is
    persisted or dead-lettered; then stop it in order."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_when_accounted, worker, sim)
        await worker.run()
        nursery.cancel_scope.cancel()


async def _stop_when_accounted(worker: Worker, sim: Simulator) -> None:
    await sim.done.wait()
    while True:
        account = worker.account
        if worker.idle() and account.persisted + account.dead_lettered >= len(sim.truth):
            break
        await worker.wait_progress()
    worker.stop()
