"""The deployment files, tested as far as this machine can: no container runtime here, so
the container's command, its health check and the compose file's settings are run against
the simulator and a real InfluxDB (through the 2.x front, as compose configures 2.x); the
systemd unit goes through ``systemd-analyze verify`` where that tool exists."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import yaml

from trio_transcripts.errors import EXIT_NOT_KEPT
from trio_transcripts.shard import shard_of
from trio_transcripts.testing.influxd import Influxd, free_port
from trio_transcripts.testing.simulator import SimConfig, Simulator

from .influxfront import InfluxFront
from .pipeline import read_until_exit, simulator_env, start_worker_process

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
STATE = "/var/lib/trio-transcripts"


def dockerfile_instruction(name: str) -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ")]
    exec_form = line.split(" ", 1)[1].strip()
    if name == "HEALTHCHECK":
        exec_form = exec_form.split(" CMD ", 1)[1]
    value: list[str] = json.loads(exec_form)
    return value


def test_unit_passes_systemd_analyze_verify() -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    result = subprocess.run(
        [tool, "verify", str(DEPLOY / "trio-transcripts.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stderr.splitlines() if "trio-transcripts" in line]
    assert result.returncode == 0 and problems == [], result.stderr


def test_unit_and_image_run_the_same_job() -> None:
    unit = (DEPLOY / "trio-transcripts.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    assert exec_start.split()[1:5] == ["-m", "trio_transcripts", "run", "--metrics-address"]
    assert dockerfile_instruction("ENTRYPOINT")[1:] == ["-m", "trio_transcripts"]
    assert dockerfile_instruction("CMD")[0] == "run"
    for setting in ("DynamicUser=yes", "StateDirectory=trio-transcripts", "Restart=on-failure"):
        assert setting in unit


def test_the_unit_restarts_a_run_that_kept_something_nowhere() -> None:
    # Exit 74 (errors.EXIT_NOT_KEPT): Restart=on-failure restarts on every non-zero code
    # unless the unit exempts it; nothing here does (systemd.service(5), Restart=).
    unit = (DEPLOY / "trio-transcripts.service").read_text()
    assert re.findall(r"^Restart=(.*)$", unit, re.M) == ["on-failure"]
    for exempting in ("RestartPreventExitStatus", "SuccessExitStatus"):
        assert not re.findall(rf"^{exempting}=.*\b{EXIT_NOT_KEPT}\b", unit, re.M)


async def test_the_containers_command_and_healthcheck_with_composes_settings(
    tmp_path: Path, influxd: Influxd, database: str
) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    worker = compose["services"]["worker"]
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert any(v.endswith(":" + STATE) for v in worker["volumes"]), "the spool is on a volume"
    environment: dict[str, str] = dict(worker["environment"])
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "genesys_client_secret").write_text("sim-secret\n")
    (secrets / "influx_token").write_text("t0ken\n")
    for name, value in environment.items():  # the files compose mounts, here
        environment[name] = value.replace("/run/secrets", str(secrets))
    state = tmp_path / "state"
    state.mkdir()
    metrics_port = free_port()
    command = [
        arg.replace(STATE, str(state)).replace("0.0.0.0:9464", f"127.0.0.1:{metrics_port}")
        for arg in dockerfile_instruction("ENTRYPOINT") + dockerfile_instruction("CMD")
    ]
    command[0] = sys.executable
    healthcheck = [
        arg.replace("127.0.0.1:9464", f"127.0.0.1:{metrics_port}")
        for arg in dockerfile_instruction("HEALTHCHECK")
    ]
    healthcheck[0] = sys.executable
    influxd.query(f'CREATE DATABASE "{database}"')
    sim = Simulator(SimConfig(calls=2, utterances=4))
    with InfluxFront(influxd.url, org=environment["INFLUX_ORG"], buckets={database}) as v2:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(sim.run)
            env = simulator_env(info) | environment
            del env["GENESYS_CLIENT_SECRET"]  # from its file, as in the container
            env |= {"INFLUX_URL": v2.url, "INFLUX_BUCKET": database}
            assert command[1:4] == ["-m", "trio_transcripts", "run"]
            process = await start_worker_process(nursery, *command[4:], env=env, cwd=state)
            output = b""
            with trio.fail_after(60):
                await sim.done.wait()
                while not re.search(rb"status: .*\b8 persisted", output):
                    output += await process.stderr.receive_some(65536)  # type: ignore[union-attr]
                healthy = await trio.run_process(healthcheck, check=False)
                process.send_signal(signal.SIGTERM)
                output += await read_until_exit(process)
            nursery.cancel_scope.cancel()
    assert healthy.returncode == 0, "HEALTHCHECK saw /readyz answer 200"
    assert process.returncode == 0, output.decode()[-2000:]
    (row,) = influxd.query("SELECT count(text) FROM transcriptions", db=database)
    assert row["count"] == len(sim.truth) == 8
    assert (state / "spool").is_dir()


async def test_the_statefulset_pod_runs_its_own_shard(
    tmp_path: Path, influxd: Influxd, database: str
) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    stateful = kinds["StatefulSet"]["spec"]
    replicas = stateful["replicas"]
    (container,) = stateful["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    assert args[args.index("--shard") + 1] == f"auto/{replicas}"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert stateful["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    settings: dict[str, str] = dict(kinds["ConfigMap"]["data"])
    assert settings["INFLUX_API"] == "v3"
    state = tmp_path / "state"
    state.mkdir()
    args = [
        a.replace(STATE, str(state)).replace("0.0.0.0:9464", f"127.0.0.1:{free_port()}")
        for a in args
    ]
    influxd.query(f'CREATE DATABASE "{database}"')
    # Only pod 2 runs here: the other shards' frames find no subscriber and are skipped soon.
    sim = Simulator(
        SimConfig(
            calls=16, utterances=3, queue_id=settings["GENESYS_QUEUE_ID"], subscribe_wait_s=0.01
        )
    )
    with InfluxFront(influxd.url, buckets={database}) as front:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(sim.run)
            env = simulator_env(info) | settings
            del env["CONVERSATION_ID"]  # the queue announces the calls
            env |= {
                "HOSTNAME": "transcripts-2",  # what Kubernetes sets in pod 2
                "GENESYS_CLIENT_ID": "sim-client",
                "INFLUX_URL": front.url,
                "INFLUX_DATABASE": database,
                "INFLUX_TOKEN": "t0ken",
            }
            assert args[0] == "run"
            process = await start_worker_process(
                nursery, *args[1:], "--status-interval", "0.5", env=env, cwd=state
            )
            output = b""
            with trio.fail_after(60):
                await sim.done.wait()
                while b"status: 0 frames/s" not in output[-2000:]:
                    output += await process.stderr.receive_some(65536)  # type: ignore[union-attr]
                process.send_signal(signal.SIGTERM)
                output += await read_until_exit(process)
            nursery.cancel_scope.cancel()
    assert process.returncode == 0, output.decode()[-2000:]
    assert b"shard 2/4" in output
    rows = influxd.query("SELECT * FROM transcriptions WHERE final = true", db=database)
    stored = {(r["conversationId"], r["utteranceId"]) for r in rows}
    mine = [t for t in sim.truth if shard_of(str(t["conversationId"]), replicas) == 2]
    assert stored == {(t["conversationId"], t["utteranceId"]) for t in mine} != set()
    assert all(shard_of(str(c), replicas) == 2 for c, _ in stored), "only its own calls"
