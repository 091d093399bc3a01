"""Settings from the environment, a ``.env`` file and command-line flags, checked at once.

The variable names of our reference design are kept (``GENESYS_CLIENT_ID``,
``GENESYS_CLIENT_SECRET``, ``GENESYS_REGION``, ``CONVERSATION_ID``, ``INFLUX_URL``,
``INFLUX_TOKEN``, ``INFLUX_ORG``, ``INFLUX_BUCKET``), plus ``GENESYS_QUEUE_ID``,
``GENESYS_LOGIN_URL``, ``GENESYS_API_URL``, ``GENESYS_STREAM_URL``, ``INFLUX_DATABASE``,
``INFLUX_USERNAME`` and ``INFLUX_PASSWORD``. Precedence: flags, then the process environment,
then ``.env`` in the working directory. :func:`load_config` reports every missing or invalid
setting in one :class:`~trio_transcripts.errors.ConfigError`, each with the variable's name
and an example; secrets are never echoed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import regions
from .errors import ConfigError
from .lineproto import Schema
from .sinks.influx import InfluxSettings


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker buffers, batches and times out (its parts come separately)."""

    buffer_capacity: int = 10_000
    high_water: float = 0.85
    low_water: float = 0.30
    batch_size: int = 5_000
    batch_wait_ms: int = 100
    idle_timeout_ms: int = 60_000
    shutdown_timeout_s: float = 30.0
    status_interval_s: float = 10.0


@dataclass(frozen=True)
class Config(WorkerSettings):
    """Everything the worker needs: its settings, and what its parts are made from
    (``assemble.py``). Build it with :func:`load_config`, or directly."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    login_url: str | None = None
    api_url: str | None = None
    conversation_ids: tuple[str, ...] = ()
    queue_ids: tuple[str, ...] = ()
    stream_url: str | None = None
    influx: InfluxSettings | None = None
    output_path: Path = Path("transcripts.lp")
    dead_letter_path: Path = Path("deadletter.jsonl")
    heartbeat_timeout_s: float = 35.0
    schema: Schema = Schema()
    spool_dir: Path | None = None
    spool_max_bytes: int = 1 << 30
    spool_after_s: float = 5.0

    @property
    def source_kind(self) -> str:
        return "fragments" if self.stream_url else "notifications"


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, ``export`` prefixes and matching quotes allowed."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def load_config(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = Path(".env"),
    tuning: Mapping[str, object] | None = None,
) -> Config:
    """Merge flags (``overrides``, by variable name), environment and ``.env``; validate.

    ``tuning`` holds :class:`Config` fields that are not settings of the environment
    (paths, buffer and batch sizes, timeouts, the schema), as the command line gives them.
    """
    tuning = dict(tuning or {})
    merged: dict[str, str] = dict(read_env_file(env_file)) if env_file else {}
    merged.update(os.environ if environ is None else environ)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})

    def get(name: str) -> str | None:
        value = merged.get(name, "").strip()
        return value or None

    problems: list[str] = []
    stream_url = get("GENESYS_STREAM_URL")
    client_id, client_secret = get("GENESYS_CLIENT_ID"), get("GENESYS_CLIENT_SECRET")
    login_url, api_url = get("GENESYS_LOGIN_URL"), get("GENESYS_API_URL")
    conversations = _split(get("CONVERSATION_ID"))
    queues = _split(get("GENESYS_QUEUE_ID"))

    if stream_url:
        if not stream_url.startswith(("ws://", "wss://")):
            problems.append(
                f"GENESYS_STREAM_URL must be a ws:// or wss:// URL, e.g. "
                f"wss://relay.example.com/transcripts (got {stream_url!r})"
            )
    else:
        if not client_id:
            problems.append(
                "GENESYS_CLIENT_ID is missing: the OAuth client id, e.g. "
                "GENESYS_CLIENT_ID=3f2a...-client-credentials-id"
            )
        if not client_secret:
            problems.append("GENESYS_CLIENT_SECRET is missing: the OAuth client secret")
        if not conversations and not queues:
            problems.append(
                "CONVERSATION_ID or GENESYS_QUEUE_ID is missing: which calls to "
                "follow, e.g. CONVERSATION_ID=97b9dcb3-...,5b778cb0-... or "
                "GENESYS_QUEUE_ID=<queue id> to follow every call on a queue"
            )
    if client_id and (not login_url or not api_url):
        region = get("GENESYS_REGION") or "us_east_1"
        try:
            hosts = regions.resolve(region)
        except ValueError as exc:
            problems.append(f"GENESYS_REGION: {exc}")
        else:
            login_url = login_url or hosts.login_url
            api_url = api_url or hosts.api_url
    for name, url in (("GENESYS_LOGIN_URL", login_url), ("GENESYS_API_URL", api_url)):
        if url and not url.startswith(("http://", "https://")):
            problems.append(f"{name} must be an http(s) URL, e.g. https://login.mypurecloud.ie")

    influx: InfluxSettings | None = None
    influx_url = get("INFLUX_URL")
    influx_vars = [
        n for n in ("INFLUX_TOKEN", "INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_DATABASE") if get(n)
    ]
    if influx_url:
        if not influx_url.startswith(("http://", "https://")):
            problems.append(
                f"INFLUX_URL must be an http(s) URL, e.g. http://localhost:8086 "
                f"(got {influx_url!r})"
            )
        influx = InfluxSettings(
            url=influx_url,
            database=get("INFLUX_DATABASE"),
            username=get("INFLUX_USERNAME"),
            password=get("INFLUX_PASSWORD"),
            token=get("INFLUX_TOKEN"),
            org=get("INFLUX_ORG"),
            bucket=get("INFLUX_BUCKET"),
            schema=tuning.get("schema", Schema()),  # type: ignore[arg-type]
        )
        try:
            influx.api()
        except ConfigError as exc:
            problems.extend(exc.problems)
    elif influx_vars:
        problems.append(
            f"INFLUX_URL is missing while {', '.join(influx_vars)} is set: e.g. "
            f"INFLUX_URL=http://localhost:8086"
        )
    if problems:
        raise ConfigError(problems)
    return Config(
        client_id=client_id,
        client_secret=client_secret,
        login_url=login_url,
        api_url=api_url,
        conversation_ids=conversations,
        queue_ids=queues,
        stream_url=stream_url,
        influx=influx,
        **tuning,  # type: ignore[arg-type]
    )
