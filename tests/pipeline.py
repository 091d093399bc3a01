"""The whole pipeline in one Trio run: simulator -> worker -> real InfluxDB, and its checks."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from trio_transcripts.assemble import assemble
from trio_transcripts.config import Config
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import NS_PER_MS
from trio_transcripts.retry import Backoff
from trio_transcripts.spool import Spool, decode_records
from trio_transcripts.testing.harness import run_until_accounted
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import SimConfig, Simulator
from trio_transcripts.worker import Worker


def simulator_config(info: dict[str, object], tmp_path: Path, **changes: object) -> Config:
    """A worker's configuration for the simulator ``info`` describes, writing to a file."""
    config = Config(
        client_id="sim-client",
        client_secret="sim-secret",
        login_url=str(info["login_url"]),
        api_url=str(info["api_url"]),
        conversation_ids=tuple(info["conversation_ids"]),  # type: ignore[call-overload]
        dead_letter_path=tmp_path / "dead.jsonl",
        output_path=tmp_path / "out.lp",
        state_dir=tmp_path / "state",
        batch_wait_ms=20,
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def pipeline_config(
    info: dict[str, object], tmp_path: Path, influxd: Influxd, database: str, **changes: object
) -> Config:
    """The same, writing to ``database`` on ``influxd``."""
    influx = InfluxSettings(url=influxd.url, database=database, backoff=Backoff(0.01, 0.2))
    return simulator_config(info, tmp_path, **{"influx": influx, **changes})


def finals_in(influxd: Influxd, database: str) -> dict[tuple[str, str], dict[str, object]]:
    rows = influxd.query("SELECT * FROM transcriptions WHERE final = true", db=database)
    keyed = {(str(r["conversationId"]), str(r["utteranceId"])): r for r in rows}
    assert len(keyed) == len(rows), "no utterance is stored twice"
    return keyed


def assert_matches_truth(sim: Simulator, influxd: Influxd, database: str) -> None:
    stored = finals_in(influxd, database)
    assert len(stored) == len(sim.truth) > 0
    for truth in sim.truth:
        row = stored[(str(truth["conversationId"]), str(truth["utteranceId"]))]
        assert row["text"] == truth["text"]
        assert row["speaker"] == truth["speaker"]
        assert row["confidence"] == truth["confidence"]
        assert row["time"] // NS_PER_MS == truth["startMs"]  # type: ignore[operator]
        assert row["duration_ms"] == truth["endMs"] - truth["startMs"]  # type: ignore[operator]


async def run_to_completion(
    sim_config: SimConfig, tmp_path: Path, influxd: Influxd, database: str, **changes: object
) -> tuple[Worker, Simulator]:
    sim = Simulator(sim_config)
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = assemble(pipeline_config(info, tmp_path, influxd, database, **changes))
        with trio.fail_after(60):
            await run_until_accounted(worker, sim)
        nursery.cancel_scope.cancel()
    return worker, sim


async def kill_at_once(process: trio.Process) -> None:
    """``deliver_cancel`` for a worker subprocess a test gives up on.

    The worker treats SIGTERM as "shut down in order", so trio's default first attempt can
    take as long as the drain; trio then warns before its SIGKILL, and under our
    ``filterwarnings = error`` that warning is raised instead, the SIGKILL never comes and the
    test hangs rather than failing.
    """
    process.kill()


async def start_worker_process(
    nursery: trio.Nursery,
    *args: str,
    env: dict[str, str],
    cwd: Path,
    scaled: Sequence[str] = (),
) -> trio.Process:
    """``python -m trio_transcripts run ARGS`` in ``nursery``, its stderr piped to the test;
    with ``scaled`` (``--session-keepalive 4``, ...), the platform's timings scaled down
    (``trio_transcripts.testing.scaled_run``)."""
    command = (
        ["-m", "trio_transcripts.testing.scaled_run", *scaled]
        if scaled
        else ["-m", "trio_transcripts", "run"]
    )
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [sys.executable, *command, *args],
            env=env,
            cwd=cwd,
            stderr=subprocess.PIPE,
            check=False,
            deliver_cancel=kill_at_once,
        )
    )
    return process


def simulator_env(info: dict[str, object] | None = None) -> dict[str, str]:
    """The environment for a worker process: the caller's, less any real Genesys or InfluxDB
    settings, plus the simulator's (when ``info`` is given)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GENESYS_", "INFLUX_", "CONVERSATION_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    if info is not None:
        env.update(
            {
                "GENESYS_CLIENT_ID": "sim-client",
                "GENESYS_CLIENT_SECRET": "sim-secret",
                "GENESYS_LOGIN_URL": str(info["login_url"]),
                "GENESYS_API_URL": str(info["api_url"]),
                "CONVERSATION_ID": ",".join(info["conversation_ids"]),
            }
        )  # type: ignore[arg-type]
    return env


async def read_until_exit(process: trio.Process) -> bytes:
    """The rest of ``process``'s stderr, once it has exited."""
    assert process.stderr is not None
    rest = b""
    while chunk := await process.stderr.receive_some(65536):
        rest += chunk
    await process.wait()
    return rest


def spool_pending(spool: Spool) -> int:
    """Utterances in the spool's records not yet acknowledged, over every file."""
    return sum(
        len(record)
        for path in spool.files()
        for record in decode_records(path.read_bytes())[0][spool.acknowledged(path) :]
    )
