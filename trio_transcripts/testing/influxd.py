"""Start a throwaway ``influxd`` (Debian's 1.6.x package) with its data in a temp dir.

Used by the tests, the fault suite and ``bench``: a real server on free loopback ports,
ready when ``/ping`` answers 204, stopped (and its data removed) on exit. Not part of the
worker itself.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[coordinator]
  log-queries-after = "0s"
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  max-body-size = {max_body_size}
[logging]
  level = "warn"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""


class InfluxdUnavailable(RuntimeError):
    """``influxd`` is not installed, or did not become ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Influxd:
    """A running server: its base URL, and a helper to query it with InfluxQL."""

    url: str
    process: subprocess.Popen[bytes]
    root: Path

    def query(self, q: str, *, db: str | None = None, epoch: str = "ns") -> list[dict[str, object]]:
        """Run InfluxQL; return the rows of the first series of the first statement as dicts."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as response:
            import json

            result = json.load(response)["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxQL error for {q!r}: {result['error']}")
        rows: list[dict[str, object]] = []
        for series in result.get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows

    def write(self, db: str, body: bytes) -> int:
        """POST line protocol to ``/write`` (nanosecond precision); return the status."""
        request = urllib.request.Request(
            f"{self.url}/write?db={urllib.parse.quote(db)}", data=body, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Kill -9: the crash case of the fault suite."""
        self.process.kill()
        self.process.wait()


def start_influxd(
    root: Path,
    *,
    http_port: int | None = None,
    max_body_size: int = 25_000_000,
    ready_timeout: float = 30.0,
) -> Influxd:
    """Start ``influxd`` with its data under ``root``; raise :class:`InfluxdUnavailable`."""
    binary = shutil.which("influxd")
    if binary is None:
        raise InfluxdUnavailable(
            "influxd is not on PATH; install Debian's package: apt-get install influxdb"
        )
    http_port = http_port or free_port()
    config = root / "influxdb.conf"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(
        CONFIG.format(
            root=root, http_port=http_port, rpc_port=free_port(), max_body_size=max_body_size
        )
    )
    with open(root / "influxd.log", "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([binary, "-config", str(config)], stdout=log, stderr=log)
    server = Influxd(f"http://127.0.0.1:{http_port}", process, root)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InfluxdUnavailable(
                f"influxd exited with {process.returncode}: "
                f"{(root / 'influxd.log').read_text(errors='replace')[-2000:]}"
            )
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{server.url}/ping", timeout=1) as response,
        ):
            if response.status == 204:
                return server
        time.sleep(0.05)
    server.stop()
    raise InfluxdUnavailable(f"influxd did not answer /ping within {ready_timeout} s")


@contextlib.contextmanager
def running_influxd(**kwargs: int) -> Iterator[Influxd]:
    with tempfile.TemporaryDirectory(prefix="trio-transcripts-influxd-") as tmp:
        server = start_influxd(Path(tmp), **kwargs)
        try:
            yield server
        finally:
            server.stop()
