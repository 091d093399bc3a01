"""Scale, measured: ``run --workers 1`` against ``--workers 2`` on a realistic load.

The simulator (its own process) serves ``--calls`` conversations at ``--per-call`` frames per
second each (see benchmarks/README.md for why 0.6); the worker fleet follows all of them,
writing to a file (the sink is not what is measured). After ``--warmup`` seconds (token,
channels, subscriptions), the fleet's CPU time (``/proc``), frames read (``/metrics``) and
resident memory are taken over ``--window`` seconds. Each configuration runs ``--repeat``
times; medians and ranges are printed, and the projection to 20,000 calls.

    python -m benchmarks.scale --calls 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from trio_transcripts.testing.influxd import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


def frames(ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        for line in text.decode().splitlines():
            if line.startswith("trio_transcripts_frames_total{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def one_run(args: argparse.Namespace, workers: int) -> dict[str, float]:
    rate = args.calls * args.per_call
    utterances = int((args.warmup + args.window + 30) * args.per_call / 3) + 5
    sim = subprocess.Popen(
        [sys.executable, "-m", "trio_transcripts", "simulate", "--calls", str(args.calls),
         "--utterances", str(utterances), "--rate", str(rate), "--subscribe-wait", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        info = json.loads(sim.stdout.readline())
        base = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("INFLUX", "GENESYS"))},
                "GENESYS_CLIENT_ID": "sim-client",
                "GENESYS_CLIENT_SECRET": "sim-secret",
                "GENESYS_LOGIN_URL": info["login_url"],
                "GENESYS_API_URL": info["api_url"],
            }
            # Thousands of ids pass the environment's size limit: a config file holds them.
            ids = ", ".join(f'"{c}"' for c in info["conversation_ids"])
            Path(tmp, "scale.toml").write_text(f"conversation_id = [{ids}]\n")
            command = [sys.executable, "-m", "trio_transcripts", "run"]
            command += ["--workers", str(workers), "--metrics-address", f"127.0.0.1:{base}"]
            command += ["--output", f"{tmp}/out.lp", "--dead-letter", f"{tmp}/dead.jsonl"]
            command += ["--env-file", "/nonexistent", "--config", f"{tmp}/scale.toml"]
            fleet = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, cwd=tmp)
            try:
                time.sleep(args.warmup)  # a benchmark's wall-clock window, not a test
                pids = children(fleet.pid) if workers > 1 else [fleet.pid]
                ports = [base + i for i in range(workers)]
                cpu0, frames0, t0 = sum(map(cpu_s, pids)), frames(ports), time.monotonic()
                time.sleep(args.window)
                cpu1, frames1, t1 = sum(map(cpu_s, pids)), frames(ports), time.monotonic()
                rss = [rss_mb(p) for p in pids]
            finally:
                fleet.send_signal(signal.SIGTERM)
                fleet.wait(timeout=60)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    read = frames1 - frames0
    return {
        "frames_per_s": read / (t1 - t0),
        "offered_per_s": rate,
        "cpu_us_per_frame": (cpu1 - cpu0) / read * 1e6,
        "cores": (cpu1 - cpu0) / (t1 - t0),
        "rss_mb_per_worker": max(rss),
        "rss_mb_total": sum(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--per-call", type=float, default=0.6, help="frames/s per call")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    results: dict[int, list[dict[str, float]]] = {}
    for workers in args.workers:
        results[workers] = [one_run(args, workers) for _ in range(args.repeat)]
    summary = {}
    for workers, runs in results.items():
        row = {}
        for key in runs[0]:
            values = [r[key] for r in runs]
            row[key] = (statistics.median(values), min(values), max(values))
        summary[workers] = row
        print(f"--workers {workers}: " + "; ".join(
            f"{k} {m:,.1f} ({lo:,.1f}-{hi:,.1f})" for k, (m, lo, hi) in row.items()
        ))  # fmt: skip
    if 1 in summary and 2 in summary:
        one, two = summary[1]["cpu_us_per_frame"][0], summary[2]["cpu_us_per_frame"][0]
        print(f"scaling efficiency 1 -> 2 workers (CPU per frame): {one / two:.2f}")
        per_call = args.per_call
        frames_20k = 20_000 * per_call
        print(
            f"20,000 calls at {per_call} frames/s each = {frames_20k:,.0f} frames/s: "
            f"{frames_20k * two / 1e6:.1f} cores of worker CPU at the 2-worker cost per frame"
        )
    print(json.dumps({str(k): v for k, v in summary.items()}))


if __name__ == "__main__":
    main()
