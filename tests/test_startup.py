"""A signal, ``stop()`` or a host's cancellation at any stage of startup ends the run in time.

Each stage is made to wait for real: a token endpoint that answers 500, an InfluxDB port where
nothing listens, a Genesys API nobody serves. The worker is a real ``run`` process; the test
waits for the worker's own line saying it is retrying, then sends SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_transcripts.assemble import assemble
from trio_transcripts.testing.influxd import free_port
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator

from .pipeline import read_until_exit, simulator_config, simulator_env, start_worker_process
from .waiting import until

SHUTDOWN_TIMEOUT_S = 5.0


@pytest.mark.parametrize(
    ("stage", "faults", "env_changes", "retrying", "waiting_for"),
    [
        pytest.param(
            "token",
            Faults(token_500=10**6),
            {},
            b"token request to",
            b"stopping while still waiting for a token from",
            id="token-retried",
        ),
        pytest.param(
            "database",
            Faults(),
            {"INFLUX_URL": "http://127.0.0.1:{port}", "INFLUX_DATABASE": "startup"},
            b"not ready",
            b"stopping while still waiting for InfluxDB 1.x /write at",
            id="database-not-ready",
        ),
        pytest.param(
            "channel",
            Faults(),
            {"GENESYS_API_URL": "http://127.0.0.1:{port}"},
            b"POST /api/v2/notifications/channels failed",
            b"stopping while still waiting for a notification channel",
            id="channel-retried",
        ),
    ],
)
async def test_sigterm_during_startup_ends_the_run_in_time(
    tmp_path: Path,
    stage: str,
    faults: Faults,
    env_changes: dict[str, str],
    retrying: bytes,
    waiting_for: bytes,
) -> None:
    sim = Simulator(SimConfig(calls=1, utterances=2, faults=faults))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        closed_port = free_port()
        env = simulator_env(info) | {k: v.format(port=closed_port) for k, v in env_changes.items()}
        process = await start_worker_process(
            nursery,
            "--shutdown-timeout",
            str(SHUTDOWN_TIMEOUT_S),
            env=env,
            cwd=tmp_path,
        )
        output = b""
        with trio.fail_after(60):
            while retrying not in output:
                data = await process.stderr.receive_some(65536)
                assert data, f"the worker exited before retrying: {output.decode()[-2000:]}"
                output += data
            process.send_signal(signal.SIGTERM)
            signalled = trio.current_time()
            output += await read_until_exit(process)
        stopped_in_s = trio.current_time() - signalled
        nursery.cancel_scope.cancel()
    text = output.decode()
    assert process.returncode == 0, text[-2000:]
    assert waiting_for in output, text[-2000:]
    assert stopped_in_s < SHUTDOWN_TIMEOUT_S, f"{stage}: stopped {stopped_in_s:.1f} s after SIGTERM"


async def test_host_cancelling_during_the_token_stage_is_not_held_up(tmp_path: Path) -> None:
    # The refresher's scope is shielded only once startup is over: before, a host's
    # cancellation must reach the token request that is being retried.
    sim = Simulator(SimConfig(calls=1, utterances=2, faults=Faults(token_500=10**6)))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        config = simulator_config(info, tmp_path)
        worker = assemble(config)
        host = trio.CancelScope()

        async def start() -> None:
            with host:
                await nursery.start(worker.run)

        with trio.fail_after(30):  # held up, the cancellation would not end the start
            async with trio.open_nursery() as hosting:
                hosting.start_soon(start)
                await until(lambda: "a token" in (worker.waiting_for() or ""))
                host.cancel()
        assert host.cancelled_caught, "startup cannot finish: the token is refused"
        nursery.cancel_scope.cancel()
    assert worker.account.frames == 0


def test_run_imports_no_developer_tool() -> None:
    # ``run`` must not load the simulator, the bench or the influxd launcher: parse its
    # arguments and assemble a worker, then list what was imported.
    probe = (
        "import sys\n"
        "from trio_transcripts import cli\n"
        "from trio_transcripts.config import load_config\n"
        "from trio_transcripts.assemble import assemble\n"
        "args = cli.build_parser('run').parse_args(['run'])\n"
        "import importlib; service = importlib.import_module(cli.COMMANDS['run'][0])\n"
        "config = load_config({'GENESYS_CLIENT_ID': 'x', 'GENESYS_CLIENT_SECRET': 'y',\n"
        "    'CONVERSATION_ID': 'c'}, environ={}, env_file=None)\n"
        "assemble(config)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith(('trio_transcripts',\n"
        "    'influxdb_client')))))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "trio_transcripts.service" in loaded and "trio_transcripts.worker" in loaded
    tools = [
        m
        for m in loaded
        if m.startswith(("trio_transcripts.testing", "trio_transcripts.bench"))
        or m in ("trio_transcripts.demo",)
    ]
    assert tools == [], f"run loads developer tools: {tools}"
    assert "influxdb_client" not in loaded
