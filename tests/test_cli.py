"""The command line and the README's examples, as a user runs them: real processes."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from trio_transcripts.cli import _TextFormatter
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import SimConfig, Simulator

from .pipeline import kill_at_once, simulator_env, start_worker_process

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET = "sim-secret"


@asynccontextmanager
async def simulator(**config: object) -> AsyncIterator[tuple[Simulator, dict[str, object]]]:
    sim = Simulator(SimConfig(**config))  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        yield sim, info
        nursery.cancel_scope.cancel()


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "trio_transcripts", *args],
            env=env,
            cwd=cwd,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            deliver_cancel=kill_at_once,
        )


def readme_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Embedding") : text.index("## Schema")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_has_three_examples() -> None:
    assert len(readme_examples()) == 3


@pytest.mark.parametrize("index", [0, 1, 2], ids=["run_worker", "stream", "custom-sink"])
async def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_examples()[index], encoding="utf-8")
    async with simulator(calls=3, utterances=6, rate=100) as (sim, info):
        with trio.fail_after(60):
            result = await trio.run_process(
                [sys.executable, str(script)],
                env=simulator_env(info),
                cwd=tmp_path,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                deliver_cancel=kill_at_once,
            )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    texts = {str(t["text"]) for t in sim.truth}
    if index == 0:
        assert "persisted" in out and (tmp_path / "transcripts.lp").stat().st_size > 0
    else:
        assert any(text in out for text in texts), out


async def test_missing_settings_are_all_reported(tmp_path: Path) -> None:
    result = await run_cli("run", env=simulator_env(), cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 1
    for name in ("GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET", "CONVERSATION_ID"):
        assert f"{name}" in err
    assert "Traceback" not in err


async def test_bad_influx_url(tmp_path: Path) -> None:
    env = simulator_env(
        {
            "login_url": "http://127.0.0.1:9",
            "api_url": "http://127.0.0.1:9",
            "conversation_ids": ["c1"],
        }
    )
    env["INFLUX_URL"] = "localhost:8086"
    result = await run_cli("run", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "INFLUX_URL must be an http(s) URL" in result.stderr.decode()


async def test_wrong_credentials_one_clear_line_no_secret(tmp_path: Path) -> None:
    async with simulator() as (_, info):
        env = simulator_env(info)
        env["GENESYS_CLIENT_SECRET"] = "wrong-" + SECRET
        result = await run_cli("run", env=env, cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("trio_transcripts: error:") and "sim-client" in last
    assert str(info["login_url"]) in last and "invalid_client" in last
    assert "wrong-" + SECRET not in err and "Traceback" not in err


async def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = await run_cli("run", "--no-such-flag", env=simulator_env(), cwd=tmp_path)
    assert result.returncode == 2


async def test_sigterm_mid_stream_loses_nothing(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    async with simulator(calls=3, utterances=60, rate=150) as (sim, info):
        env = simulator_env(info) | {"INFLUX_URL": influxd.url, "INFLUX_DATABASE": database}
        async with trio.open_nursery() as nursery:
            process = await start_worker_process(
                nursery,
                "--log-format",
                "json",
                "--status-interval",
                "0.2",
                "--batch-wait-ms",
                "20",
                env=env,
                cwd=tmp_path,
            )
            lines = _lines(process.stderr)
            with trio.fail_after(60):
                async for line in lines:  # the worker's own status lines, as they come
                    match = re.search(r"(\d+) persisted", line)
                    if match and int(match.group(1)) >= 15:
                        break
                finalized_before = {
                    (str(t["conversationId"]), str(t["utteranceId"])) for t in sim.truth
                }
                async for line in lines:
                    if "status:" in line:  # one more status period: what was sent is read
                        break
                process.send_signal(signal.SIGTERM)
                rest = [line async for line in lines]
                await process.wait()
    assert process.returncode == 0, rest[-5:]
    account = next(line for line in rest if line.startswith("account:"))
    persisted = int(re.search(r"(\d+) persisted", account).group(1))  # type: ignore[union-attr]
    partials = int(re.search(r"(\d+) partial", account).group(1))  # type: ignore[union-attr]
    rows = influxd.query("SELECT * FROM transcriptions", db=database)
    assert len(rows) == persisted, "the account matches what a query returns"
    assert sum(1 for r in rows if r["final"] is False) == partials >= 1
    stored = {(str(r["conversationId"]), str(r["utteranceId"])) for r in rows if r["final"]}
    assert finalized_before <= stored, "nothing finalized before the signal is missing"
    assert not sim.done.is_set(), "the signal came mid-stream"


async def _lines(stream: trio.abc.ReceiveStream | None) -> AsyncIterator[str]:
    assert stream is not None
    buffer = b""
    while True:
        data = await stream.receive_some(65536)
        if not data:
            break
        buffer += data
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace")
            try:
                yield json.loads(line)["message"]
            except (ValueError, KeyError):
                yield line


def test_a_text_log_line_is_one_line_whatever_the_message_holds() -> None:
    # A server's message or a frame's excerpt may carry a newline and a fake record after
    # it, or a terminal's escape codes.
    forged = "bye\n12:00:00 ERROR   trio_transcripts: forged\x1b[2J\u2028"
    record = logging.LogRecord(
        "trio_transcripts.source", logging.WARNING, __file__, 1, "notice: %s", (forged,), None
    )
    line = _TextFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING notice: bye\\n12:00:00 ERROR   trio_transcripts: forged\\x1b[2J\\u2028"
