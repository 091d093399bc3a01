"""Metrics and readiness over real sockets: the simulator, the worker, a real influxd."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import trio
import trio.testing

from trio_transcripts.assemble import assemble
from trio_transcripts.ops import Ops
from trio_transcripts.testing.influxd import free_port, start_influxd
from trio_transcripts.testing.simulator import SimConfig, Simulator
from trio_transcripts.worker import Worker

from .conftest import start_influxd_or_skip
from .pipeline import pipeline_config


def metric(text: str, name: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


async def ready(client: httpx.AsyncClient) -> tuple[int, dict[str, object]]:
    response = await client.get("/readyz")
    return response.status_code, response.json()["checks"]


async def until_ready(client: httpx.AsyncClient, expected: bool) -> dict[str, object]:
    """Poll ``/readyz`` until it says ``expected``: the endpoint is what is under test."""
    while True:
        status, checks = await ready(client)
        if (status == 200) == expected:
            return checks
        await trio.sleep(0.05)


async def run_until_idle(worker: Worker, sim: Simulator) -> None:
    await sim.done.wait()
    while not (worker.idle() and worker.account.persisted >= len(sim.truth)):
        await worker.wait_progress()


async def test_metrics_equal_the_database_and_readiness_follows_the_parts(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = start_influxd_or_skip(tmp_path / "db", http_port=port)
    sim_port = free_port()
    sim_config = SimConfig(port=sim_port, calls=3, utterances=6)
    address = f"127.0.0.1:{free_port()}"
    try:
        async with (
            trio.open_nursery() as nursery,
            httpx.AsyncClient(base_url=f"http://{address}") as client,
        ):
            sim = Simulator(sim_config)
            sim_scope = trio.CancelScope()

            async def run_sim(task_status: trio.TaskStatus[dict[str, object]]) -> None:
                with sim_scope:
                    await sim.run(task_status=task_status)

            info = await nursery.start(run_sim)
            config = pipeline_config(info, tmp_path, server, "ops", ready_sink_s=1.0)
            ops = Ops(address, config.ready_sink_s)
            worker = assemble(config, observer=ops.metrics)
            await nursery.start(ops.serve, worker.snapshot)
            await nursery.start(worker.run)
            with trio.fail_after(60):
                await run_until_idle(worker, sim)
                text = (await client.get("/metrics")).text
                (row,) = server.query("SELECT count(text) FROM transcriptions", db="ops")
                assert metric(text, "trio_transcripts_utterances_persisted_total") == row["count"]
                assert row["count"] == len(sim.truth) > 0
                assert metric(text, "trio_transcripts_ring_capacity") == config.buffer_capacity
                pauses = worker.snapshot().ring_pauses
                assert metric(text, "trio_transcripts_ring_pauses_total") == pauses
                assert 'trio_transcripts_frames_total{source="notifications"}' in text
                assert "trio_transcripts_persist_lag_seconds_count" in text
                assert (await client.get("/healthz")).status_code == 200
                await until_ready(client, True)

                sim_scope.cancel()  # the platform goes away
                checks = await until_ready(client, False)
                assert checks["source"]["ok"] is False  # type: ignore[index]
                sim = Simulator(sim_config)  # and comes back, on the same port
                await nursery.start(sim.run)
                await until_ready(client, True)

                server.kill()  # the database goes away
                checks = await until_ready(client, False)
                assert checks["sink"]["ok"] is False  # type: ignore[index]
                server = await trio.to_thread.run_sync(
                    partial(start_influxd, tmp_path / "db", http_port=port)
                )
                await until_ready(client, True)

                worker.stop()
                status, checks = await ready(client)
                assert status == 503 and checks["running"]["ok"] is False  # type: ignore[index]
            nursery.cancel_scope.cancel()
    finally:
        server.stop()
