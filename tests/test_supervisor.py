"""``run --workers N``: shard processes under a supervisor, a child killed and restarted,
SIGTERM passed on, a configuration over the channel budget refused."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import trio

from trio_transcripts.account import Account
from trio_transcripts.config import Config
from trio_transcripts.errors import EXIT_NOT_KEPT
from trio_transcripts.shard import Shard
from trio_transcripts.shard_process import ACCOUNT, SNAPSHOT, Orders
from trio_transcripts.snapshot import Snapshot
from trio_transcripts.supervisor import COMMAND, Child, Supervisor, child_configs, exit_code_of
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import SimConfig, Simulator

from .pipeline import finals_in, read_until_exit, simulator_env, start_worker_process


async def test_workers_restart_a_killed_child_and_stop_in_order(
    tmp_path: Path, influxd: Influxd, database: str
) -> None:
    sim = Simulator(SimConfig(calls=30, utterances=12, rate=60))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        env = simulator_env(info) | {"INFLUX_URL": influxd.url, "INFLUX_DATABASE": database}
        process = await start_worker_process(
            nursery,
            *("--workers", "3", "--spool", str(tmp_path / "spool"), "--spool-after", "0.5"),
            *("--status-interval", "0.5", "--dead-letter", str(tmp_path / "dead.jsonl")),
            env=env,
            cwd=tmp_path,
        )
        assert process.stderr is not None
        output = b""

        async def until(pattern: bytes) -> re.Match[bytes]:
            nonlocal output
            while (found := re.search(pattern, output)) is None:
                output += await process.stderr.receive_some(65536)  # type: ignore[union-attr]
            return found

        with trio.fail_after(90):
            pid = int((await until(rb"worker 1/3 started \(pid (\d+)\)")).group(1))
            await until(rb"status: 3 of 3 workers up, .* [1-9]\d* persisted")
            os.kill(pid, signal.SIGKILL)  # the fault under test
            await until(rb"worker 1/3 exited \(signal 9\); restart 1")
            await until(rb"worker 1/3 started \(pid (?!" + str(pid).encode() + rb"\))\d+\)")
            restarted_at = len(sim.truth)
            await sim.done.wait()
            mark = len(output)
            while not re.search(rb"status: 3 of 3 workers up, 0 frames/s", output[mark:]):
                output += await process.stderr.receive_some(65536)
            process.send_signal(signal.SIGTERM)
            output += await read_until_exit(process)
        nursery.cancel_scope.cancel()
    text = output.decode()
    assert process.returncode == 0, text[-3000:]
    assert text.count("SIGTERM: shutting down in order") >= 3, "each child drained in order"
    assert re.search(r"^account: .*; 1 restart\(s\)$", text, re.M), text[-1000:]
    stored = finals_in(influxd, database)  # asserts: nothing stored twice
    late = {(str(t["conversationId"]), str(t["utteranceId"])) for t in sim.truth[restarted_at:]}
    assert late <= set(stored), "every call resumed after the restart, the killed shard's too"
    assert not list((tmp_path / "spool").glob("*/spool-*.log")), "every spool replayed"


async def test_more_shards_than_channels_is_refused(tmp_path: Path) -> None:
    env = simulator_env() | {
        "GENESYS_CLIENT_ID": "id",
        "GENESYS_CLIENT_SECRET": "secret",
        "CONVERSATION_ID": "c1",
    }
    result = await trio.run_process(
        [sys.executable, "-m", "trio_transcripts", "run", "--workers", "21"],
        env=env,
        cwd=tmp_path,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 1
    assert b"21 shard(s) x 1 channel(s) each = 21 channels" in result.stderr
    assert b"OAuth client" in result.stderr


def test_each_child_has_its_own_shard_spool_state_directory_and_port() -> None:
    config = Config(
        client_id="id",
        client_secret="s3cret",
        spool_dir=Path("/var/spool/t"),
        metrics_address="127.0.0.1:9464",
    )
    first, second = child_configs(config, 2)
    assert (first.shard, second.shard) == (Shard(0, 2), Shard(1, 2))
    assert first.spool_dir == Path("/var/spool/t/shard-0-of-2")
    assert first.state_path == Path("/var/spool/state/shard-0-of-2")
    assert second.state_path == Path("/var/spool/state/shard-1-of-2")
    assert (first.metrics_address, second.metrics_address) == ("127.0.0.1:9464", "127.0.0.1:9465")
    (only, _) = child_configs(dataclasses.replace(config, state_dir=Path("/srv/state")), 2)
    assert only.state_path == Path("/srv/state/shard-0-of-2")
    (bare, _) = child_configs(Config(), 2)
    assert bare.state_path == Path("state/shard-0-of-2") and bare.spool_dir is None
    # Settings go down a pipe: the command line is the same for every child, secret-free.
    assert "s3cret" not in " ".join(COMMAND)


@pytest.mark.parametrize(
    "abbreviated", [("--work", "2"), ("--state-d", "/tmp/one"), ("--spool-aft", "1")]
)
async def test_abbreviated_flags_are_a_usage_error(
    tmp_path: Path, abbreviated: tuple[str, ...]
) -> None:
    result = await trio.run_process(
        [sys.executable, "-m", "trio_transcripts", "run", *abbreviated],
        env=simulator_env() | {"CONVERSATION_ID": "c1"},
        cwd=tmp_path,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"unrecognized arguments: {' '.join(abbreviated)}".encode() in result.stderr


def test_a_childs_reports_are_read_and_a_line_it_cannot_read_ends_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    child = Child(0, 2, Orders(Config()))
    first = Snapshot(at=10.0, account=Account(frames=100), source="notifications")
    Supervisor._report(child, SNAPSHOT + first.to_json())
    later = Snapshot(at=12.0, account=Account(frames=300, persisted=7), source="notifications")
    Supervisor._report(child, SNAPSHOT + later.to_json())
    assert child.snapshot == later and child.frames_per_s == 100.0
    Supervisor._report(child, SNAPSHOT + "{not json")
    assert "unreadable report" in caplog.text and child.snapshot == later
    Supervisor._report(child, "a library's own print")
    assert "[0/2] a library's own print" in capsys.readouterr().err
    Supervisor._report(child, ACCOUNT + json.dumps(dataclasses.asdict(Account(persisted=7))))
    assert child.account == Account(persisted=7)


@pytest.mark.parametrize(
    ("runs", "fatal", "code"),
    [
        ([[0], [0]], False, 0),
        ([[-9, 0], [0]], False, 0),  # a crash, restarted, then a clean stop
        ([[EXIT_NOT_KEPT, 0], [0]], False, EXIT_NOT_KEPT),  # restarted, but that data is lost
        ([[1], [0]], True, 1),
        ([[1], [EXIT_NOT_KEPT]], True, EXIT_NOT_KEPT),
        ([[0], []], False, 1),  # a child that never ran
    ],
)
def test_the_supervisors_exit_code_says_data_was_not_kept_whatever_came_after(
    runs: list[list[int]], fatal: bool, code: int
) -> None:
    assert exit_code_of(runs, fatal=fatal) == code
