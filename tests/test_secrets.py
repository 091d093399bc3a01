"""No secret is ever printed: startup, a failing database, a refused token, shutdown, with
``--debug`` and JSON logs, and what ``/readyz`` and ``/metrics`` serve meanwhile."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import trio

from trio_transcripts.testing.influxd import free_port
from trio_transcripts.testing.simulator import SimConfig, Simulator

from .pipeline import read_until_exit, simulator_env, start_worker_process

MARK = "S3CR3T"  # in every secret below, and nowhere else


def secret(name: str) -> str:
    return f"{name}-{MARK}-value"


@pytest.mark.parametrize(
    ("case", "waiting_line"),
    [
        ("influx-1x", b"not ready"),
        ("influx-2x", b"not ready"),
        ("refused-token", None),
    ],
)
async def test_no_secret_in_anything_printed(
    tmp_path: Path, case: str, waiting_line: bytes | None
) -> None:
    client_secret = secret("client")
    (tmp_path / "client-secret").write_text(client_secret + "\n")
    (tmp_path / "influx-password").write_text(secret("password") + "\n")
    (tmp_path / "influx-token").write_text(secret("token") + "\n")
    closed = f"127.0.0.1:{free_port()}"
    metrics = f"127.0.0.1:{free_port()}"
    accepted = client_secret if case != "refused-token" else secret("the-right-one")
    sim = Simulator(SimConfig(calls=1, utterances=2, client_secret=accepted))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        env = simulator_env(info)
        del env["GENESYS_CLIENT_SECRET"]
        env["GENESYS_CLIENT_SECRET_FILE"] = str(tmp_path / "client-secret")
        if case == "influx-2x":
            env |= {
                "INFLUX_URL": f"http://{closed}",
                "INFLUX_ORG": "acme",
                "INFLUX_BUCKET": "b",
                "INFLUX_TOKEN_FILE": str(tmp_path / "influx-token"),
            }
        else:
            env |= {
                "INFLUX_URL": f"http://user:{secret('url')}@{closed}",
                "INFLUX_DATABASE": "d",
                "INFLUX_USERNAME": "user",
                "INFLUX_PASSWORD_FILE": str(tmp_path / "influx-password"),
            }
        process = await start_worker_process(
            nursery,
            "--debug",
            "--log-format",
            "json",
            "--metrics-address",
            metrics,
            env=env,
            cwd=tmp_path,
        )
        output = b""
        with trio.fail_after(60):
            if waiting_line is not None:
                while waiting_line not in output:
                    output += await process.stderr.receive_some(65536)
                async with httpx.AsyncClient(base_url=f"http://{metrics}") as client:
                    for path in ("/readyz", "/metrics"):
                        output += (await client.get(path)).content
                process.send_signal(signal.SIGTERM)
            output += await read_until_exit(process)
        nursery.cancel_scope.cancel()
    text = output.decode()
    assert process.returncode == (1 if case == "refused-token" else 0), text[-3000:]
    assert "refused" in text if case == "refused-token" else "InfluxDB" in text
    assert MARK not in text, [line for line in text.splitlines() if MARK in line][:3]
